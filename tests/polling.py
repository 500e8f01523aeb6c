"""The one way tests wait: poll a condition against a deadline, never a fixed sleep.

`wait_until` fails the test with what it waited for and the last value it saw; `settle` is for a
caller that asserts on the final value itself (a leak report, the files left behind) and wants the
value whether or not it settled in time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def settle(
    condition: Callable[[], T],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    ignoring: tuple[type[BaseException], ...] = (),
) -> T | None:
    """Call `condition` until it returns a truthy value or `timeout` seconds pass; return its last value.

    Exceptions of the `ignoring` types count as "not yet" (a socket that does not listen yet); the
    last one is re-raised if the deadline passes while it is still being raised.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value: T | None = condition()
            error: BaseException | None = None
        except ignoring as exc:
            value, error = None, exc
        if value or time.monotonic() >= deadline:
            if not value and error is not None:
                raise error
            return value
        time.sleep(interval)


def wait_until(
    condition: Callable[[], T],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str = "the condition",
    ignoring: tuple[type[BaseException], ...] = (),
) -> T:
    """Call `condition` until it returns a truthy value, and return that value.

    Fails with an AssertionError naming `what` and the last value seen (or the last ignored error)
    once `timeout` seconds have passed.
    """
    last: object = None
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except ignoring as exc:
            last = exc
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:g}s waiting for {what}; last value seen: {last!r}"
            )
        time.sleep(interval)
