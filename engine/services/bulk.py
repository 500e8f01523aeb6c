"""Bulk lifecycle actions: one action on many containers at once, concurrently, with per-row progress.

Each container's own lock (services/lifecycle) makes concurrent calls safe, and `stop` releases that
lock while it waits out the grace period, so stopping N containers takes about one grace period,
not N. The dashboard's bulk bar passes `run` a `progress` callable and receives one `RowProgress` per
change of a row; the engine never knows who listens. The CLI's `stop a b c` (and start, restart, kill,
pause, unpause, rm) goes through `each`, the same pool, with its own options per call.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import TypeVar

from django.db import connection

from engine.errors import EngineError, InvalidArgument
from engine.models import Container
from engine.progress import RowProgress
from engine.services import containers, lifecycle
from engine.services.options import DEFAULT_STOP_TIMEOUT

ACTIONS = ("start", "stop", "restart", "kill", "remove")
MAX_TARGETS = 500
MAX_WORKERS = 16  # stops mostly wait; the cap only bounds threads and concurrent runc calls
# Shown while a row works, and in the summary ("Stopped 3 containers").
WORKING = {
    "start": "Starting",
    "stop": "Stopping",
    "restart": "Restarting",
    "kill": "Killing",
    "remove": "Removing",
}
DONE = {"start": "Started", "stop": "Stopped", "restart": "Restarted", "kill": "Killed", "remove": "Removed"}


@dataclass(frozen=True)
class BulkResult:
    action: str
    done: list[str]
    failed: list[tuple[str, str]]
    seconds: float

    def summary(self) -> str:
        """One line: "Stopped 3 containers in 10.2 s", plus the failures with their reasons."""
        n = len(self.done)
        text = f"{DONE[self.action]} {n} container{'' if n == 1 else 's'} in {self.seconds:.1f} s"
        if self.failed:
            text += f"; {len(self.failed)} failed: " + "; ".join(
                f"{name}: {why}" for name, why in self.failed
            )
        return text


Progress = Callable[[RowProgress], None]  # a jobs._Reporter is one too
T = TypeVar("T")


def resolve_targets(action: str, refs: Sequence[str]) -> list[Container]:
    """Check the action and resolve every reference before any work starts.

    Raises InvalidArgument for an unknown action, no references or too many, ContainerNotFound for
    a reference that matches nothing. Duplicates are acted on once.
    """
    if action not in ACTIONS:
        raise InvalidArgument(f"unknown bulk action {action!r} (one of {', '.join(ACTIONS)})")
    if not refs:
        raise InvalidArgument("select at least one container")
    if len(refs) > MAX_TARGETS:
        raise InvalidArgument(f"at most {MAX_TARGETS} containers at once")
    found: dict[str, Container] = {}
    for ref in refs:
        container = containers.resolve(ref)
        found.setdefault(container.id, container)
    return list(found.values())


def grace_of(container: Container) -> int:
    """The container's stop timeout in seconds (its StopTimeout, else the engine's default)."""
    value = (container.config or {}).get("StopTimeout")
    return DEFAULT_STOP_TIMEOUT if value is None else max(0, int(value))


def run(action: str, targets: Sequence[Container], *, progress: Progress | None = None) -> BulkResult:
    """Do `action` on every target concurrently; return when all have finished.

    Never raises for one container's failure: it is reported as a failed row and in the result.
    Events are recorded by the lifecycle calls, as the caller's actor (the context is copied into
    each worker thread).
    """
    report = progress or (lambda _row: None)
    began = time.monotonic()
    for c in targets:
        report(RowProgress(c.id, c.name, "queued"))
    errors: dict[str, EngineError | None] = {}
    for c, error in each(targets, lambda c: _act_on(action, c, report), name=action):
        errors[c.id] = error
    return BulkResult(
        action=action,
        done=[c.name for c in targets if errors[c.id] is None],
        failed=[(c.name, str(errors[c.id])) for c in targets if errors[c.id] is not None],
        seconds=time.monotonic() - began,
    )


def each(
    items: Sequence[T], act: Callable[[T], object], *, name: str = "each"
) -> Iterator[tuple[T, EngineError | None]]:
    """Call `act(item)` for every item concurrently (at most MAX_WORKERS at once) and yield
    `(item, None)` or `(item, error)` as each one finishes, in the order they finish.

    The one way the engine's front ends act on many containers at once (the dashboard's bulk bar
    through `run`, the CLI's `stop a b c`). An EngineError is the item's outcome, never raised; any
    other exception propagates when its item comes up. Each worker runs in a copy of the caller's
    context (so events record the caller as actor) and closes its own DB connection.
    """
    if not items:
        return
    pool = ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(items)), thread_name_prefix=f"bulk-{name}")
    try:
        futures = {pool.submit(contextvars.copy_context().run, _outcome, act, item): item for item in items}
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:
        # On an early exit (Ctrl-C, a closed pipe) nothing queued starts; what runs is waited for.
        pool.shutdown(wait=True, cancel_futures=True)


def _outcome(act: Callable[[T], object], item: T) -> EngineError | None:
    try:
        act(item)
        return None
    except EngineError as exc:
        return exc
    finally:
        connection.close()  # each worker thread opens its own connection; do not leak it


def _act_on(action: str, container: Container, report: Progress) -> None:
    """Run one container's action in a worker thread, reporting its row; an EngineError propagates."""
    grace: int | None = None
    deadline: float | None = None
    if action in ("stop", "restart") and container.state in ("running", "paused", "restarting"):
        grace = grace_of(container)
        deadline = time.time() + grace
    report(RowProgress(container.id, container.name, "working", WORKING[action], grace, deadline))
    try:
        _call(action, container.id)
    except EngineError as exc:
        report(RowProgress(container.id, container.name, "failed", str(exc)))
        raise
    report(RowProgress(container.id, container.name, "done", DONE[action]))


def _call(action: str, container_id: str) -> None:
    if action == "start":
        lifecycle.start(container_id)
    elif action == "stop":
        lifecycle.stop(container_id)
    elif action == "restart":
        lifecycle.restart(container_id)
    elif action == "kill":
        lifecycle.kill(container_id)
    else:
        lifecycle.remove(container_id, force=True)
