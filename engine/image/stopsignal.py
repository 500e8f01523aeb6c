"""Signal names and numbers as Docker accepts them: STOPSIGNAL, --stop-signal, `stop -s` and `kill -s`.

Pure: a string in, a signal number out. One validator for the Dockerfile, `commit -c`, image configs,
create and kill (issue 10 item 6): a container whose stored stop signal cannot be sent would be
unstoppable, so a bad value is refused wherever it enters.
"""

from __future__ import annotations

import re
import signal

from engine.errors import InvalidArgument

MAX_SIGNAL = 64  # Linux's _NSIG - 1: the highest real-time signal
_RT_MIN = int(signal.SIGRTMIN)
_RT_MAX = int(signal.SIGRTMAX)
_NUMBER = re.compile(r"[0-9]{1,3}")  # ASCII only: str.isdigit() would take "١" or "²"
_REALTIME = re.compile(r"RTM(IN|AX)([+-][0-9]{1,2})?")
_MAX_LENGTH = 32


def parse_signal(value: str) -> int:
    """Return the number for `value`: SIGTERM, TERM, sigterm, 15, SIGRTMIN+3, RTMAX-1.

    Raises InvalidArgument for anything else (unknown names, 0, numbers above 64, empty text).
    """
    text = str(value).strip().upper()
    if len(text) <= _MAX_LENGTH:
        if _NUMBER.fullmatch(text):
            number = int(text)
            if 1 <= number <= MAX_SIGNAL:
                return number
        else:
            name = text[3:] if text.startswith("SIG") else text
            found = _realtime(name) if name.startswith("RTM") else _named(name)
            if found is not None:
                return found
    shown = value if len(str(value)) <= _MAX_LENGTH else f"{str(value)[:_MAX_LENGTH]}…"
    raise InvalidArgument(
        f"invalid signal {shown!r}: use a name such as SIGTERM or a number from 1 to {MAX_SIGNAL}"
    )


def is_valid(value: object) -> bool:
    """True when `value` is a string parse_signal accepts."""
    if not isinstance(value, str):
        return False
    try:
        parse_signal(value)
    except InvalidArgument:
        return False
    return True


def signal_name(number: int) -> str:
    """SIGTERM for 15, SIGRTMIN+2 for 36, the number itself when it has no name."""
    if _RT_MIN < number < _RT_MAX:
        return f"SIGRTMIN+{number - _RT_MIN}"
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _named(name: str) -> int | None:
    if not name.isalnum() or not name.isascii():
        return None
    member = signal.Signals.__members__.get(f"SIG{name}")
    return None if member is None else int(member)


def _realtime(name: str) -> int | None:
    match = _REALTIME.fullmatch(name)
    if match is None:
        return None
    offset = int(match.group(2) or 0)
    number = (_RT_MIN if match.group(1) == "IN" else _RT_MAX) + offset
    return number if _RT_MIN <= number <= _RT_MAX else None
