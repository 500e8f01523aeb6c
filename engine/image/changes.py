"""Apply Dockerfile-style `--change` instructions (CMD, ENV, …) to an image's container config.

Pure: a config dict and instruction strings in, a new config dict out.
"""

from __future__ import annotations

import json
import re
from typing import Any

from engine.errors import InvalidArgument
from engine.image import stopsignal

SUPPORTED = (
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "LABEL",
    "ONBUILD",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
)


def apply_changes(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """Return a copy of `config` with each instruction applied; raise InvalidArgument on a bad one."""
    out = json.loads(json.dumps(config))
    for change in changes:
        keyword, _, rest = change.strip().partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword not in SUPPORTED:
            raise InvalidArgument(
                f"invalid change {change!r}: {keyword or 'empty'} is not one of {', '.join(SUPPORTED)}"
            )
        if not rest:
            raise InvalidArgument(f"invalid change {change!r}: {keyword} needs an argument")
        _APPLY[keyword](out, rest)
    return out


def command_form(rest: str) -> list[str]:
    """JSON (exec) form when it parses as a list of strings, else the shell form /bin/sh -c."""
    if rest.startswith("["):
        try:
            value = json.loads(rest)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return ["/bin/sh", "-c", rest]


# One piece of a POSIX shell word, as shlex.split sees it; a linear scan (shlex builds each token by
# string concatenation, which took seconds of CPU for a 1 MiB LABEL).
_PIECE = re.compile(
    r"""'(?P<single>[^']*)'|"(?P<double>(?:[^"\\]|\\.)*)"|\\(?P<escaped>.)|(?P<plain>[^\s'"\\]+)|(?P<space>\s+)""",
    re.S,
)
_DOUBLE_ESCAPE = re.compile(r'\\([\\"])')


def split_words(rest: str) -> list[str]:
    """Split like shlex.split (POSIX rules, no comments) in linear time; raise InvalidArgument on an
    unmatched quote or a trailing escape."""
    words: list[str] = []
    current: list[str] = []
    started = False  # a quoted empty string is still a word
    pos = 0
    while pos < len(rest):
        m = _PIECE.match(rest, pos)
        if m is None:
            raise InvalidArgument(f"unmatched quote or trailing escape in {rest[:80]!r}")
        pos = m.end()
        if m.group("space") is not None:
            if started:
                words.append("".join(current))
            current, started = [], False
            continue
        started = True
        if m.group("double") is not None:
            current.append(_DOUBLE_ESCAPE.sub(r"\1", m.group("double")))
        else:
            current.append(m.group("single") or m.group("escaped") or m.group("plain") or "")
    if started:
        words.append("".join(current))
    return words


def _pairs(rest: str, keyword: str) -> list[tuple[str, str]]:
    words = split_words(rest)
    if words and "=" not in words[0]:
        # Legacy form: ENV KEY value with spaces
        key, _, value = rest.partition(" ")
        return [(key, value.strip())]
    pairs = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"{keyword} {rest!r}: expected KEY=VALUE")
        pairs.append((key, value))
    return pairs


def _cmd(config: dict[str, Any], rest: str) -> None:
    config["Cmd"] = command_form(rest)


def _entrypoint(config: dict[str, Any], rest: str) -> None:
    config["Entrypoint"] = command_form(rest)


def _env(config: dict[str, Any], rest: str) -> None:
    env = {e.partition("=")[0]: e for e in config.get("Env") or []}
    for key, value in _pairs(rest, "ENV"):
        env.pop(key, None)  # a redefined variable moves to the end, as before
        env[key] = f"{key}={value}"
    config["Env"] = list(env.values())


def _label(config: dict[str, Any], rest: str) -> None:
    labels = dict(config.get("Labels") or {})
    labels.update(_pairs(rest, "LABEL"))
    config["Labels"] = labels


def _expose(config: dict[str, Any], rest: str) -> None:
    ports = dict(config.get("ExposedPorts") or {})
    for port in rest.split():
        number, _, proto = port.partition("/")
        if not number.isdigit() or not 0 < int(number) < 65536 or proto not in ("", "tcp", "udp", "sctp"):
            raise InvalidArgument(f"EXPOSE {port!r}: expected PORT[/tcp|udp|sctp]")
        ports[f"{int(number)}/{proto or 'tcp'}"] = {}
    config["ExposedPorts"] = ports


def _volume(config: dict[str, Any], rest: str) -> None:
    volumes = dict(config.get("Volumes") or {})
    paths = command_form(rest) if rest.startswith("[") else rest.split()
    if paths[:2] == ["/bin/sh", "-c"]:
        paths = rest.split()
    for path in paths:
        if not path.startswith("/"):
            raise InvalidArgument(f"VOLUME {path!r}: must be an absolute path")
        volumes[path] = {}
    config["Volumes"] = volumes


def _simple(key: str):  # type: ignore[no-untyped-def]
    def apply(config: dict[str, Any], rest: str) -> None:
        config[key] = rest

    return apply


def _stopsignal(config: dict[str, Any], rest: str) -> None:
    stopsignal.parse_signal(rest)  # an unsendable stop signal would make the container unstoppable
    config["StopSignal"] = rest


def _onbuild(config: dict[str, Any], rest: str) -> None:
    config["OnBuild"] = list(config.get("OnBuild") or []) + [rest]


_APPLY = {
    "CMD": _cmd,
    "ENTRYPOINT": _entrypoint,
    "ENV": _env,
    "EXPOSE": _expose,
    "LABEL": _label,
    "ONBUILD": _onbuild,
    "STOPSIGNAL": _stopsignal,
    "USER": _simple("User"),
    "VOLUME": _volume,
    "WORKDIR": _simple("WorkingDir"),
}
