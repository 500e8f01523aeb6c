"""The thin client's pure helpers: JSON and URLs on the wire, its arguments, render's formats.

A thin `berth ps` should cost little more than starting Python. `json` pulls in `re` and `enum`,
`socket` pulls in `enum` and `selectors`, engine.cli.render pulls in `typing`, `datetime` and `json`:
together about 25 ms, as much again as the interpreter's start. So this module decodes JSON with the C
scanner `json` itself uses, and repeats render's table and human formats (small, pure, and checked
against render's by tests/api/test_thin_cli.py) instead of importing them.
"""

from __future__ import annotations

import _json

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


# --- as engine/cli/render.py ------------------------------------------------------------------------


def human_size(size: float) -> str:
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000.0
        i += 1
    return f"{size:.3g}{units[i]}"


def human_duration(seconds: float) -> str:
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def ago(timestamp: float | None, now: float) -> str:
    """render.ago of a Unix time (the API's `Created`)."""
    if not timestamp:
        return "N/A"
    return human_duration(now - timestamp) + " ago"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """render.table's text: aligned columns, three spaces apart, trailing spaces cut."""
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
