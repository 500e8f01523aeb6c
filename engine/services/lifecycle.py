"""The container lifecycle: start, stop, restart, kill, pause, unpause, wait, remove, and exits.

Every call: resolve, take the container's lock, reconcile with runc and conmon's exit file, check
the move against runtime/lifecycle.py, do the work under an undo stack, then save the new state
through `_transition` (the one place that assigns a state) which also records the event.

Over 400 lines because it is the container state machine: every move shares the lock, reconcile and transition
helpers and reads best in one place.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal as signals
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from django.utils import timezone

from engine import events, locks
from engine.errors import CommandNotRunnable, ContainerNotFound, InvalidArgument, InvalidState, RuntimeFailure
from engine.models import Container, ContainerState
from engine.runtime import cgroups, conmon
from engine.runtime.runc import ContainerGone
from engine.services import bundle, containers, healthconfig, monitor
from engine.services.options import (
    DEFAULT_STOP_TIMEOUT,
    parse_signal,
    signal_name,
)
from engine.undo import UndoStack

logger = logging.getLogger(__name__)

ACTIVE = (ContainerState.RUNNING, ContainerState.PAUSED, ContainerState.RESTARTING)
POLL = 0.005


def _transition(container: Container, state: str, *, action: str | None, **fields: Any) -> None:
    """Save a new state (and fields) and record the event: the only place a state is assigned."""
    container.state = state
    for key, value in fields.items():
        setattr(container, key, value)
    container.save(update_fields=["state", *fields.keys()])
    if action:
        attributes = {"state": state}
        if action == "die":
            attributes["exitCode"] = str(container.exit_code)
            if container.stopped_by_user:  # alerts tell a crash from a stop, kill, rm -f or restart
                attributes["stoppedByUser"] = "true"
        events.record(
            "container", action, object_id=container.id, object_name=container.name, attributes=attributes
        )


# -- reconciliation -----------------------------------------------------------------------------


def reconcile(container: Container) -> Container:
    """Bring the record in line with reality (call with the lock held, or accept a racy read)."""
    if container.state not in ACTIVE and container.state != ContainerState.CREATED:
        return container
    p = bundle.paths(container.id)
    code = conmon.read_exit_code(p.exit_dir, container.id)
    if code is not None and container.state in ACTIVE:
        _finish(container, code)
        return container
    if container.state in ACTIVE and not _alive(container.pid) and not _alive(container.conmon_pid):
        # Neither the process nor its supervisor is left, and no exit file was written.
        _finish(container, 255, error="the container process vanished without an exit status")
        return container
    if container.state in (ContainerState.RUNNING, ContainerState.PAUSED):
        state = _runc_status(container.id)
        if state == "paused" and container.state != ContainerState.PAUSED:
            _transition(container, ContainerState.PAUSED, action="pause")
        elif state == "running" and container.state == ContainerState.PAUSED:
            _transition(container, ContainerState.RUNNING, action="unpause")
    return container


def _runc_status(container_id: str) -> str | None:
    try:
        state = bundle.runc().state(container_id)
    except RuntimeFailure:
        return None
    return state.status if state else None


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); it has exited for our purposes.
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().split(b") ", 1)[1][:1] != b"Z"
    except (OSError, IndexError):
        return False


def _finish(container: Container, code: int, *, error: str = "") -> None:
    """Record an exit and tear the runtime down (rootfs unmounted, runc container deleted)."""
    oom = False
    try:
        oom = cgroups.oom_killed(container.id)
    except RuntimeFailure as exc:  # the exit is still recorded; only the OOM flag is unknown
        logger.warning("container %s: cannot tell whether it was OOM-killed: %s", container.name, exc)
    bundle.teardown(container.id)
    _transition(
        container,
        ContainerState.EXITED,
        action="die",
        exit_code=code,
        oom_killed=oom,
        error=error,
        pid=0,
        conmon_pid=0,
        finished_at=timezone.now(),
    )
    if oom:
        events.record("container", "oom", object_id=container.id, object_name=container.name)


def _plainly_running(container: Container) -> bool:
    """Running by the record, no exit file yet, and its process alive: nothing to reconcile.

    A pause made outside Berth (runc pause by hand) is then noticed by the next full reconcile
    (`maintain`, start-up), not by every list.
    """
    if container.state != ContainerState.RUNNING:
        return False
    return not bundle.paths(container.id).exit_file.exists() and _alive(container.pid)


def refresh(container: Container) -> Container:
    """Reconcile under the lock when the record says the container is active (cheap otherwise)."""
    if container.state not in ACTIVE:
        return container
    if _plainly_running(container):
        return container  # the common case costs a file probe and a kill(0), not a lock and runc
    with locks.locked("container", container.id):
        containers.refresh(container)
        return reconcile(container)


# -- start --------------------------------------------------------------------------------------

# Callbacks run, like `before_start`, between create and `runc start` of a container started by this
# process: the API's attach registers here because its request arrives before the start request.
_start_observers: dict[str, list[Callable[[bundle.Paths], None]]] = {}
_start_observers_lock = threading.Lock()


@contextlib.contextmanager
def observing_start(container_id: str, callback: Callable[[bundle.Paths], None]) -> Iterator[None]:
    """Run `callback(paths)` before `runc start` of every start of the container in this process.

    The callback runs with the container's lock held and must be quick; what it raises is logged
    and does not stop the start.
    """
    with _start_observers_lock:
        _start_observers.setdefault(container_id, []).append(callback)
    try:
        yield
    finally:
        with _start_observers_lock:
            callbacks = _start_observers.get(container_id, [])
            if callback in callbacks:
                callbacks.remove(callback)
            if not callbacks:
                _start_observers.pop(container_id, None)


def _notify_start_observers(container_id: str) -> None:
    with _start_observers_lock:
        callbacks = list(_start_observers.get(container_id, ()))
    for callback in callbacks:
        try:
            callback(bundle.paths(container_id))
        except Exception:  # noqa: BLE001 — an observer must not fail the start
            logger.exception("start observer of container %s failed", container_id)


@contextlib.contextmanager
def _held(ref: str) -> Iterator[Container]:
    """Resolve ``ref``, hold its lock, re-read its row and reconcile it with the runtime for the block."""
    container = containers.resolve(ref)
    with locks.locked("container", container.id):
        containers.refresh(container)
        reconcile(container)
        yield container


def start(ref: str, *, before_start: Callable[[bundle.Paths], None] | None = None) -> Container:
    """Start a created or exited container. `before_start` runs between create and start (attach)."""
    with _held(ref) as container:
        if container.state in (ContainerState.RUNNING,):
            return container  # docker start of a running container is not an error
        containers.check("start", container)
        _start_locked(container, before_start=before_start, action="start")
    return container


def _start_locked(
    container: Container, *, before_start: Callable[[bundle.Paths], None] | None, action: str
) -> None:
    with UndoStack() as undo:
        try:
            spawned = bundle.launch(container, undo=undo)
        except CommandNotRunnable as exc:
            container.exit_code = exc.exit_status
            container.error = exc.reason
            container.save(update_fields=["exit_code", "error"])
            raise CommandNotRunnable(
                f"container {container.name} could not start: {exc.reason}",
                reason=exc.reason,
                exit_status=exc.exit_status,
                argv=exc.argv,
                stderr=exc.stderr,
            ) from None
        if before_start is not None:
            before_start(bundle.paths(container.id))
        _notify_start_observers(container.id)
        bundle.runc().start(container.id)
        _transition(
            container,
            ContainerState.RUNNING,
            action=action,
            pid=spawned.pid,
            conmon_pid=spawned.conmon_pid,
            started_at=timezone.now(),
            exit_code=0,
            oom_killed=False,
            error="",
            stopped_by_user=False,
            health=healthconfig.started_health(container),  # Docker: starting again, the log kept
        )
    monitor.ensure_running_quietly()  # health checks and alerts run there, server or not


# -- stop, kill, restart -------------------------------------------------------------------------


def stop(ref: str, *, timeout: int | None = None, signal: str | None = None) -> Container:
    """Send the stop signal, then SIGKILL after `timeout` seconds (the container's StopTimeout by default).

    The lock is not held while waiting out the timeout, so a concurrent `kill` or `rm -f` acts at
    once (podman "kill - concurrent stop", "stop - unlock while waiting for timeout"); the
    second half of the stop then finds the container exited and returns.
    """
    with _held(ref) as container:
        container.stopped_by_user = True
        container.save(update_fields=["stopped_by_user"])
        if container.state not in ACTIVE:
            return container
        stop_signal, wait_for = _stop_parameters(container, timeout, signal)
        if wait_for == 0 or stop_signal is None:
            _kill_locked(container)
            events.record("container", "stop", object_id=container.id, object_name=container.name)
            return container
        run = (container.pid, container.started_at)
        paused = container.state == ContainerState.PAUSED
        bundle.mark_exit_handled(container.id)  # the second half below records the exit
        _send_stop_signal(container, stop_signal)
        if paused:
            _resume_quietly(container)
    await_exit(container, wait_for if wait_for > 0 else None)
    with locks.locked("container", container.id):
        containers.refresh(container)
        if container.state not in ACTIVE or (container.pid, container.started_at) != run:
            return container  # killed, removed or restarted by someone else meanwhile
        if not _wait_exit(container, 0):
            logger.warning(
                "StopSignal %s failed to stop container %s in %s seconds, resorting to SIGKILL",
                signal_name(stop_signal),
                container.name,
                wait_for,
            )
            _kill_locked(container)
        events.record("container", "stop", object_id=container.id, object_name=container.name)
    return container


def _stop_parameters(container: Container, timeout: int | None, signal: str | None) -> tuple[int | None, int]:
    """The signal (None: the stored one cannot be sent, so SIGKILL at once) and the grace period.

    An explicit `signal` that is not valid raises InvalidArgument; a stored one (a row written
    before STOPSIGNAL was validated) must never make a container unstoppable.
    """
    stop_signal = parse_signal(signal) if signal else _stored_stop_signal(container)
    if timeout is None:
        timeout = container.config.get("StopTimeout")
        timeout = DEFAULT_STOP_TIMEOUT if timeout is None else int(timeout)
    return stop_signal, timeout


def _stored_stop_signal(container: Container) -> int | None:
    value = container.config.get("StopSignal") or "SIGTERM"
    try:
        return parse_signal(str(value))
    except InvalidArgument:
        logger.warning(
            "container %s has an invalid StopSignal %r: using SIGKILL", container.name, str(value)[:32]
        )
        return None


def _send_stop_signal(container: Container, number: int) -> None:
    """Send the stop signal; a failure is logged, since SIGKILL follows after the grace period anyway."""
    try:
        _signal(container, number)
    except RuntimeFailure as exc:
        logger.warning("could not send %s to container %s: %s", signal_name(number), container.name, exc)


def await_exit(container: Container, timeout: float | None) -> None:
    """Wait without the lock until the exit file appears or the process is gone (or the timeout).

    Sleeps on a pidfd of the container's init rather than polling, so the exit is seen within a
    millisecond; the exit file follows as soon as conmon has reaped the process.
    """
    exit_dir = bundle.paths(container.id).exit_dir
    deadline = None if timeout is None else time.monotonic() + timeout
    pidfd = _pidfd(container.pid)
    try:
        while True:
            if conmon.read_exit_code(exit_dir, container.id) is not None:
                return
            if pidfd is None and not _alive(container.conmon_pid):
                return  # neither the process nor conmon: nothing more will be written
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            if pidfd is not None:
                ready, _, _ = select.select([pidfd], [], [], 0.05 if left is None else min(left, 0.05))
                if ready:
                    os.close(pidfd)
                    pidfd = None  # it exited: now only conmon's exit file is awaited
            else:
                time.sleep(0.001)
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _pidfd(pid: int) -> int | None:
    """A pidfd for `pid` if it is alive (readable once it exits), else None."""
    if not _alive(pid):
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


def _stop_locked(container: Container, *, timeout: int | None, signal: str | None) -> None:
    """Stop while holding the lock throughout (restart, which must not let anyone in between)."""
    stop_signal, timeout = _stop_parameters(container, timeout, signal)
    paused = container.state == ContainerState.PAUSED
    if timeout != 0 and stop_signal is not None:
        bundle.mark_exit_handled(container.id)  # _wait_exit below records the exit
        _send_stop_signal(container, stop_signal)
        if paused:
            _resume_quietly(container)
        if _wait_exit(container, timeout if timeout >= 0 else None):
            return
        logger.warning(
            "StopSignal %s failed to stop container %s in %s seconds, resorting to SIGKILL",
            signal_name(stop_signal),
            container.name,
            timeout,
        )
    _kill_locked(container)


def _kill_locked(container: Container) -> None:
    """SIGKILL every process of the container (thawing it if paused) and record the exit."""
    paused = container.state == ContainerState.PAUSED
    bundle.mark_exit_handled(container.id)
    _signal(container, signals.SIGKILL, all=True)
    if paused:
        _resume_quietly(container)
    if not _wait_exit(container, 10):
        raise RuntimeFailure(f"container {container.name} did not exit after SIGKILL")


def _signal(container: Container, number: int, *, all: bool = False) -> None:
    try:
        bundle.runc().kill(container.id, number, all=all)
    except ContainerGone:
        pass
    except RuntimeFailure:
        if _alive(container.pid):
            raise


def _resume_quietly(container: Container) -> None:
    try:
        bundle.runc().resume(container.id)
    except RuntimeFailure:
        pass


def _wait_exit(container: Container, timeout: float | None) -> bool:
    """Wait for the exit file (or for the process to vanish), then record the exit. False on timeout."""
    p = bundle.paths(container.id)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        code = conmon.read_exit_code(p.exit_dir, container.id)
        if code is not None:
            _finish(container, code)
            return True
        if not _alive(container.pid):
            # conmon writes the exit file right after reaping; give it a moment, unless it is gone.
            for _ in range(200):
                code = conmon.read_exit_code(p.exit_dir, container.id)
                if code is not None or not _alive(container.conmon_pid):
                    break
                time.sleep(POLL)
            _finish(container, code if code is not None else 137)
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(POLL)


def kill(ref: str, *, signal: str = "KILL") -> Container:
    """Send a signal to the container's main process. An explicit kill never triggers the restart policy."""
    number = parse_signal(signal)
    with _held(ref) as container:
        containers.check("kill", container)
        if container.state == ContainerState.PAUSED and number != signals.SIGKILL:
            # The signal would stay pending until unpause; Docker refuses it the same way.
            raise InvalidState(f"container {container.name} is paused", hint="unpause it first")
        if number in (signals.SIGKILL, _stored_stop_signal(container)):
            # A kill meant to end the container never triggers the restart policy (moby ExitOnNext).
            container.stopped_by_user = True
            container.save(update_fields=["stopped_by_user"])
        if container.state == ContainerState.PAUSED:
            _kill_locked(container)
        else:
            if number == signals.SIGKILL:
                bundle.mark_exit_handled(container.id)  # recorded below by _wait_exit
            _signal(container, number)
        events.record(
            "container",
            "kill",
            object_id=container.id,
            object_name=container.name,
            attributes={"signal": signal_name(number)},
        )
        if number == signals.SIGKILL:
            _wait_exit(container, 10)
    return container


def restart(ref: str, *, timeout: int | None = None) -> Container:
    with _held(ref) as container:
        if container.state == ContainerState.PAUSED:
            raise InvalidState(f"container {container.name} is paused", hint="unpause it first")
        if container.state in ACTIVE:
            container.stopped_by_user = True  # for the die event only; the start below clears it
            _stop_locked(container, timeout=timeout, signal=None)
        _start_locked(container, before_start=None, action="restart")
    return container


def pause(ref: str) -> Container:
    with _held(ref) as container:
        containers.check("pause", container)
        bundle.runc().pause(container.id)
        _transition(container, ContainerState.PAUSED, action="pause")
    return container


def unpause(ref: str) -> Container:
    with _held(ref) as container:
        containers.check("unpause", container)
        bundle.runc().resume(container.id)
        _transition(container, ContainerState.RUNNING, action="unpause")
    return container


# -- wait, exit, remove ---------------------------------------------------------------------------


def wait(ref: str | Container, *, timeout: float | None = None) -> int:
    """Block until the container is not running; return its exit code.

    Given a Container (an attached client's own), a removal meanwhile is not an error: the code
    comes from its `die` event.

    Returns as soon as conmon's exit file holds the code: recording the exit (teardown, state,
    restart policy) is left to conmon's exit command, or to whoever reads the state next, which
    keeps that work off the path from the exit to the caller.
    """
    container = ref if isinstance(ref, Container) else containers.resolve(ref)
    exit_dir = bundle.paths(container.id).exit_dir
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            containers.refresh(container)
        except ContainerNotFound:
            return _last_exit_code(container)  # removed meanwhile (--rm): its die event has the code
        if container.state not in ACTIVE:
            return container.exit_code
        code = conmon.read_exit_code(exit_dir, container.id)
        if code is not None and container.state != ContainerState.RESTARTING:
            return code
        if not _alive(container.pid) and not _alive(container.conmon_pid):
            try:
                container = refresh(container)  # vanished without an exit file: reconcile says so
            except ContainerNotFound:
                return _last_exit_code(container)
            if container.state not in ACTIVE:
                return container.exit_code
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise RuntimeFailure(f"timed out waiting for container {container.name}")
        await_exit(container, 1.0 if left is None else min(left, 1.0))


def _last_exit_code(container: Container) -> int:
    from engine.models import Event

    event = Event.objects.filter(object_id=container.id, action="die").order_by("-time", "-id").first()
    try:
        return int((event.attributes or {}).get("exitCode", "")) if event else container.exit_code
    except (TypeError, ValueError):
        return container.exit_code


def remove(ref: str, *, force: bool = False, volumes: bool = False) -> Container:
    """Remove a container; a running one needs force (it is killed first). Leaves nothing behind."""
    with _held(ref) as container:
        if container.state in ACTIVE:
            if not force:
                containers.check("remove", container)
            container.stopped_by_user = True
            bundle.mark_exit_handled(container.id)
            _signal(container, signals.SIGKILL, all=True)
            if container.state == ContainerState.PAUSED:
                _resume_quietly(container)
            _wait_exit(container, 10)
        _remove_locked(container, volumes=volumes)
    return container


def _remove_locked(container: Container, *, volumes: bool) -> None:
    bundle.teardown(container.id)
    bundle.remove_files(container.id)
    name, cid = container.name, container.id
    containers.remove_records(container, remove_volumes=volumes)
    events.record("container", "remove", object_id=cid, object_name=name)
