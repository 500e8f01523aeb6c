"""Docker's human sizes, durations and aligned tables, as the CLI renders them (pure, no Django)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest

from engine.cli import render


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0B"),
        (512, "512B"),
        (999, "999B"),
        (1000, "1kB"),
        (1_982_751, "1.98MB"),  # three significant digits, decimal units: what `docker images` shows
        (4_261_000, "4.26MB"),
        (1_200_000_000, "1.2GB"),
        (5 * 10**15, "5PB"),
    ],
)
def test_human_size_uses_decimal_units_and_three_significant_digits(size: int, text: str) -> None:
    assert render.human_size(size) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "Less than a second"),
        (0.9, "Less than a second"),
        (1, "1 second"),
        (59, "59 seconds"),
        (60, "About a minute"),
        (119, "About a minute"),
        (120, "2 minutes"),
        (59 * 60, "59 minutes"),
        (60 * 60, "About an hour"),
        (89 * 60, "About an hour"),
        (90 * 60, "2 hours"),
        (2.5 * 3600, "3 hours"),  # halves round up, as Go's int(h + 0.5) does
        (47 * 3600, "47 hours"),
        (48 * 3600, "2 days"),
        (13 * 86400, "13 days"),
        (14 * 86400, "2 weeks"),
        (59 * 86400, "8 weeks"),
        (60 * 86400, "2 months"),
        (729 * 86400, "24 months"),
        (730 * 86400, "2 years"),
    ],
)
def test_human_duration_matches_dockers_words(seconds: float, text: str) -> None:
    assert render.human_duration(seconds) == text


def test_ago_appends_ago_and_handles_an_unknown_time() -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    assert render.ago(now - timedelta(hours=3), now=now) == "3 hours ago"
    assert render.ago(None) == "N/A"


def test_table_aligns_columns_with_three_spaces() -> None:
    out = io.StringIO()
    render.table(
        ["REPOSITORY", "TAG", "IMAGE ID"], [["busybox", "latest", "363b3348b2fd"], ["a", "1", "x"]], out=out
    )
    assert out.getvalue().splitlines() == [
        "REPOSITORY   TAG      IMAGE ID",
        "busybox      latest   363b3348b2fd",
        "a            1        x",
    ]


def test_table_does_not_pad_the_last_column() -> None:
    out = io.StringIO()
    render.table(["NAME", "COMMENT"], [["a", ""], ["bb", "longer comment"]], out=out)
    assert all(line == line.rstrip() for line in out.getvalue().splitlines())


def test_table_with_no_rows_prints_the_header() -> None:
    out = io.StringIO()
    render.table(["DRIVER", "VOLUME NAME"], [], out=out)
    assert out.getvalue() == "DRIVER   VOLUME NAME\n"


def test_json_lines_prints_one_compact_object_per_line() -> None:
    out = io.StringIO()
    render.json_lines([{"a": 1}, {"b": "x"}], out=out)
    assert out.getvalue() == '{"a": 1}\n{"b": "x"}\n'


def test_iso_prints_utc_with_microseconds() -> None:
    when = datetime(2024, 5, 6, 7, 8, 9, 10, tzinfo=UTC)
    assert render.iso(when) == "2024-05-06T07:08:09.000010Z"
    assert render.iso(None) == ""
