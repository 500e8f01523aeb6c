"""Supervision: what happens when containers exit, at start-up and in the background.

conmon's exit command lands in `handle_exit` (a fresh process, maybe with no server alive): it
records the exit, then applies --rm or the restart policy. `reconcile_all` does the same for
everything once when the server starts, and `maintain` is the server's housekeeping step (log
rotation, exits whose command could not run). The lifecycle moves themselves are in lifecycle.py.
"""

from __future__ import annotations

import logging

from engine import locks
from engine.errors import ContainerNotFound, EngineError
from engine.models import Container, ContainerState
from engine.runtime import conmon, logfile, logkeeper
from engine.services import bundle, containers, lifecycle, logkeeping, netsetup

logger = logging.getLogger(__name__)


def handle_exit(container_id: str) -> None:
    """conmon's exit command: record the exit, then apply --rm or the restart policy.

    Runs in a fresh process, possibly with no Berth server alive, so it must do everything itself.
    """
    container = Container.objects.filter(id=container_id).first()
    if container is None:
        bundle.teardown(container_id)  # removed meanwhile (rm -f): only the runtime is left
        return
    with locks.locked("container", container.id):
        try:
            containers.refresh(container)
        except ContainerNotFound:
            bundle.teardown(container_id)
            return
        if container.state in lifecycle.ACTIVE:
            lifecycle.reconcile(container)
        _apply_exit_policy(container)


def _apply_exit_policy(container: Container) -> None:
    """After an exit was recorded (lock held): --rm removes, a restart policy restarts."""
    if container.state != ContainerState.EXITED:
        return
    if container.host_config.get("AutoRemove"):
        if not locks.is_held("attached", container.id):  # else the attached client removes it
            lifecycle._remove_locked(container, volumes=True)
        return
    if should_restart(container):
        lifecycle._transition(
            container, ContainerState.RESTARTING, action=None, restart_count=container.restart_count + 1
        )
        try:
            lifecycle._start_locked(container, before_start=None, action="restart")
        except Exception as exc:  # noqa: BLE001 — a failed restart must leave a truthful record
            lifecycle._transition(container, ContainerState.EXITED, action="die", error=str(exc)[:2000])


def should_restart(container: Container) -> bool:
    policy = container.host_config.get("RestartPolicy") or {}
    name = policy.get("Name", "no")
    if container.stopped_by_user or name in ("", "no"):
        return False
    if name in ("always", "unless-stopped"):
        return True
    if name == "on-failure" and container.exit_code != 0:
        limit = int(policy.get("MaximumRetryCount") or 0)
        return limit == 0 or container.restart_count < limit
    return False


def reconcile_all() -> None:
    """At start-up: reconcile every active container and apply restart policies to those that died."""
    for container in Container.objects.filter(state__in=[*lifecycle.ACTIVE, ContainerState.EXITED]):
        try:
            with locks.locked("container", container.id):
                containers.refresh(container)
                was_active = container.state in lifecycle.ACTIVE
                lifecycle.reconcile(container)
                if container.state == ContainerState.EXITED and (was_active or _policy_always(container)):
                    _apply_exit_policy(container)
        except Exception:  # noqa: BLE001 — one broken container must not stop the others
            logger.exception("reconciling container %s failed", container.id)
    try:
        netsetup.reconcile()
    except EngineError:
        logger.exception("rebuilding network rules and names failed")


def _policy_always(container: Container) -> bool:
    """`always` restarts after an engine restart even if it was stopped before; `unless-stopped` not."""
    policy = (container.host_config.get("RestartPolicy") or {}).get("Name")
    return policy == "always" and not container.stopped_by_user


def log_limits(container: Container) -> tuple[int, int]:
    """(max-size in bytes, max-file) from the container's LogConfig."""
    return logkeeping.limits(container.host_config)


def rotate_log(container: Container) -> bool:
    """Rotate the container's log if it reached max-size; True if it did.

    conmon 2.1.6 truncates (loses) its log at --log-size-max instead of rotating, so the engine
    rotates at max-size and gives conmon no cap (bundle.launch). The log keeper does this without
    the server (runtime/logkeeper); log readers and the server's housekeeping call this too. Takes the container's lock only if it is free: a stop or start in progress defers
    rotation to the next call. With max-file 1 there is nothing to keep, and conmon's own
    truncation is Docker's behaviour.
    """
    p = bundle.paths(container.id)
    entry = logkeeping.job(container, log=p.log, ctl=p.ctl, conmon_pidfile=p.conmon_pidfile)
    if entry.max_file < 2 or not logfile.needs_rotation(p.log, entry.max_size):
        return False
    if not lifecycle._alive(container.conmon_pid):
        return False  # nobody writes any more: the log cannot grow past its cap
    return logkeeper.rotate(entry)


def maintain() -> int:
    """One step of the server's housekeeping loop; call it every few seconds.

    For every container recorded as active: rotate its log when it reached max-size, and record
    the exit of one whose exit file exists and apply --rm or its restart policy (in case its exit
    command could not run; whichever comes first does it, under the lock); restart a name server
    that died while it had names to serve. Never
    blocks on a busy container. Returns how many containers it acted on.
    """
    acted = 0
    for container in Container.objects.filter(state__in=lifecycle.ACTIVE):
        try:
            if rotate_log(container):
                acted += 1
            if conmon.read_exit_code(bundle.paths(container.id).exit_dir, container.id) is not None:
                with locks.try_locked("container", container.id) as taken:
                    if taken:
                        containers.refresh(container)
                        lifecycle.reconcile(container)
                        _apply_exit_policy(container)
                        acted += 1
        except EngineError as exc:
            logger.warning("housekeeping of container %s: %s", container.name, exc)
    try:
        if netsetup.revive_dns():
            acted += 1
    except EngineError as exc:
        logger.warning("restarting the name server: %s", exc)
    return acted
