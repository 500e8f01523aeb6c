"""Paged reads and search over a container's whole log (all rotated files), for the dashboard's log view.

A position in the log is a cursor `"<inode>-<offset>"`: the byte offset of a record's start in the
file with that inode. Rotation renames files (`<log>` → `<log>.1` …), which keeps their inodes, so a
cursor stays valid until its file is deleted by the rotation's `keep`; such a cursor means "the
oldest line still kept". Pages never load the whole log: they seek by cursor, or by time with a
binary search over the (time-ordered) records, and read only the bytes they return.

- `page_before(ref, cursor | time+skip, limit)`: up to `limit` lines that end before the position.
  `before_time` + `skip` address the oldest line a page got over the websocket, which carries no
  cursor: everything before the last `skip` lines whose millisecond is `before_time`'s.
- `page_after(ref, cursor, limit)`: up to `limit` lines from the position on.
- `search(ref, text, since, until, after, limit)`: the first `limit` lines (oldest first) whose
  text contains `text` (case-insensitive) within [since, until), scanning raw 1 MiB chunks with
  bytes.find, so a rare word in a 1,000,000-line log takes one pass at memory speed.

Each returned line is a `Hit(cursor, line)`. Partial records (P) are joined inside a page; a line
cut by a page's edge shows as its pieces.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from engine.errors import InvalidArgument
from engine.runtime import logfile

MAX_LIMIT = 2000
CHUNK = 1 << 20
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Hit:
    cursor: str  # where the line's first record starts
    line: logfile.LogLine


@dataclass(frozen=True)
class Page:
    lines: list[Hit]
    start: str | None  # cursor of the first line (None: empty page)
    end: str | None  # cursor just after the last line
    more_before: bool
    more_after: bool


@dataclass(frozen=True)
class Matches:
    hits: list[Hit]
    next: str | None  # resume the search here; None: the range is exhausted


# -- files and cursors --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _File:
    path: Path
    inode: int
    size: int


def _files(path: Path) -> list[_File]:
    out = []
    for f in logfile.log_files(path):
        try:
            st = os.stat(f)
        except FileNotFoundError:
            continue
        out.append(_File(f, st.st_ino, st.st_size))
    return out


def parse_cursor(text: str) -> tuple[int, int]:
    inode, sep, offset = text.partition("-")
    if not sep or not inode.isdigit() or not offset.isdigit():
        raise InvalidArgument(f"invalid log position {text!r}")
    return int(inode), int(offset)


def _locate(files: list[_File], cursor: str) -> tuple[int, int]:
    """(file index, offset) of a cursor; a file rotated away means the start of the oldest kept."""
    inode, offset = parse_cursor(cursor)
    for i, f in enumerate(files):
        if f.inode == inode:
            return i, min(offset, f.size)
    return 0, 0


def _cursor(f: _File, offset: int) -> str:
    return f"{f.inode}-{offset}"


def _millis(when: datetime) -> int:
    return (when - _EPOCH) // timedelta(milliseconds=1)


def _record_millis(raw: bytes) -> int | None:
    stamp = raw.split(b" ", 1)[0]
    try:
        return _millis(logfile.parse_timestamp(stamp))
    except (ValueError, UnicodeDecodeError):
        return None


# -- seeking by time ----------------------------------------------------------------------------------


def _record_at(fh, offset: int, size: int) -> tuple[int, int | None]:  # type: ignore[no-untyped-def]
    """The first record starting at or after `offset`: (its start, its time in ms or None at the end)."""
    if offset > 0:
        fh.seek(offset - 1)
        if fh.read(1) != b"\n":
            fh.readline()
    else:
        fh.seek(0)
    while True:
        start = fh.tell()
        if start >= size:
            return size, None
        raw = fh.readline()
        ms = _record_millis(raw)
        if ms is not None:
            return start, ms


def _first_at_or_after(f: _File, key: int) -> int:
    """Offset of the first record of `f` whose millisecond is >= key (binary search, then a short scan)."""
    with open(f.path, "rb") as fh:
        lo, hi = 0, f.size
        while hi - lo > 4096:
            mid = (lo + hi) // 2
            start, ms = _record_at(fh, mid, f.size)
            if ms is None or ms >= key:
                hi = mid
            else:
                lo = start + 1
        offset, ms = _record_at(fh, lo, f.size)
        while ms is not None and ms < key:
            fh.seek(offset)
            offset += len(fh.readline())
            offset, ms = _record_at(fh, offset, f.size)
        return offset


def _seek_time(files: list[_File], key: int) -> tuple[int, int]:
    """(file index, offset) of the first record at or after millisecond `key`, across the files."""
    for i, f in enumerate(files):
        offset = _first_at_or_after(f, key)
        if offset < f.size:
            return i, offset
    last = len(files) - 1
    return (last, files[last].size) if files else (0, 0)


# -- reading records forwards and backwards -----------------------------------------------------------


def _forward(files: list[_File], index: int, offset: int) -> Iterator[tuple[int, int, bytes]]:
    """(file index, offset, raw record) from a position to the end of the log."""
    for i in range(index, len(files)):
        f = files[i]
        with open(f.path, "rb") as fh:
            fh.seek(offset if i == index else 0)
            pos = fh.tell()
            while pos < f.size:
                raw = fh.readline()
                if not raw.endswith(b"\n"):
                    break  # a record being written
                yield i, pos, raw
                pos += len(raw)


def _backward(files: list[_File], index: int, offset: int) -> Iterator[tuple[int, int, bytes]]:
    """(file index, offset, raw record) from just before a position back to the start of the log."""
    for i in range(index, -1, -1):
        f = files[i]
        end = offset if i == index else f.size
        with open(f.path, "rb") as fh:
            tail = b""  # the first, maybe incomplete, record of the previous chunk (with its newline)
            while end > 0:
                start = max(0, end - 65536)
                fh.seek(start)
                pieces = (fh.read(end - start) + tail).split(b"\n")
                pieces.pop()  # after the last newline: empty, or a record being written
                if start > 0:
                    tail = pieces.pop(0) + b"\n"
                    pos = start + len(tail)
                else:
                    tail, pos = b"", 0
                starts = []
                for piece in pieces:
                    starts.append((pos, piece + b"\n"))
                    pos += len(piece) + 1
                yield from ((i, p, raw) for p, raw in reversed(starts))
                end = start


def _join(records: list[tuple[int, int, bytes]], files: list[_File]) -> list[Hit]:
    """Records (oldest first) → lines with the cursor of each line's first record. Pieces with no
    full record after them (a line being written) are left out."""
    hits: list[Hit] = []
    pending: dict[str, tuple[str, datetime, bytearray]] = {}
    for i, pos, raw in records:
        rec = logfile.parse_record(raw)
        if rec is None:
            continue
        first = pending.pop(rec.stream, None)
        if first is None:
            first = (_cursor(files[i], pos), rec.time, bytearray())
        first[2].extend(rec.data)
        if rec.partial:
            pending[rec.stream] = first
        else:
            hits.append(Hit(first[0], logfile.LogLine(first[1], rec.stream, bytes(first[2]))))
    return hits


def _limit(limit: int) -> int:
    if limit < 1:
        raise InvalidArgument("limit must be at least 1")
    return min(limit, MAX_LIMIT)


def _log(ref: str | Path) -> list[_File]:
    """The files of a container's log; a Path is a log file itself (the tests and the bench)."""
    if isinstance(ref, Path):
        return _files(ref)
    from engine.services import bundle, containers  # here: the pure part imports without Django

    container = containers.resolve(ref)
    return _files(bundle.paths(container.id).log)


