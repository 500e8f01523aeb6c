"""Progress reports for long work. The engine never knows who listens: the CLI draws bars, the
dashboard stores them on a Job and pushes them to the page."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO


@dataclass(frozen=True)
class LayerProgress:
    """Bytes done of one layer (or blob) out of total (0 when unknown)."""

    id: str
    done: int
    total: int
    status: str = "Loading"


@dataclass(frozen=True)
class StepProgress:
    """Step n of total, e.g. a build instruction."""

    step: int
    total: int
    text: str


@dataclass(frozen=True)
class OutputLine:
    text: str


@dataclass(frozen=True)
class RowProgress:
    """One object's state in a bulk action (services/bulk).

    `status` is queued, working, done or failed. While a stop or restart waits, `deadline` is the
    (server) epoch second at which SIGKILL follows and `grace` the stop timeout; `sent` is when this
    report was made, so a page can count down without trusting its own clock.
    """

    id: str
    name: str
    status: str
    message: str = ""
    grace: int | None = None
    deadline: float | None = None
    sent: float = field(default_factory=time.time)


ProgressEvent = LayerProgress | StepProgress | OutputLine | RowProgress
Progress = Callable[[ProgressEvent], None]


def ignore(_event: ProgressEvent) -> None:
    """The default listener."""


class CountingReader:
    """Wrap a stream and report bytes read as LayerProgress, at most every `every` bytes."""

    def __init__(
        self, stream: BinaryIO, *, progress: Progress, id: str, total: int, status: str, every: int = 1 << 20
    ) -> None:
        self._stream = stream
        self._progress = progress
        self._id = id
        self._total = total
        self._status = status
        self._every = every
        self._done = 0
        self._reported = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._done += len(data)
        if not data or self._done - self._reported >= self._every:
            self._reported = self._done
            self._progress(LayerProgress(self._id, self._done, self._total, self._status))
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
