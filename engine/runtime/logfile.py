"""Read, follow and rotate conmon's k8s-file container logs.

Line format: `2026-11-28T00:21:26.864821083+00:00 stdout F text` — timestamp, stream, P (partial: the
line continues in the next record of that stream) or F (full), then the data without its newline.

Rotation: conmon 2.1.6's --log-size-max does not rotate. When the next record would pass the cap it
replaces the file with an empty one (write `<log>.tmp`, rename over `<log>`), so everything before is
lost (verified here), and it counts bytes since its start, not since its last reopen, so a cap loses
the live file at every multiple of it even while the engine rotates. Berth therefore gives conmon no
cap when it rotates and rotates itself: `rotate()` renames `<log>` to `<log>.1` (shifting older
files up to `keep`) and asks conmon to reopen through its ctl FIFO; conmon keeps writing to the
renamed inode until it reopens, so no record is lost. The log keeper (runtime/logkeeper) does it
whether or not the web server runs. Readers read `<log>.N` …
`<log>.1`, `<log>` in that order; a follower (runtime/logfollow.py) notices a replaced file by its
inode.
"""

from __future__ import annotations

import functools
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from engine.errors import RuntimeFailure

STREAMS = ("stdout", "stderr")
POLL_INTERVAL = 0.1
MAX_LINE = 1024 * 1024  # a joined line is cut here; a container cannot make the reader hold more


@dataclass(frozen=True)
class LogLine:
    time: datetime  # UTC, microsecond precision (the file has nanoseconds)
    stream: str  # "stdout" or "stderr"
    data: bytes  # without the trailing newline

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Record:
    """One physical record of the file: a full line or one partial piece of it."""

    time: datetime
    stream: str
    partial: bool
    data: bytes


def parse_timestamp(raw: bytes | str) -> datetime:
    """Parse conmon's RFC 3339 timestamp with nanoseconds into an aware UTC datetime.

    Raises ValueError on anything else.
    """
    text = raw.decode() if isinstance(raw, bytes) else raw
    # Fast path for conmon's own layout (2026-11-28T00:21:26.864821083+00:00): lines share their
    # second, so the whole-second part is parsed once and only the fraction per line.
    if len(text) == 35 and text[19] == "." and text[29] in "+-" and text[20:29].isdigit():
        return _second(text[:19], text[29:]) + timedelta(microseconds=int(text[20:26]))
    return _parse_slow(text, raw)


@functools.lru_cache(maxsize=256)
def _second(whole: str, zone: str) -> datetime:
    value = datetime.fromisoformat(whole + zone)
    return value.astimezone(UTC)


def _parse_slow(text: str, raw: bytes | str) -> datetime:
    main, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        frac, tz = rest[:digits], rest[digits:]
        text = f"{main}.{(frac + '000000')[:6]}{tz}"
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"timestamp without a zone: {raw!r}")
    return value.astimezone(UTC)


def parse_record(line: bytes) -> Record | None:
    """Parse one line of the file (without or with its newline); None if it is not a record."""
    line = line.rstrip(b"\n")
    parts = line.split(b" ", 3)
    if len(parts) < 3 or parts[1] not in (b"stdout", b"stderr") or parts[2] not in (b"P", b"F"):
        return None
    try:
        when = parse_timestamp(parts[0])
    except ValueError:
        return None
    return Record(when, parts[1].decode(), parts[2] == b"P", parts[3] if len(parts) == 4 else b"")


class Joiner:
    """Join P records per stream until their F record; the first piece's time is the line's time."""

    def __init__(self) -> None:
        self._pending: dict[str, tuple[datetime, bytearray]] = {}

    def feed(self, rec: Record) -> LogLine | None:
        pending = self._pending.get(rec.stream)
        if pending is None:
            pending = (rec.time, bytearray())
        when, buf = pending
        if len(buf) < MAX_LINE:
            buf += rec.data[: MAX_LINE - len(buf)]
        if rec.partial:
            self._pending[rec.stream] = (when, buf)
            return None
        self._pending.pop(rec.stream, None)
        return LogLine(when, rec.stream, bytes(buf))

    def flush(self) -> list[LogLine]:
        out = [LogLine(when, stream, bytes(buf)) for stream, (when, buf) in self._pending.items()]
        self._pending.clear()
        return sorted(out, key=lambda line: line.time)


def log_files(path: Path) -> list[Path]:
    """Return the existing files of one log, oldest first: <log>.N … <log>.1, <log>."""
    path = Path(path)
    rotated = []
    for candidate in path.parent.glob(path.name + ".*"):
        suffix = candidate.name[len(path.name) + 1 :]
        if suffix.isdigit():
            rotated.append((int(suffix), candidate))
    files = [p for _, p in sorted(rotated, reverse=True)]
    if path.exists():
        files.append(path)
    return files


