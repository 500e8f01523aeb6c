"""Long engine work behind a JSON-lines answer: pull, push, load, import and build.

The engine reports progress through a callable, but a handler answers with an iterator of chunks.
`Pump` runs the work in a worker thread and hands its events to the connection thread. It holds
the answer back until the work has produced its first event that commits it to a stream: a
failure before that point is still an ordinary HTTP error (400, 404 …), as moby does when nothing
was flushed yet; after it, a failure becomes Docker's `errorDetail` line.
"""

from __future__ import annotations

import contextvars
import logging
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

from engine.errors import EngineError
from engine.progress import LayerProgress, ProgressEvent

log = logging.getLogger(__name__)

T = TypeVar("T")
_DONE = object()
BAR_WIDTH = 50
POLL_SECONDS = 0.25


class Pump(Generic[T]):
    """Run `work(progress)` in its own thread; `start()` waits for the first committal event."""

    def __init__(
        self,
        work: Callable[[Callable[[ProgressEvent], None]], T],
        *,
        name: str,
        committal: Callable[[ProgressEvent], bool] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self._work = work
        self._name = name
        self._committal = committal or (lambda _event: True)
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._held: list[ProgressEvent] = []
        self._finished = False
        self.cancel = cancel
        self.result: T | None = None
        self.error: EngineError | None = None

    def _run(self) -> None:
        from django.db import connections

        try:
            self.result = self._work(self._queue.put)
        except EngineError as exc:
            self.error = exc
        except Exception as exc:  # noqa: BLE001 - a bug still ends the stream in Docker's shape
            log.error("API %s failed", self._name, exc_info=True)
            self.error = EngineError(f"internal error: {type(exc).__name__}: {exc}")
        finally:
            connections.close_all()  # this thread's connections only
            self._queue.put(_DONE)

    def start(self) -> None:
        """Start the work; return once it is committed to a stream, or raise its early error."""
        context = contextvars.copy_context()  # the caller's `acting_as` actor, for engine events
        threading.Thread(target=context.run, args=(self._run,), name=f"api-{self._name}", daemon=True).start()
        while True:
            item = self._queue.get()
            if item is _DONE:
                self._finished = True
                if self.error is not None:
                    raise self.error
                return
            event: Any = item
            self._held.append(event)
            if self._committal(event):
                return

    def events(self, gone: threading.Event) -> Iterator[ProgressEvent]:
        """The work's events until it ends; stop early (and cancel it) when the client hangs up."""
        held, self._held = self._held, []
        yield from held
        while not self._finished:
            try:
                item = self._queue.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if gone.is_set():
                    self.abandon()
                    return
                continue
            if item is _DONE:
                self._finished = True
                return
            event: Any = item
            yield event

    def abandon(self) -> None:
        if self.cancel is not None:
            self.cancel.set()


# -- Docker's JSON messages ------------------------------------------------------------------------


class LayerThrottle:
    """Pass a layer's progress at most every `interval` seconds, as moby's progress reader does.

    A new status for the layer and its last bytes always pass, so the client never misses a step.
    """

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self._last: dict[str, tuple[float, str]] = {}

    def allow(self, event: LayerProgress) -> bool:
        now = time.monotonic()
        previous = self._last.get(event.id)
        finished = bool(event.total) and event.done >= event.total
        if previous is None or previous[1] != event.status or finished or now - previous[0] >= self.interval:
            self._last[event.id] = (now, event.status)
            return True
        return False


_BAR_STATUSES = frozenset({"Downloading", "Pushing", "Loading layer", "Importing", "Extracting", "Saving"})


def error_message(exc: EngineError | str) -> dict[str, Any]:
    message = str(exc)
    return {"errorDetail": {"message": message}, "error": message}


def status_message(text: str, *, id: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"status": text}
    if id:
        out["id"] = id
    return out


def layer_message(event: LayerProgress) -> dict[str, Any]:
    """A per-layer line as moby's JSON progress writer makes it."""
    if event.status in _BAR_STATUSES:
        detail: dict[str, int] = {"current": event.done}
        if event.total:
            detail["total"] = event.total
        return {
            "status": event.status,
            "progressDetail": detail,
            "progress": progress_bar(event.done, event.total),
            "id": event.id,
        }
    return {"status": event.status, "progressDetail": {}, "id": event.id}


def progress_bar(done: int, total: int) -> str:
    """`[=====>      ]  1.05MB/2.1MB`, or just the size when the total is unknown."""
    if total <= 0:
        return f"{human_size(done):>8}"
    filled = min(BAR_WIDTH, BAR_WIDTH * done // total)
    arrow = ">" if filled < BAR_WIDTH else ""
    bar = "=" * filled + arrow + " " * (BAR_WIDTH - filled - len(arrow))
    return f"[{bar}] {human_size(done):>8}/{human_size(total)}"


def human_size(size: float) -> str:
    """Decimal units with three significant digits, as Docker's go-units prints sizes."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.3g}{unit}"
        size /= 1000
    raise AssertionError("unreachable")


# -- request bodies ------------------------------------------------------------------------------


def spool_body(body: Iterator[bytes] | Any, *, prefix: str) -> Path:
    """Copy a (possibly chunked) request body into a new file under the engine's tmp directory.

    The caller owns the file and removes it. A body cut short raises the server's 400 and leaves no file.
    """
    from engine import conf

    conf.ensure_dirs()
    fd, name = tempfile.mkstemp(prefix=prefix, dir=conf.tmp_dir())
    path = Path(name)
    reserve = conf.disk_reserve()
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in body:
                out.write(chunk)
                reserve.written(len(chunk))  # DiskFull: the file is removed below
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path