# -- the public calls ---------------------------------------------------------------------------------


def page_before(
    ref: str | Path,
    *,
    cursor: str | None = None,
    before_time: datetime | None = None,
    skip: int = 0,
    limit: int = 500,
) -> Page:
    """Up to `limit` lines ending before `cursor`, or before the last `skip` lines of `before_time`'s
    millisecond; neither: the log's last lines."""
    limit = _limit(limit)
    files = _log(ref)
    if not files:
        return Page([], None, None, False, False)
    if cursor is not None:
        index, offset = _locate(files, cursor)
    elif before_time is not None:
        index, offset = _seek_time(files, _millis(before_time) + 1)
    else:
        index, offset = len(files) - 1, files[-1].size
    key = _millis(before_time) if before_time is not None and cursor is None else None
    records: list[tuple[int, int, bytes]] = []
    complete, more, skipping = 0, False, skip > 0 and key is not None
    line: list[tuple[int, int, bytes]] = []  # while skipping: a full record and the pieces before it
    for i, pos, raw in _backward(files, index, offset):
        parts = raw.split(b" ", 3)
        full = len(parts) >= 3 and parts[2] == b"F"
        if skipping:
            # Pass the newest `skip` lines of that millisecond; a line's time is its first piece's.
            if not full:  # pieces before the position belong to a line that ends after it
                line.append((i, pos, raw))
                continue
            if line and skip > 0 and _record_millis(line[-1][2]) == key:
                skip -= 1
                line = [(i, pos, raw)]
                continue
            if not line:
                line = [(i, pos, raw)]
                continue
            skipping = False
            records.extend(line)
            complete += 1
        if complete >= limit and full:
            more = True
            break
        records.append((i, pos, raw))
        complete += full
    if skipping and line and not (skip > 0 and _record_millis(line[-1][2]) == key):
        records.extend(line)  # the start of the log
    records.reverse()
    hits = _join(records, files)
    end = _cursor(files[index], offset) if index < len(files) else None
    return Page(hits, hits[0].cursor if hits else None, end, more, True)


