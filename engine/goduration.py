"""Go's duration syntax, as Docker reads HEALTHCHECK's --interval and the --health-* flags: `30s`,
`1m30s`, `1.5h`, `500ms`, `0`. The one parser for the Dockerfile and the container options, so the two
never disagree about what a duration means or which ones are refused; the API's time filters
(`until=24h`, `since=10m`) read the same syntax through `nanoseconds`.

Pure: a string goes in, nanoseconds come out.
"""

from __future__ import annotations

import re

from engine.errors import InvalidArgument

UNITS = {
    "ns": 1,
    "us": 10**3,
    "µs": 10**3,  # MICRO SIGN
    "μs": 10**3,  # GREEK SMALL LETTER MU: Go accepts both
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}
MINIMUM = 1_000_000  # 1 ms in nanoseconds: Docker's containertypes.MinimumDuration
_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def nanoseconds(value: str) -> int | None:
    """The signed nanoseconds of the Go duration `value`, or None when it is not one (a number without
    a unit, an unknown unit, anything left over, surrounding spaces). Syntax only: no range rules."""
    sign, body = (value[0], value[1:]) if value[:1] in ("-", "+") else ("", value)
    if body == "0":
        return 0
    total, pos = 0.0, 0
    for match in _PART.finditer(body):
        if match.start() != pos:
            break
        total += float(match.group(1)) * UNITS[match.group(2)]
        pos = match.end()
    if not body or pos != len(body):
        return None
    return -int(round(total)) if sign == "-" else int(round(total))


def parse(value: str, what: str) -> int:
    """Return the nanoseconds of the Go duration `value`; `what` names it in errors (e.g. "--interval").

    0 (`0`, `0s`) is allowed: it means "the default". Raise InvalidArgument for bad syntax, a negative
    value, or a non-zero value under 1 ms.
    """
    result = nanoseconds(value)
    if result is None:
        raise InvalidArgument(f"invalid {what} {value!r}: use a duration such as 30s, 1m30s or 500ms")
    return check(result, what)


def check(nanoseconds: int, what: str) -> int:
    """Return `nanoseconds` when it is 0 (take the default) or at least 1 ms; else raise InvalidArgument."""
    if nanoseconds < 0:
        raise InvalidArgument(f"{what} cannot be negative")
    if 0 < nanoseconds < MINIMUM:
        raise InvalidArgument(f"{what} cannot be less than 1ms")
    return nanoseconds
