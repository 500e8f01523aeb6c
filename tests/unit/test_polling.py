"""The tests' one polling helper: it returns what it waited for, or says what it waited for and saw."""

from __future__ import annotations

import itertools

import pytest

from tests.polling import settle, wait_until


def test_wait_until_returns_the_first_truthy_value() -> None:
    counter = itertools.count()
    assert wait_until(lambda: next(counter) >= 3 and "ready", timeout=5, interval=0) == "ready"


def test_wait_until_names_what_it_waited_for_and_the_last_value_seen() -> None:
    with pytest.raises(AssertionError, match=r"waiting for the answer; last value seen: \[\]"):
        wait_until(list, timeout=0.05, interval=0.01, what="the answer")


def test_wait_until_keeps_polling_through_ignored_errors_and_reports_the_last_one() -> None:
    def refuse() -> bool:
        raise ConnectionRefusedError("not listening yet")

    with pytest.raises(AssertionError, match="not listening yet"):
        wait_until(refuse, timeout=0.05, interval=0.01, what="the socket", ignoring=(OSError,))


def test_settle_returns_the_last_value_without_failing() -> None:
    assert settle(lambda: 0, timeout=0.05, interval=0.01) == 0
