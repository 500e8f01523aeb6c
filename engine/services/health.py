"""Health checks: run one check in a running container, record its result, act when it turns unhealthy.

The monitor process (services/monitor.py) decides when a container is due; this module runs that
one check: a non-tty exec of the check's command with its timeout enforced (the process is killed
and the result is exit -1 "Health check exceeded timeout (…)", as in Docker), output capped at 4096
bytes. The result goes into `container.health` under the container's lock with Docker's rules
(healthconfig.judge); a change of status is a `health_status` event, and turning unhealthy applies
the container's on-failure action (none, kill, stop or restart, Podman's
--health-on-failure). The checks write no exec session rows or exec events: one every few seconds
per container would bury the real ones.
"""

from __future__ import annotations

import logging
import os
import select
import time
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from engine import events, locks
from engine.errors import CommandNotRunnable, EngineError
from engine.models import Container, ContainerState
from engine.runtime import execproc
from engine.services import execs, healthconfig, lifecycle
from engine.services.healthconfig import HealthSpec

logger = logging.getLogger(__name__)

OUTPUT_CAP = 4096  # bytes of a check's output kept, as Docker's maxOutputLen
QUIET_AFTER_EXIT = 0.2  # a background child may hold the pipes open: stop reading once quiet


@dataclass(frozen=True)
class Result:
    """One check's outcome: a State.Health.Log item."""

    start: datetime
    end: datetime
    exit_code: int
    output: str

    def as_log(self) -> dict[str, object]:
        return {
            "Start": _iso(self.start),
            "End": _iso(self.end),
            "ExitCode": self.exit_code,
            "Output": self.output,
        }


@dataclass(frozen=True)
class Outcome:
    """What `check` did: the status before and after (None when the result was discarded)."""

    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        return self.after is not None and self.before != self.after


def check(container_id: str) -> Outcome:
    """Run the container's check once, record the result and apply the on-failure action.

    A container that has no check, is not running, or stopped or restarted while the check ran
    gets nothing recorded (Outcome(None, None)). Never raises for a failing check; engine errors
    from the on-failure action are logged.
    """
    container = Container.objects.filter(id=container_id).first()
    spec = healthconfig.effective(container) if container else None
    if container is None or spec is None or container.state != ContainerState.RUNNING:
        return Outcome(None, None)
    started_at = container.started_at
    result = probe(container, spec)
    outcome = record(container_id, spec, result, started_at=started_at)
    if outcome.changed and outcome.after == healthconfig.UNHEALTHY and spec.on_failure != "none":
        _act(container_id, container.name, spec.on_failure)
    return outcome


def probe(container: Container, spec: HealthSpec) -> Result:
    """Exec the check's command (no tty, no stdin) and wait for it at most `spec.timeout` seconds."""
    start = timezone.now()
    request = execs.ExecRequest(command=tuple(spec.argv))
    try:
        terminal = execs.open_session(container.id, request, record=False)
    except CommandNotRunnable as exc:
        return Result(start, timezone.now(), exc.exit_status, exc.reason[:OUTPUT_CAP])
    except EngineError as exc:
        return Result(start, timezone.now(), -1, str(exc)[:OUTPUT_CAP])
    try:
        output, timed_out = _collect(terminal, spec.timeout)
    finally:
        code = execproc.close(terminal)  # kills the check's own process if it still runs, and reaps it
    if timed_out:
        message = f"Health check exceeded timeout ({healthconfig.duration_text(spec.timeout)})"
        return Result(start, timezone.now(), -1, f"{message}: {output}" if output else message)
    if code is None:
        return Result(start, timezone.now(), -1, f"health check of {container.name} has no exit code")
    return Result(start, timezone.now(), code, output)


def record(container_id: str, spec: HealthSpec, result: Result, *, started_at: datetime | None) -> Outcome:
    """Fold one result into the container's health under its lock; record an event on a change.

    The result is dropped when the container is gone, no longer running (reconciled first after a
    failed check), or was started again since the check began (`started_at` differs): it says
    nothing about the current run.
    """
    with locks.locked("container", container_id):
        container = Container.objects.filter(id=container_id).first()
        if container is not None and result.exit_code != 0:
            lifecycle.reconcile(container)  # a check that failed because the container just exited
        if (
            container is None
            or container.state != ContainerState.RUNNING
            or container.started_at != started_at
        ):
            return Outcome(None, None)
        before = (container.health or {}).get("Status") or healthconfig.STARTING
        since_start = (result.start - started_at).total_seconds() if started_at else 0.0
        container.health = healthconfig.judge(
            container.health or {}, result.as_log(), spec, since_start=since_start
        )
        container.save(update_fields=["health"])
        after = container.health["Status"]
        if after != before:
            events.record(
                "container",
                "health_status",
                object_id=container.id,
                object_name=container.name,
                attributes={"status": after},
                actor="engine",
            )
    return Outcome(before, after)


def _act(container_id: str, name: str, action: str) -> None:
    """Apply --health-on-failure: kill (SIGKILL, no restart policy), stop, or restart."""
    logger.warning("container %s is unhealthy: applying --health-on-failure=%s", name, action)
    try:
        with events.acting_as("engine"):
            if action == "kill":
                lifecycle.kill(container_id, signal="KILL")
            elif action == "stop":
                lifecycle.stop(container_id)
            elif action == "restart":
                lifecycle.restart(container_id)
    except EngineError as exc:
        logger.warning("--health-on-failure=%s of container %s failed: %s", action, name, exc)


def _collect(terminal: execproc.Terminal, timeout: float) -> tuple[str, bool]:
    """Read the check's stdout and stderr (first OUTPUT_CAP bytes kept) until it is done or the timeout.

    Returns (output, timed_out); output that did not fit ends in "...", as in Docker.
    """
    deadline = time.monotonic() + timeout
    open_fds = [fd for fd in (terminal.stdout_fd, terminal.stderr_fd) if fd >= 0]
    kept = bytearray()
    truncated = False
    quiet_since: float | None = None
    while open_fds or not terminal.reaped.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return _text(kept, truncated), True
        got = False
        if open_fds:
            ready, _, _ = select.select(open_fds, [], [], min(left, 0.05))
        else:
            terminal.reaped.wait(min(left, 0.05))
            ready = []
        for fd in ready:
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if not data:
                open_fds.remove(fd)
                continue
            got = True
            room = OUTPUT_CAP - len(kept)
            kept += data[: max(room, 0)]
            truncated = truncated or len(data) > room
        if terminal.reaped.is_set() and not got:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > QUIET_AFTER_EXIT:
                break
        else:
            quiet_since = None
    return _text(kept, truncated), False


def _text(data: bytearray, truncated: bool) -> str:
    text = bytes(data).decode(errors="replace")
    return f"{text}..." if truncated else text


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
