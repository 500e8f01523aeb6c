"""A container's log over a websocket: the last N lines, then new ones as they are written.

Route: ws/containers/<id>/logs/?tail=1000[&since=<ISO time>]. `tail` is a number of lines (default
1,000, at most 100,000) or `all`; `since` resumes after a reconnect. The server sends:

- {"type": "lines", "lines": [[time, stream, text], …]} — `time` is ISO 8601 (UTC, milliseconds),
  `stream` "stdout" or "stderr", `text` either a string or, for lines with ANSI colours, a list of
  [text, classes] pairs from dashboard/ansi.py (classes are whitelisted; the client sets textContent).
  Lines are batched: a frame goes out every FLUSH_INTERVAL or as soon as BATCH lines are waiting.
- {"type": "end", "reason": "…"} once the container is no longer running and the file is drained.
- {"type": "error", "message": "…"} then a close with 4000 + status, when reading fails.

The file is read by `containerinfo.logs(follow=True)` in a thread of its own (it blocks while it
waits for new lines); a stop Event set on disconnect ends it. The reader hands lines over through a
bounded deque: when the browser cannot keep up the reader waits, so memory stays bounded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import deque
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from django.db import close_old_connections

from dashboard import ansi
from dashboard.consumers.base import GatedConsumer
from engine.errors import EngineError
from engine.services import containerinfo, containers

logger = logging.getLogger(__name__)

DEFAULT_TAIL = 1000
MAX_TAIL = 100_000
BATCH = 500
FLUSH_INTERVAL = 0.1
MAX_PENDING = 20_000


def parse_tail(value: str | None) -> int | None:
    """`?tail=` → a line count (None = the whole log). Bad values fall back to the default."""
    if value is None or value == "":
        return DEFAULT_TAIL
    if value == "all":
        return None
    try:
        return min(max(int(value), 0), MAX_TAIL)
    except ValueError:
        return DEFAULT_TAIL


def parse_since(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


class LineFramer:
    """Turn LogLines into "lines" frame items. conmon stamps every line of one read with the same
    time, so the last formatted time is reused: formatting dominated the cost of a log flood."""

    def __init__(self) -> None:
        self._time: Any = None
        self._text = ""

    def __call__(self, line: Any) -> list[Any]:
        if line.time != self._time:
            self._time = line.time
            self._text = line.time.isoformat(timespec="milliseconds")
        return [self._text, line.stream, ansi.payload(line.text)]


def frame_line(line: Any) -> list[Any]:
    """One log line as it travels in a "lines" frame."""
    return LineFramer()(line)


class LogsConsumer(GatedConsumer):
    action = "logs"

    def resolve(self) -> Any:
        return containers.resolve(self.scope["url_route"]["kwargs"]["container_id"])

    async def start(self) -> None:
        params = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        tail = parse_tail((params.get("tail") or [None])[0])
        since = parse_since((params.get("since") or [None])[0])
        if since is not None:
            tail = None  # resuming: everything after the last line the page has
        self.stop = threading.Event()
        self.pending: deque[list[Any]] = deque()
        self.cond = threading.Condition()
        self.wake = asyncio.Event()
        # Set by the reader when it asked the loop to flush, cleared by the flusher: one wake-up per
        # flush rather than one per chunk of lines (each is a syscall and a GIL hand-over).
        self.wake_asked = False
        self.done = False
        self.error: EngineError | None = None
        loop = asyncio.get_running_loop()
        query = containerinfo.LogQuery(follow=True, tail=tail, since=since)
        # A thread of its own, not the loop's executor: a follower lives as long as the socket.
        self.reader = threading.Thread(
            target=self._read, args=(self.target.id, query, loop), name="berth-logs", daemon=True
        )
        self.reader.start()
        self.flusher = asyncio.create_task(self._flush_loop())

    def _read(self, container_id: str, query: Any, loop: asyncio.AbstractEventLoop) -> None:
        frame = LineFramer()
        pending = self.pending
        count = 0
        try:
            for line in containerinfo.logs(container_id, query, stop=self.stop):
                # deque.append is atomic: no lock per line; the flusher pops what it saw.
                pending.append(frame(line))
                count += 1
                if count % 256 == 0:
                    if len(pending) >= BATCH and not self.wake_asked:
                        self.wake_asked = True
                        _wake(loop, self.wake)
                    if len(pending) >= MAX_PENDING:
                        with self.cond:
                            while len(pending) >= MAX_PENDING and not self.stop.is_set():
                                self.cond.wait(0.5)
                if self.stop.is_set():
                    return
        except EngineError as exc:
            self.error = exc
        except Exception:  # noqa: BLE001 — a reader crash must end the stream, not hang it
            logger.exception("log reader for %s failed", container_id)
        finally:
            self.done = True
            _wake(loop, self.wake)
            close_old_connections()

    async def _flush_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self.wake.wait(), FLUSH_INTERVAL)
            except TimeoutError:
                pass
            self.wake.clear()
            self.wake_asked = False
            done = self.done  # read before draining, so no line written after it is left behind
            pending = self.pending
            batch = [pending.popleft() for _ in range(len(pending))]
            with self.cond:
                self.cond.notify_all()
            for i in range(0, len(batch), BATCH):
                await self.send(text_data=json.dumps({"type": "lines", "lines": batch[i : i + BATCH]}))
            if done:
                if self.error is not None:
                    await self.fail(self.error)
                else:
                    await self.send_json({"type": "end", "reason": "the container is not running"})
                    await self.close(code=1000)
                return

    async def disconnect(self, code: int) -> None:
        stop = getattr(self, "stop", None)
        if stop is not None:
            stop.set()
            with self.cond:
                self.cond.notify_all()
        flusher = getattr(self, "flusher", None)
        if flusher is not None and not flusher.done():
            flusher.cancel()


def _wake(loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
    try:
        loop.call_soon_threadsafe(event.set)
    except RuntimeError:
        pass  # the loop is closed: the socket is gone
