"""Parse untrusted JSON (manifests, indexes, configs, archive indexes, registry answers) within bounds.

Pure. Python's json module recurses once per nesting level, so a few kilobytes of `[[[[…` raise
RecursionError (or exhaust a worker thread's smaller stack) deep inside the loader. The nesting depth
is measured by a linear scan over the bytes before json sees them, and the size is capped, so a
hostile document is refused with one clear line instead.
"""

from __future__ import annotations

import json
import re
from array import array
from itertools import accumulate
from typing import Any

from engine.errors import InvalidArgument

MAX_DEPTH = 64  # real manifests and configs nest fewer than 10 levels

# A complete JSON string (brackets inside one do not nest anything); one pass, no backtracking.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
# Opening brackets become 1 and closing ones 0xff (-1 as a signed byte); every other byte is dropped.
_BRACKETS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_OTHERS = bytes(b for b in range(256) if b not in b"[{]}")


def exceeds_depth(data: bytes, max_depth: int) -> bool:
    """Whether brackets in `data` nest deeper than `max_depth`, ignoring brackets inside strings.

    Linear, and it stops at the first level too deep; the loops run in C (filter, accumulate).
    """
    brackets = _STRING.sub(b"", data).translate(_BRACKETS, _OTHERS)
    return next(filter(max_depth.__lt__, accumulate(array("b", brackets))), None) is not None


def check_depth(data: bytes | str, what: str, *, max_depth: int = MAX_DEPTH) -> None:
    """Raise InvalidArgument ("<what>: nesting deeper than N levels") if `data` nests too deep."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return  # cannot nest deeper than the number of brackets: skip the scan
    if exceeds_depth(raw, max_depth):
        raise InvalidArgument(f"{what}: nesting deeper than {max_depth} levels")


def load_bounded(data: bytes | str, what: str, *, max_size: int, max_depth: int = MAX_DEPTH) -> Any:
    """Parse `data` as JSON after checking its size and nesting; raise InvalidArgument naming `what`."""
    if len(data) > max_size:
        raise InvalidArgument(f"{what} is {len(data)} bytes, larger than the {max_size} byte limit")
    check_depth(data, what, max_depth=max_depth)
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"{what} is not valid JSON: {exc}") from exc
    except RecursionError:  # unreachable after the depth check; kept so no traceback ever escapes
        raise InvalidArgument(f"{what}: nesting too deep") from None
