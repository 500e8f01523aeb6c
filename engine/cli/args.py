"""Argument helpers shared by the CLI command modules."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from django.utils.dateparse import parse_datetime

from engine.errors import EngineError, InvalidArgument


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"Error: {message}\n")
        raise SystemExit(2)


def group(sub: argparse._SubParsersAction, name: str, help: str) -> argparse._SubParsersAction:
    """Add a management command group such as `image` or `volume` and return its subparsers."""
    parser = sub.add_parser(name, help=help)
    parser.set_defaults(subparser=parser)
    return parser.add_subparsers(dest=f"{name}_command", metavar="COMMAND", parser_class=Parser)


def parse_filters(values: Sequence[str] | None) -> dict[str, list[str]]:
    filters: dict[str, list[str]] = {}
    for value in values or []:
        key, sep, rest = value.partition("=")
        if not sep:
            raise_invalid(f'bad format of filter (expected name=value): "{value}"')
        filters.setdefault(key.strip(), []).append(rest)
    return filters


def parse_labels(values: Sequence[str] | None) -> dict[str, str]:
    labels = {}
    for value in values or []:
        key, _, rest = value.partition("=")
        if not key:
            raise_invalid(f"invalid label {value!r}: expected KEY=VALUE")
        labels[key] = rest
    return labels


def raise_invalid(message: str) -> None:
    raise InvalidArgument(message)


def confirm(prompt: str, force: bool) -> bool:
    if force:
        return True
    if not sys.stdin.isatty():
        sys.stderr.write(f"{prompt} [y/N] refusing without a terminal; use -f to skip this question\n")
        return False
    sys.stderr.write(f"{prompt} [y/N] ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def parse_time(value: str) -> datetime:
    """Docker's --since/--until: RFC 3339, a Unix timestamp, or a duration such as 10m or 1h30m."""
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return datetime.fromtimestamp(float(value), UTC)
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", value)
    if match and any(match.groups()):
        h, m, s = (float(x) if x else 0.0 for x in match.groups())
        return datetime.now(UTC) - timedelta(hours=h, minutes=m, seconds=s)
    parsed = parse_datetime(value)
    if parsed is None:
        raise InvalidArgument(
            f"invalid time {value!r}: use RFC 3339, a Unix timestamp or a duration like 10m"
        )
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def report_error(command: str, exc: Exception, *, object_type: str = "cli", object_name: str = "") -> None:
    """Print the one-line error and record the failed action as an event (who tried what, on what, and why)."""
    sys.stderr.write(f"Error: {exc}\n")
    from engine import events

    try:
        events.record(
            object_type, command[:32], object_name=object_name[:512], result="error", message=str(exc)
        )
    except Exception:  # noqa: BLE001 — reporting the failure must not hide the original error
        pass


# What a failed command acted on, for its audit row: the group word, else the verb's usual object.
_GROUP_TYPES = {
    "container": "container",
    "image": "image",
    "volume": "volume",
    "network": "network",
    "user": "user",
    "alerts": "alertrule",
    "system": "system",
}
_IMAGE_VERBS = {
    "pull",
    "push",
    "rmi",
    "tag",
    "build",
    "load",
    "save",
    "import",
    "images",
    "history",
    "commit",
}
_CONTAINER_VERBS = {
    "run",
    "create",
    "start",
    "stop",
    "restart",
    "kill",
    "pause",
    "unpause",
    "rm",
    "rename",
    "wait",
    "top",
    "stats",
    "diff",
    "logs",
    "exec",
    "update",
    "cp",
    "export",
    "attach",
    "port",
}
_OBJECT_ARGS = (
    "container",
    "containers",
    "name",
    "names",
    "ref",
    "refs",
    "image",
    "images",
    "volume",
    "volumes",
    "network",
    "networks",
    "rules",
    "username",
    "objects",
)


def failed_object(argv: Sequence[str], args: argparse.Namespace) -> tuple[str, str]:
    """(object type, object name) of a CLI command, for the audit row of its failure."""
    words = [a for a in argv if not a.startswith("-")]
    first = words[0] if words else ""
    if first in _GROUP_TYPES:
        kind = _GROUP_TYPES[first]
    elif first in _CONTAINER_VERBS:
        kind = "container"
    elif first in _IMAGE_VERBS:
        kind = "image"
    else:
        kind = "cli"
    for attr in _OBJECT_ARGS:
        value = getattr(args, attr, None)
        if isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value)
        if isinstance(value, str) and value:
            return kind, value
    return kind, ""


def container_group_parsers(sub: argparse._SubParsersAction) -> list[argparse._SubParsersAction]:
    """The top-level subparsers and the `container` group's (made by container_commands, registered first),
    for modules that add container verbs to both."""
    parents = [sub]
    container = sub.choices.get("container")
    if container is not None:
        parents += [a for a in container._actions if isinstance(a, argparse._SubParsersAction)]
    return parents


def json_format(value: str | None) -> bool:
    """True for `--format json`, False for no --format; any other format is an InvalidArgument."""
    if value and value != "json":
        raise InvalidArgument(f"unsupported --format {value!r} (use json)")
    return bool(value)


def for_each(
    command: str,
    refs: Sequence[str],
    action: Callable[[str], object],
    *,
    missing_ok: bool = False,
    echo: bool = True,
) -> int:
    """Run `action` on every ref, printing each ref done (unless `echo` is False: the action prints its
    own answer) and one error line for each that fails, as docker does for rm, stop, wait, rmi…; exit
    status 1 if any failed. `missing_ok` passes over refs that do not exist."""
    failed = False
    for ref in refs:
        try:
            action(ref)
            if echo:
                sys.stdout.write(ref + "\n")
            sys.stdout.flush()
        except EngineError as exc:
            if missing_ok and exc.status == 404:
                continue
            report_error(command, exc)
            failed = True
    return 1 if failed else 0
