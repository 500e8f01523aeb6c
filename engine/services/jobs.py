"""Jobs: long work (load, import, pull, build, prune) run in a worker thread with stored progress.

The dashboard starts a job and returns at once; the page follows `job.<id>` on the channel layer
and can be reopened later (the row keeps the latest progress). The engine function itself only
sees a `progress` callable.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from django.db import close_old_connections
from django.utils import timezone

from engine import conf, events
from engine.errors import EngineError, InvalidState, JobNotFound
from engine.models import Job, JobState
from engine.progress import LayerProgress, OutputLine, ProgressEvent, RowProgress, StepProgress
from engine.store.diskspace import full_disk_error

logger = logging.getLogger(__name__)

THROTTLE = 0.25  # seconds between stored updates: about 4 a second
Work = Callable[..., dict[str, Any]]


def group_name(job_id: uuid.UUID | str) -> str:
    return f"job.{job_id}"


class _Reporter:
    """The progress callable handed to the engine: keeps per-layer bars and throttles writes.

    It may be called from any thread (layer decoders report from their own). An update held back by
    the throttle is stored by a short timer, so the last line before a quiet spell reaches the page.
    """

    def __init__(self, job: Job) -> None:
        self.job = job
        self.layers: dict[str, dict[str, Any]] = {}
        self.lines: list[str] = []
        self.step: dict[str, Any] | None = None
        self.rows: dict[str, dict[str, Any]] = {}  # bulk actions: one per container, in order
        self._last = 0.0
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._dirty = False

    def __call__(self, event: ProgressEvent) -> None:
        with self._lock:
            if isinstance(event, LayerProgress):
                self.layers[event.id] = asdict(event)
            elif isinstance(event, StepProgress):
                self.step = asdict(event)
            elif isinstance(event, RowProgress):
                self.rows[event.id] = asdict(event)
            elif isinstance(event, OutputLine):
                self.lines = (self.lines + [event.text])[-200:]
            self._dirty = True
            now = time.monotonic()
            finished = isinstance(event, LayerProgress) and event.total and event.done >= event.total
            if now - self._last >= THROTTLE or finished:
                self._store()
            elif self._timer is None:
                self._timer = threading.Timer(THROTTLE, self._trailing)
                self._timer.daemon = True
                self._timer.start()

    def _trailing(self) -> None:
        try:
            with self._lock:
                self._timer = None
                if self._dirty:
                    self._store()
        finally:
            close_old_connections()

    def snapshot(self) -> dict[str, Any]:
        out = {"layers": list(self.layers.values()), "step": self.step, "lines": self.lines[-50:]}
        if self.rows:
            out["rows"] = list(self.rows.values())
        return out

    def flush(self) -> None:
        """Store what is held back now and stop the timer (at the end of the job)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._store()

    def _store(self) -> None:
        self._last = time.monotonic()
        self._dirty = False
        self.job.progress = self.snapshot()
        Job.objects.filter(pk=self.job.pk).update(progress=self.job.progress)
        _send(self.job, {"type": "job.progress", "progress": self.job.progress, "state": self.job.state})


def _send(job: Job, message: dict[str, Any]) -> None:
    try:
        from asgiref.sync import async_to_sync
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        if layer is not None:
            async_to_sync(layer.group_send)(group_name(job.pk), message)
    except Exception:  # noqa: BLE001 — a page missing a push catches up from the row
        logger.debug("could not push job %s", job.pk, exc_info=True)


# Cancel switches of the jobs running in this process that can be cancelled, by job id.
_cancels: dict[str, threading.Event] = {}
_cancels_lock = threading.Lock()


