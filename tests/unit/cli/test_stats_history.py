"""`stats --since` windows: durations a user types, and one clear error for anything else."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine.cli.stats_history import parse_window
from engine.errors import InvalidArgument


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("1h", timedelta(hours=1)),
        ("1d", timedelta(days=1)),
        ("7d", timedelta(days=7)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2w", timedelta(weeks=2)),
        ("90s", timedelta(seconds=90)),
    ],
)
def test_windows_read_as_durations(text: str, expected: timedelta) -> None:
    assert parse_window(text) == expected


@pytest.mark.parametrize("text", ["", "1", "yesterday", "1h-", "0m", "-1h", "91d", "1x"])
def test_other_windows_are_refused(text: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid window"):
        parse_window(text)