def page_after(ref: str | Path, *, cursor: str, limit: int = 500) -> Page:
    """Up to `limit` lines from `cursor` on (the line at the cursor first)."""
    limit = _limit(limit)
    files = _log(ref)
    if not files:
        return Page([], None, None, False, False)
    index, offset = _locate(files, cursor)
    records: list[tuple[int, int, bytes]] = []
    complete, more, end = 0, False, _cursor(files[index], offset)
    for i, pos, raw in _forward(files, index, offset):
        if complete >= limit:
            more = True
            break
        records.append((i, pos, raw))
        end = _cursor(files[i], pos + len(raw))
        parts = raw.split(b" ", 3)
        complete += len(parts) >= 3 and parts[2] == b"F"
    hits = _join(records, files)
    before = index > 0 or offset > 0
    return Page(hits, hits[0].cursor if hits else None, end, before, more)


def search(
    ref: str | Path,
    text: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    after: str | None = None,
    limit: int = 100,
) -> Matches:
    """The first `limit` lines (oldest first) containing `text`, case-insensitively, in [since, until);
    `after` (a Matches.next) resumes a search."""
    needle = text.lower().encode()
    if not text.strip():
        raise InvalidArgument("search text is empty")
    if len(needle) > 500:
        raise InvalidArgument("search text is longer than 500 characters")
    limit = _limit(limit)
    files = _log(ref)
    if not files:
        return Matches([], None)
    if after is not None:
        index, offset = _locate(files, after)
    elif since is not None:
        index, offset = _seek_time(files, _millis(since))
    else:
        index, offset = 0, 0
    stop_key = _millis(until) if until is not None else None
    hits: list[Hit] = []
    for i in range(index, len(files)):
        f = files[i]
        with open(f.path, "rb") as fh:
            pos = offset if i == index else 0
            while pos < f.size:
                fh.seek(pos)
                chunk = fh.read(min(CHUNK, f.size - pos))
                cut = chunk.rfind(b"\n") + 1
                if cut == 0:
                    if len(chunk) < CHUNK:
                        break  # a record being written
                    cut = len(chunk)  # one record over 1 MiB: search its first MiB
                chunk = chunk[:cut]
                if stop_key is not None:
                    last = chunk.rfind(b"\n", 0, len(chunk) - 1) + 1
                    last_ms = _record_millis(chunk[last:])
                    if last_ms is not None and last_ms >= stop_key:
                        chunk = chunk[: _cut_before(chunk, stop_key)]
                        cut = -1
                lower = chunk.lower()
                at = lower.find(needle)
                while at >= 0:
                    start = chunk.rfind(b"\n", 0, at) + 1
                    stop = chunk.find(b"\n", at) + 1 or len(chunk)
                    rec = logfile.parse_record(chunk[start:stop])
                    if rec is not None and needle in rec.data.lower():
                        hits.append(
                            Hit(_cursor(f, pos + start), logfile.LogLine(rec.time, rec.stream, rec.data))
                        )
                        if len(hits) >= limit:
                            return Matches(hits, _cursor(f, pos + stop))
                    at = lower.find(needle, stop)
                if cut < 0:
                    return Matches(hits, None)
                pos += cut
    return Matches(hits, None)


def _cut_before(chunk: bytes, key: int) -> int:
    """Length of the prefix of `chunk` (whole records) whose records are before millisecond `key`."""
    lo, hi = 0, len(chunk)
    # Records are time-ordered: binary search on record starts.
    while lo < hi:
        mid = (lo + hi) // 2
        start = chunk.rfind(b"\n", 0, mid) + 1
        ms = _record_millis(chunk[start : chunk.find(b"\n", start) + 1])
        if ms is not None and ms >= key:
            hi = start
        else:
            nxt = chunk.find(b"\n", mid)
            lo = nxt + 1 if nxt >= 0 else len(chunk)
    return lo
