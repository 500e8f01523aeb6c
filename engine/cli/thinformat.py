"""The thin client's pure helpers: JSON and URLs on the wire, its arguments, render's formats.

A thin `berth ps` should cost little more than starting Python. `json` pulls in `re` and `enum`,
`socket` pulls in `enum` and `selectors`, engine.cli.render pulls in `typing`, `datetime` and `json`:
together about 25 ms, as much again as the interpreter's start. So this module decodes JSON with the C
scanner `json` itself uses, and holds the table text that render prints; the human formats come from
engine.humanize, which imports nothing (the `engine` and `engine.cli` packages are empty too).
"""

from __future__ import annotations

import _json
import os

from engine.humanize import human_duration

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any


class Fallback(Exception):
    """The thin client does not handle this command as given: the in-process CLI must."""


_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


class _DecoderContext:
    """The attributes `_json.make_scanner` reads (json.JSONDecoder's defaults)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float  # NaN, Infinity, -Infinity, as json.loads gives them


_scan = _json.make_scanner(_DecoderContext())  # type: ignore[arg-type]  # duck-typed as the stubs cannot say


def loads(data: bytes | str) -> Any:
    """json.loads for a whole document; ValueError if it is not one."""
    text = (data.decode() if isinstance(data, bytes) else data).strip()
    if not text:
        raise ValueError("empty JSON document")
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        raise ValueError("not a JSON document") from None
    if end != len(text):
        raise ValueError("extra data after the JSON document")
    return value


def dumps(value: Any) -> str:
    """Compact JSON of dicts, lists, strings, numbers, booleans and None (request bodies)."""
    if isinstance(value, str):
        return _json.encode_basestring_ascii(value)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{dumps(str(k))}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def quote(text: str) -> str:
    """Percent-encode everything but RFC 3986's unreserved characters (urllib.parse.quote(safe=''))."""
    return "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in text.encode())


def urlencode(query: dict[str, Any]) -> str:
    return "&".join(f"{quote(str(k))}={quote(str(v))}" for k, v in query.items())


# --- render's formats: engine.cli.render uses these too -------------------------------------------------------


def ago(timestamp: float | None, now: float) -> str:
    """render.ago of a Unix time (the API's `Created`)."""
    if not timestamp:
        return "N/A"
    return human_duration(now - timestamp) + " ago"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Docker's tabwriter text (render.table prints it): aligned columns, three spaces apart, trailing spaces cut."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    out = []
    for row in cells:
        line = "   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:-1]))
        line = (line + "   " if len(row) > 1 else "") + row[-1]
        out.append(line.rstrip() + "\n")
    return "".join(out)


# --- arguments, parsed as the in-process argparse does for the options handled --------------------------------------------------------------------------


class Spec:
    """The options of one command: flags (no value), values (one), lists (repeatable)."""

    def __init__(self, flags: str = "", values: str = "", lists: str = "", stop_at_positional: bool = False):
        self.kind: dict[str, tuple[str, str]] = {}
        for group, kind in ((flags, "flag"), (values, "value"), (lists, "list")):
            for entry in group.split():
                names, _, dest = entry.partition("=")
                for name in names.split("|"):
                    self.kind[name] = (kind, dest or names.split("|")[-1].lstrip("-").replace("-", "_"))
        self.stop_at_positional = stop_at_positional


def parse(argv: Sequence[str], spec: Spec) -> tuple[dict[str, Any], list[str]]:
    """Parse like the in-process argparse for the options handled here; anything unknown → Fallback."""
    opts: dict[str, Any] = {}
    positional: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            positional += args[i:]
            break
        if not arg.startswith("-") or arg == "-":
            positional.append(arg)
            if spec.stop_at_positional:
                positional += args[i:]
                break
            continue
        if arg.startswith("--"):
            name, eq, rest = arg.partition("=")
            pieces = [(name, rest if eq else None)]
        else:
            pieces = []
            for j, letter in enumerate(arg[1:]):
                name = "-" + letter
                kind = spec.kind.get(name, ("", ""))[0]
                if kind in ("value", "list") and j + 2 < len(arg):
                    pieces.append((name, arg[j + 2 :]))
                    break
                pieces.append((name, None))
        for name, inline in pieces:
            if name not in spec.kind:
                raise Fallback
            kind, dest = spec.kind[name]
            if kind == "flag":
                if inline is not None:
                    raise Fallback
                opts[dest] = True
                continue
            if inline is None:
                if i >= len(args):
                    raise Fallback
                inline = args[i]
                i += 1
            if kind == "list":
                opts.setdefault(dest, []).append(inline)
            else:
                opts[dest] = inline
    return opts, positional


def env_values(items: Sequence[str]) -> list[str]:
    """Docker's `-e`: KEY=VALUE as given; a bare KEY takes this process's value, or is left out if unset."""
    env = []
    for item in items:
        key, sep, _ = item.partition("=")
        if not sep:
            if key in os.environ:
                env.append(f"{key}={os.environ[key]}")
            continue
        env.append(item)
    return env


def filters_json(values: list[str] | None) -> str | None:
    if not values:
        return None
    filters: dict[str, list[str]] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep:
            raise Fallback  # the in-process CLI words this error
        filters.setdefault(key.strip(), []).append(rest)
    return dumps(filters)


def query(**items: Any) -> dict[str, Any]:
    return {k: v for k, v in items.items() if v is not None and v is not False}
