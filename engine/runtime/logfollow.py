"""Follow a container's k8s-file log as conmon writes it, across rotations (see runtime/logfile.py).

A follower polls the live file. Rotation renames `<log>` to `<log>.1` while the follower may hold the
old inode open: it reads that inode to its end, then the file written after it (matched by inode,
since names shift), so a follower that fell several rotations behind still yields every line.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

from engine.errors import RuntimeFailure
from engine.runtime.logfile import POLL_INTERVAL, STREAMS, Joiner, LogLine, log_files, parse_record


def follow(
    path: Path,
    *,
    stop: threading.Event,
    since: datetime | None = None,
    tail: int | None = None,
    streams: Iterable[str] = STREAMS,
    poll_interval: float = POLL_INTERVAL,
) -> Iterator[LogLine]:
    """Yield existing lines (as read_log) and then new ones as they are written, until `stop` is set.

    Polls the file. The live file is opened before the rotated ones are listed, so a rotation in
    between is noticed (same inode) rather than skipped; when `<log>` is later replaced (our rotation
    or conmon's cap) the old inode is read to its end, then the file written after it: a reader
    that fell several rotations behind reads every file in between, not just the newest.
    """
    wanted = frozenset(streams)
    joiner = Joiner()
    backlog: deque[LogLine] | None = deque(maxlen=max(tail, 0)) if tail is not None else None

    def accept(line: LogLine | None) -> bool:
        return line is not None and line.stream in wanted and (since is None or line.time >= since)

    def accepted(raws: Iterable[bytes]) -> Iterator[LogLine]:
        for raw in raws:
            rec = parse_record(raw)
            line = joiner.feed(rec) if rec else None
            if line is not None and accept(line):
                yield line

    fh = _open(path)
    try:
        own = os.fstat(fh.fileno()) if fh else None
        for f in log_files(path):
            if f == Path(path):
                continue
            try:
                st = os.stat(f)
                if own is not None and (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino):
                    continue
                with open(f, "rb") as old:
                    if backlog is not None:
                        backlog.extend(accepted(old))
                    else:
                        yield from accepted(old)
            except FileNotFoundError:
                continue
        buf = b""
        while not stop.is_set():
            chunk = fh.read(65536) if fh else b""
            if chunk:
                buf += chunk
                *complete, buf = buf.split(b"\n")
                if backlog is not None:
                    backlog.extend(accepted(complete))
                else:
                    yield from accepted(complete)
                continue
            if backlog is not None:  # the first end of the live file: history is complete
                yield from backlog
                backlog = None
            if _replaced(fh, path):
                if fh:
                    # conmon may have written to the old inode after the read above and before it
                    # reopened the log: read it to its end, or those lines would be lost.
                    for chunk in iter(lambda: fh.read(65536), b""):  # noqa: B023 — used at once
                        buf += chunk
                        *complete, buf = buf.split(b"\n")
                        yield from accepted(complete)
                    following = _successor(fh, path)
                    fh.close()
                    fh = following
                else:
                    fh = _open(path)
                buf = b""
                continue
            stop.wait(poll_interval)
        if backlog is not None:
            yield from backlog
        # The writer ended mid-line (output without a final newline): that partial line is output too.
        for line in joiner.flush():
            if accept(line):
                yield line
    finally:
        if fh:
            fh.close()


def _open(path: Path):  # type: ignore[no-untyped-def]
    try:
        return open(path, "rb")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RuntimeFailure(f"cannot read log {path}: {exc}") from exc


def _successor(fh, path: Path):  # type: ignore[no-untyped-def]
    """Open the file of the log written after `fh`'s (None if there is none yet).

    Rotation shifts names (`<log>` → `.1` → `.2` …), so files are matched by inode. If `fh`'s file
    was dropped (the oldest kept went), every remaining file is newer: the oldest comes next. A
    rotation between listing and opening is noticed (the opened inode is not the listed one) and
    the list is read again.
    """
    own = os.fstat(fh.fileno())
    for _attempt in range(5):
        listed = []
        for f in log_files(path):
            try:
                st = os.stat(f)
            except FileNotFoundError:
                continue
            listed.append((f, (st.st_dev, st.st_ino)))
        ids = [ident for _, ident in listed]
        mine = (own.st_dev, own.st_ino)
        index = ids.index(mine) + 1 if mine in ids else 0
        if index >= len(listed):
            return _open(path)
        f, ident = listed[index]
        opened = _open(f)
        if opened is None:
            continue
        st = os.fstat(opened.fileno())
        if (st.st_dev, st.st_ino) == ident:
            return opened
        opened.close()
    return _open(path)


def _replaced(fh, path: Path) -> bool:  # type: ignore[no-untyped-def]
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    if fh is None:
        return True
    own = os.fstat(fh.fileno())
    return (st.st_dev, st.st_ino) != (own.st_dev, own.st_ino) or st.st_size < fh.tell()
