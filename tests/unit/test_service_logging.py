"""Issue 10 house item: under journald, log lines carry a priority and no second timestamp."""

from __future__ import annotations

import logging
import os

from dashboard.logconfig import Formatter, under_journald


def _record(level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord("engine.x", level, __file__, 1, message, (), None)


def test_journald_lines_get_a_priority_and_no_timestamp() -> None:
    text = Formatter(journald=True).format(_record(logging.WARNING, "one\ntwo"))
    assert text == "<4>engine.x: one\n<4>two"


def test_a_terminal_gets_time_and_level() -> None:
    text = Formatter(journald=False).format(_record(logging.ERROR, "broken"))
    assert text.endswith(" ERROR engine.x: broken") and text[:4].isdigit()


def test_journal_stream_counts_only_when_it_is_our_stderr(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "stream"
    path.write_text("")
    fd = os.open(path, os.O_RDONLY)
    try:
        st = os.fstat(fd)
        assert under_journald({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, fd)
        # Inherited by a child whose stderr goes elsewhere: not the journal.
        assert not under_journald({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"}, fd)
        assert not under_journald({}, fd)
        assert not under_journald({"JOURNAL_STREAM": "garbage"}, fd)
    finally:
        os.close(fd)
