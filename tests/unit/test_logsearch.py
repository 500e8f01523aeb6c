"""engine.services.logsearch on synthetic k8s-file logs: pages by cursor and by time, across rotated
files, joined partial records, and search with since/until and resumption."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.errors import InvalidArgument
from engine.services import logsearch

T0 = datetime(2026, 11, 28, tzinfo=UTC)


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123+00:00"


def write_log(path: Path, count: int, *, first: int = 1, per_ms: int = 7) -> None:
    """Lines "line N" with N from `first`; every `per_ms` lines share a millisecond, like conmon's reads."""
    with open(path, "a") as f:
        for n in range(first, first + count):
            when = T0 + timedelta(milliseconds=n // per_ms)
            f.write(f"{stamp(when)} {'stderr' if n % 10 == 0 else 'stdout'} F line {n}\n")


def numbers(page: logsearch.Page | logsearch.Matches) -> list[int]:
    hits = page.lines if isinstance(page, logsearch.Page) else page.hits
    return [int(h.line.text.split()[1]) for h in hits]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    """A log of 3,000 lines in three files: <log>.2 (1–1000), <log>.1 (1001–2000), <log> (2001–3000)."""
    path = tmp_path / "ctr.log"
    write_log(Path(f"{path}.2"), 1000, first=1)
    write_log(Path(f"{path}.1"), 1000, first=1001)
    write_log(path, 1000, first=2001)
    return path


def test_pages_walk_back_from_the_end_to_the_start_across_rotated_files(log: Path) -> None:
    seen: list[int] = []
    page = logsearch.page_before(log, limit=400)
    while True:
        seen = numbers(page) + seen
        if not page.more_before:
            break
        page = logsearch.page_before(log, cursor=page.start, limit=400)
    assert seen == list(range(1, 3001))


def test_pages_walk_forward_from_a_cursor_to_the_end(log: Path) -> None:
    start = logsearch.search(log, "line 1").hits[0].cursor  # line 1 is the first match
    seen: list[int] = []
    page = logsearch.page_after(log, cursor=start, limit=333)
    seen += numbers(page)
    while page.more_after:
        page = logsearch.page_after(log, cursor=page.end, limit=333)
        seen += numbers(page)
    assert seen == list(range(1, 3001))


def test_before_time_and_skip_address_a_line_that_came_without_a_cursor(log: Path) -> None:
    # The client holds lines 2005… (from the websocket): 2005's millisecond is 2001…2007's (per_ms 7:
    # n // 7 == 286 for 2002…2008), and it holds the last k lines of that millisecond.
    held_from = 2005
    key = held_from // 7
    skip = sum(1 for n in range(held_from, 3001) if n // 7 == key)
    page = logsearch.page_before(log, before_time=T0 + timedelta(milliseconds=key), skip=skip, limit=10)
    assert numbers(page) == list(range(held_from - 10, held_from))


def test_search_is_case_insensitive_bounded_by_since_until_and_resumable(log: Path) -> None:
    assert numbers(logsearch.search(log, "LINE 2999")) == [2999]
    since, until = T0 + timedelta(milliseconds=100), T0 + timedelta(milliseconds=200)
    found = logsearch.search(log, "line", since=since, until=until, limit=2000)
    assert numbers(found) == [n for n in range(1, 3001) if 100 <= n // 7 < 200]
    assert found.next is None
    first = logsearch.search(log, "line 1", limit=5)
    rest = logsearch.search(log, "line 1", after=first.next, limit=2000)
    assert numbers(first) + numbers(rest) == [n for n in range(1, 3001) if f"line {n}".startswith("line 1")]
    # The time and stream prefix of a record is not its text.
    assert logsearch.search(log, "stdout").hits == []
    assert logsearch.search(log, "+00:00").hits == []


def test_bad_input_gets_one_clear_error(log: Path) -> None:
    with pytest.raises(InvalidArgument, match="empty"):
        logsearch.search(log, "  ")
    with pytest.raises(InvalidArgument, match="invalid log position"):
        logsearch.page_after(log, cursor="nope")
    with pytest.raises(InvalidArgument, match="limit"):
        logsearch.page_before(log, limit=0)


def test_partial_records_are_joined_and_a_rotated_away_cursor_means_the_oldest_kept(tmp_path: Path) -> None:
    path = tmp_path / "ctr.log"
    when = stamp(T0)
    path.write_text(
        f"{when} stdout F one\n{when} stdout P tw\n{when} stderr F err\n{when} stdout F o\n{when} stdout F three\n"
    )
    page = logsearch.page_before(path)
    assert [(h.line.stream, h.line.text) for h in page.lines] == [
        ("stdout", "one"),
        ("stderr", "err"),
        ("stdout", "two"),
        ("stdout", "three"),
    ]
    gone = f"{os.stat(path).st_ino + 12345}-10"
    assert [h.line.text for h in logsearch.page_after(path, cursor=gone).lines][0] == "one"


def test_a_missing_log_is_empty(tmp_path: Path) -> None:
    assert logsearch.page_before(tmp_path / "none.log").lines == []
    assert logsearch.search(tmp_path / "none.log", "x").hits == []


def test_skipping_by_time_passes_over_the_pieces_of_a_skipped_line(tmp_path: Path) -> None:
    path = tmp_path / "ctr.log"
    a, b = stamp(T0), stamp(T0 + timedelta(milliseconds=1))
    path.write_text(f"{a} stdout F 1\n{a} stdout F 2\n{b} stdout P 3\n{b} stdout F 33\n{b} stdout F 4\n")
    # The client holds "333" and "4" (both of millisecond b): everything before them.
    page = logsearch.page_before(path, before_time=T0 + timedelta(milliseconds=1), skip=2)
    assert [h.line.text for h in page.lines] == ["1", "2"]
    assert [h.line.text for h in logsearch.page_before(path).lines] == ["1", "2", "333", "4"]


def test_a_line_split_across_milliseconds_counts_in_its_first_pieces(tmp_path: Path) -> None:
    path = tmp_path / "ctr.log"
    a, b = stamp(T0), stamp(T0 + timedelta(milliseconds=1))
    path.write_text(f"{a} stdout F 1\n{a} stdout F 2\n{a} stdout P 3\n{b} stdout F 33\n{b} stdout F 4\n")
    # The client's oldest line is "333", of millisecond a (its first piece's), the only one of a it holds.
    page = logsearch.page_before(path, before_time=T0, skip=1)
    assert [h.line.text for h in page.lines] == ["1", "2"]
