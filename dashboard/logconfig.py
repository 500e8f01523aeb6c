"""Log lines for where stderr goes: journald gets a priority prefix and no timestamp, a terminal both.

Under systemd, stderr is a stream to journald and JOURNAL_STREAM names it ("<dev>:<inode>").
journald stamps every line itself and reads a leading `<N>` as its syslog priority (sd-daemon(3)),
so a timestamp of our own would be printed twice. The check compares the inode, as systemd advises:
a child whose stderr was redirected elsewhere inherits the variable but not the stream.
"""

from __future__ import annotations

import logging
import os
import sys

# logging level → syslog priority (sd-daemon's <N> prefix)
_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


def under_journald(environ: dict[str, str] | None = None, fd: int | None = None) -> bool:
    """True when stderr (or `fd`) is the journal stream systemd gave this service."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    dev, sep, ino = value.partition(":")
    if not sep or not dev.isdigit() or not ino.isdigit():
        return False
    try:
        st = os.fstat(sys.stderr.fileno() if fd is None else fd)
    except (OSError, ValueError):
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


class Formatter(logging.Formatter):
    """`<4>engine.x: message` for journald; `2026-… WARNING engine.x: message` elsewhere."""

    def __init__(self, journald: bool | None = None) -> None:
        self.journald = under_journald() if journald is None else journald
        super().__init__(None if self.journald else "%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if not self.journald:
            return super().format(record)
        priority = _PRIORITY.get(record.levelno, 6 if record.levelno < logging.WARNING else 3)
        text = f"{record.name}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        # Each line is a journal entry of its own; keep the priority on every one.
        return "\n".join(f"<{priority}>{line}" for line in text.splitlines())
