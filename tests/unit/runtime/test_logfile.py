from __future__ import annotations

import threading
from datetime import UTC, datetime

from engine.runtime import logfile, logfollow
from tests.polling import wait_until

T1 = "2026-11-28T00:21:26.864821083+00:00"
T2 = "2026-11-28T00:21:27.000000001+00:00"
T3 = "2026-11-28T00:21:28.5+00:00"


def test_parse_record_with_nanoseconds():
    rec = logfile.parse_record(f"{T1} stdout F hello world\n".encode())
    assert rec.stream == "stdout" and not rec.partial and rec.data == b"hello world"
    assert rec.time == datetime(2026, 11, 28, 0, 21, 26, 864821, tzinfo=UTC)


def test_parse_record_keeps_empty_lines_and_rejects_garbage():
    assert logfile.parse_record(f"{T1} stderr F".encode()).data == b""
    assert logfile.parse_record(b"not a log line") is None
    assert logfile.parse_record(f"{T1} stdin F x".encode()) is None


def test_partial_records_are_joined_per_stream():
    raw = [f"{T1} stdout P abc".encode(), f"{T1} stderr F err".encode(), f"{T2} stdout F def".encode()]
    lines = list(logfile.iter_lines(raw))
    assert [(line.stream, line.data) for line in lines] == [("stderr", b"err"), ("stdout", b"abcdef")]
    assert lines[1].time.second == 26  # the first piece dates the line


def write(path, *records):
    path.write_text("".join(f"{t} {s} F {x}\n" for t, s, x in records))


def test_read_log_reads_rotated_files_oldest_first(tmp_path):
    log = tmp_path / "ctr.log"
    write(tmp_path / "ctr.log.2", (T1, "stdout", "one"))
    write(tmp_path / "ctr.log.1", (T2, "stdout", "two"))
    write(log, (T3, "stderr", "three"))
    assert [line.text for line in logfile.read_log(log)] == ["one", "two", "three"]


def test_read_log_filters_streams_since_until_and_tail(tmp_path):
    log = tmp_path / "ctr.log"
    write(log, (T1, "stdout", "a"), (T2, "stderr", "b"), (T3, "stdout", "c"))
    assert [x.text for x in logfile.read_log(log, streams=["stdout"])] == ["a", "c"]
    since = logfile.parse_timestamp(T2)
    assert [x.text for x in logfile.read_log(log, since=since)] == ["b", "c"]
    assert [x.text for x in logfile.read_log(log, until=since)] == ["a"]
    assert [x.text for x in logfile.read_log(log, tail=2)] == ["b", "c"]
    assert list(logfile.read_log(log, tail=0)) == []


def test_read_log_of_a_missing_file_is_empty(tmp_path):
    assert list(logfile.read_log(tmp_path / "none.log")) == []


def test_rotate_shifts_files_and_asks_for_a_reopen(tmp_path):
    log = tmp_path / "ctr.log"
    write(tmp_path / "ctr.log.1", (T1, "stdout", "old"))
    write(log, (T2, "stdout", "new"))
    calls = []
    logfile.rotate(log, keep=2, reopen=lambda: calls.append(1))
    assert calls == [1] and not log.exists()
    assert [p.name for p in logfile.log_files(log)] == ["ctr.log.2", "ctr.log.1"]
    logfile.rotate(log, keep=2, reopen=lambda: None)
    assert [p.name for p in logfile.log_files(log)] == ["ctr.log.2"]  # the oldest was dropped