def start(
    kind: str,
    title: str,
    work: Work,
    *,
    actor: str,
    cleanup: Callable[[], None] | None = None,
    cancel: threading.Event | None = None,
) -> Job:
    """Create a job row and run `work(progress=…)` in a thread. Returns the queued job at once.

    With `cancel`, `cancel_job()` can set that event; the work must watch it (builds do).
    """
    job = Job.objects.create(kind=kind, title=title[:500], created_by=actor, pid=os.getpid())
    if cancel is not None:
        with _cancels_lock:
            _cancels[str(job.pk)] = cancel
    thread = threading.Thread(target=_run, args=(job, work, actor, cleanup), name=f"job-{kind}", daemon=True)
    thread.start()
    return job


def can_cancel(job_id: str | uuid.UUID) -> bool:
    """True while the job runs in this process and takes a cancel request."""
    with _cancels_lock:
        return str(job_id) in _cancels


def cancel_job(job_id: str | uuid.UUID) -> None:
    """Ask a running job to stop. Raise InvalidState for a finished job or one that cannot be cancelled."""
    job = get(job_id)
    with _cancels_lock:
        event = _cancels.get(str(job.pk))
    if event is None:
        if job.state in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED):
            raise InvalidState(f"the job has already finished ({job.state})")
        raise InvalidState(
            "this job cannot be cancelled", hint="only builds started by this server process can be cancelled"
        )
    event.set()


def run_inline(kind: str, title: str, work: Work, *, actor: str) -> Job:
    """Run a job in this thread (tests, CLI)."""
    job = Job.objects.create(kind=kind, title=title[:500], created_by=actor, pid=os.getpid())
    _run(job, work, actor, None)
    job.refresh_from_db()
    return job


def _run(job: Job, work: Work, actor: str, cleanup: Callable[[], None] | None) -> None:
    reporter = _Reporter(job)
    try:
        Job.objects.filter(pk=job.pk).update(state=JobState.RUNNING)
        job.state = JobState.RUNNING
        with events.acting_as(actor):
            result = work(progress=reporter)
        reporter.flush()
        _finish(job, JobState.SUCCEEDED, result=result or {})
    except EngineError as exc:
        reporter.flush()
        cancelled = _was_cancelled(job)
        _finish(job, JobState.CANCELLED if cancelled else JobState.FAILED, error=str(exc))
    except Exception as exc:  # noqa: BLE001 — the job row must say what happened, whatever it was
        full = full_disk_error(exc, conf.root())  # ENOSPC or SQLite's "disk is full", raw
        if full is None:
            logger.exception("job %s failed", job.pk)
        reporter.flush()
        _finish(job, JobState.FAILED, error=str(full) if full is not None else f"internal error: {exc}")
    finally:
        with _cancels_lock:
            _cancels.pop(str(job.pk), None)
        if cleanup is not None:
            try:
                cleanup()
            except Exception:  # noqa: BLE001
                logger.warning("job %s cleanup failed", job.pk, exc_info=True)
        close_old_connections()


def _was_cancelled(job: Job) -> bool:
    with _cancels_lock:
        event = _cancels.get(str(job.pk))
    return event is not None and event.is_set()


def _finish(job: Job, state: str, *, result: dict[str, Any] | None = None, error: str = "") -> None:
    job.state = state
    Job.objects.filter(pk=job.pk).update(
        state=state, result=result or {}, error=error, finished=timezone.now()
    )
    _send(
        job,
        {
            "type": "job.progress",
            "progress": job.progress,
            "state": state,
            "error": error,
            "result": result or {},
        },
    )


def get(job_id: str | uuid.UUID) -> Job:
    try:
        return Job.objects.get(pk=job_id)
    except (Job.DoesNotExist, ValueError):
        raise JobNotFound(f"no such job: {job_id}") from None


def fail_interrupted() -> int:
    """At start-up: a job still marked running by a process that is gone failed ("interrupted")."""
    count = 0
    for job in Job.objects.filter(state__in=[JobState.QUEUED, JobState.RUNNING]):
        if job.pid == os.getpid():
            continue
        try:
            os.kill(job.pid, 0)
            continue
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        Job.objects.filter(pk=job.pk).update(
            state=JobState.FAILED, error="interrupted", finished=timezone.now()
        )
        count += 1
    return count