def iter_lines(chunks: Iterable[bytes]) -> Iterator[LogLine]:
    """Turn raw file lines into joined LogLines (pure; used by the readers and the tests)."""
    joiner = Joiner()
    for raw in chunks:
        rec = parse_record(raw)
        if rec is not None:
            line = joiner.feed(rec)
            if line is not None:
                yield line
    yield from joiner.flush()


def read_log(
    path: Path,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    tail: int | None = None,
    streams: Iterable[str] = STREAMS,
) -> Iterator[LogLine]:
    """Yield the log's lines across rotated files, oldest first.

    `since`/`until` bound the line time (inclusive/exclusive), `tail` keeps only the last N lines
    after filtering, `streams` selects stdout and/or stderr. A missing log yields nothing.
    """
    wanted = frozenset(streams)
    if tail is not None and since is None and until is None:
        # Only the end of the log is needed: read it backwards instead of parsing every record.
        yield from deque(
            (line for line in iter_lines(_tail_records(path, tail, wanted)) if line.stream in wanted),
            maxlen=tail,
        )
        return

    def raw() -> Iterator[bytes]:
        for f in log_files(path):
            try:
                with open(f, "rb") as fh:
                    yield from fh
            except FileNotFoundError:
                continue  # rotated away between listing and opening
            except OSError as exc:
                raise RuntimeFailure(f"cannot read log {f}: {exc}") from exc

    selected = (
        line
        for line in iter_lines(raw())
        if line.stream in wanted
        and (since is None or line.time >= since)
        and (until is None or line.time < until)
    )
    if tail is None:
        yield from selected
    elif tail > 0:
        yield from deque(selected, maxlen=tail)


def _tail_records(path: Path, count: int, streams: frozenset[str], block: int = 1 << 16) -> list[bytes]:
    """The raw records holding the last `count` complete lines of the wanted streams, oldest first.

    Starts at a line boundary: records before the first complete line of each stream are dropped,
    so a partial line cut by the block boundary never appears.
    """
    if count <= 0:
        return []
    collected: list[bytes] = []
    complete = 0
    for f in reversed(log_files(path)):
        try:
            fh = open(f, "rb")
        except FileNotFoundError:
            continue
        with fh:
            end = fh.seek(0, os.SEEK_END)
            tail = b""
            while end > 0 and complete <= count:
                start = max(0, end - block)
                fh.seek(start)
                chunk = fh.read(end - start) + tail
                end = start
                lines = chunk.split(b"\n")
                tail = lines.pop(0) if start > 0 else b""
                for raw in reversed(lines):
                    if not raw:
                        continue
                    collected.append(raw)
                    parts = raw.split(b" ", 3)
                    if len(parts) >= 3 and parts[2] == b"F" and parts[1].decode() in streams:
                        complete += 1
            if tail and complete <= count:
                collected.append(tail)
        if complete > count:
            break
    collected.reverse()
    if complete > count:
        # Drop records up to the first complete line: what precedes it may be half a line.
        for i, raw in enumerate(collected):
            parts = raw.split(b" ", 3)
            if len(parts) >= 3 and parts[2] == b"F":
                collected = collected[i + 1 :]
                break
    return collected


def needs_rotation(path: Path, max_size: int) -> bool:
    """True when the live log has reached `max_size` bytes."""
    try:
        return os.stat(path).st_size >= max_size
    except FileNotFoundError:
        return False


def rotate(path: Path, *, keep: int, reopen: Callable[[], None]) -> None:
    """Rotate `<log>` to `<log>.1` (keeping `keep` old files) and call `reopen` (conmon.reopen_log).

    A caller holds the container's lock; concurrent readers see either the old or the new set.
    """
    if keep < 1:
        raise ValueError("keep must be at least 1")
    path = Path(path)
    try:
        # Every file from .keep up goes: a smaller `keep` (the disk is short) drops the oldest at once.
        for old in path.parent.glob(f"{path.name}.*"):
            suffix = old.name[len(path.name) + 1 :]
            if suffix.isdigit() and int(suffix) >= keep:
                old.unlink(missing_ok=True)
        for n in range(keep - 1, 0, -1):
            older = path.parent / f"{path.name}.{n}"
            if older.exists():
                os.rename(older, path.parent / f"{path.name}.{n + 1}")
        if path.exists():
            os.rename(path, path.parent / f"{path.name}.1")
    except OSError as exc:
        raise RuntimeFailure(f"cannot rotate log {path}: {exc}") from exc
    reopen()


def remove_logs(path: Path) -> None:
    """Delete the log and its rotated files (container removal)."""
    for f in log_files(path):
        f.unlink(missing_ok=True)


def wait_for_file(path: Path, timeout: float) -> bool:
    """Wait up to `timeout` seconds for `path` to exist (conmon creates the log lazily)."""
    deadline = time.monotonic() + timeout
    while not Path(path).exists():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True