def test_follow_sees_new_lines_and_a_replaced_file(tmp_path):
    log = tmp_path / "ctr.log"
    write(log, (T1, "stdout", "first"))
    stop = threading.Event()
    seen = []

    def run():
        for line in logfollow.follow(log, stop=stop, poll_interval=0.01):
            seen.append(line.text)
            if len(seen) == 3:
                stop.set()

    th = threading.Thread(target=run)
    th.start()
    try:
        wait_until(lambda: seen == ["first"], timeout=5, interval=0.01, what="the first line")
        with open(log, "a") as fh:
            fh.write(f"{T2} stdout F second\n")
        wait_until(lambda: len(seen) == 2, timeout=5, interval=0.01, what="the second line")
        log.rename(tmp_path / "ctr.log.1")  # rotation: a new inode appears at the path
        write(log, (T3, "stdout", "third"))
    finally:
        th.join(5)
        stop.set()
    assert seen == ["first", "second", "third"]


def test_follow_reads_what_was_written_to_the_old_file_after_the_rotation(tmp_path, monkeypatch):
    # conmon writes to the renamed file until it reopens the log. Here the rename, a late write to the
    # old file and the new file all land between the follower's last (empty) read and its check for a
    # replaced file: the late line must still be read before the new file is opened.
    log = tmp_path / "ctr.log"
    write(log, (T1, "stdout", "first"))
    real_replaced = logfollow._replaced
    rotated_once = []

    def rotate_in_the_window(fh, path):
        if not rotated_once:
            rotated_once.append(True)
            rotated = tmp_path / "ctr.log.1"
            log.rename(rotated)
            with open(rotated, "a") as old:
                old.write(f"{T2} stdout F late\n")
            write(log, (T3, "stdout", "third"))
        return real_replaced(fh, path)

    monkeypatch.setattr(logfollow, "_replaced", rotate_in_the_window)
    stop = threading.Event()
    seen = []
    for line in logfollow.follow(log, stop=stop, poll_interval=0.01):
        seen.append(line.text)
        if line.text == "third":
            break
    assert seen == ["first", "late", "third"]


def test_follow_with_tail_yields_only_the_last_lines_first(tmp_path):
    log = tmp_path / "ctr.log"
    write(log, (T1, "stdout", "a"), (T2, "stdout", "b"), (T3, "stdout", "c"))
    stop = threading.Event()
    out = []
    for line in logfollow.follow(log, stop=stop, tail=1, poll_interval=0.01):
        out.append(line.text)
        stop.set()
    assert out == ["c"]


def _rotate_by_hand(log, keep):
    """What logfile.rotate does, without a conmon to reopen: shift the names, drop past `keep`."""
    logfile.rotate(log, keep=keep, reopen=lambda: None)


def _follower_holding_the_first_file(log):
    """A follower that read the first file's line "a1" and holds it open; "a2" is then added to it."""
    write(log, (T1, "stdout", "a1"))
    lines = logfollow.follow(log, stop=threading.Event(), poll_interval=0.01)
    assert next(lines).text == "a1"
    with open(log, "a") as fh:
        fh.write(f"{T1} stdout F a2\n")
    return lines


def _read_until_c1(lines):
    seen = []
    for line in lines:
        seen.append(line.text)
        if line.text == "c1":
            return seen
    return seen


def test_a_follower_several_rotations_behind_reads_every_file_in_between(tmp_path):
    log = tmp_path / "ctr.log"
    lines = _follower_holding_the_first_file(log)
    _rotate_by_hand(log, keep=5)
    write(log, (T2, "stdout", "b1"), (T2, "stdout", "b2"))
    _rotate_by_hand(log, keep=5)
    write(log, (T3, "stdout", "c1"))
    assert _read_until_c1(lines) == ["a2", "b1", "b2", "c1"]


def test_a_follower_whose_file_was_dropped_goes_on_with_the_oldest_kept(tmp_path):
    log = tmp_path / "ctr.log"
    lines = _follower_holding_the_first_file(log)
    _rotate_by_hand(log, keep=1)
    write(log, (T2, "stdout", "b1"))
    _rotate_by_hand(log, keep=1)  # the first file is gone from the directory; the follower still holds it
    write(log, (T3, "stdout", "c1"))
    assert _read_until_c1(lines) == ["a2", "b1", "c1"]
