"""The monitor: the one supervisor process per engine that runs health checks and evaluates alerts.

Which process runs the checks, and why: health checks must keep running while the web server is
stopped or restarting, and a process per container (Podman's systemd timers, or a thread in
conmon) would multiply processes by containers. So one detached Python process per engine, the
monitor, runs every container's checks (a small thread pool, so a slow check delays no other, and
never two checks at once for one container) and calls `alerts.tick()` each round. It is not part
of the web server: it survives server restarts, and there is exactly one however many servers,
CLI processes and exit commands run. It is started by `ensure_running()`, called after every
container start and when a server starts (and from the server's housekeeping, so a crashed monitor
comes back); a flock under `$BERTH_RUN/monitor/` keeps it single. It stays while a server is up
(runtime/presence) or some running container needs it (it has a health check, or enabled alert
rules exist), and exits about IDLE_EXIT seconds after that stops being true, so an engine with no
server and no such container runs no extra process.

Runs as `manage.py berth monitor <run-dir>` (a hidden command; the run dir in its command line
says whose monitor it is); `ensure_running` starts it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from engine import conf
from engine.errors import RuntimeFailure
from engine.models import AlertRule, Container, ContainerState
from engine.runtime import presence, singleton
from engine.services import bundle, healthconfig
from engine.services.healthconfig import HealthSpec

logger = logging.getLogger(__name__)

ROUND = 0.5  # seconds between rounds: health checks due and alerts.tick()
IDLE_EXIT = 2.0  # seconds without work before the monitor exits
WORKERS = 8  # checks that may run at once (each waits at most its own timeout)
LOG_CAP = 1 << 20  # the monitor's own log file is emptied at start once past this
_LOCK_NAME = "monitor.lock"
_PROJECT = Path(__file__).resolve().parents[2]
_server_fd: int | None = None


def monitor_dir() -> Path:
    return conf.run_dir() / "monitor"


def announce_server() -> None:
    """Mark this process as a running server (until it exits) and make sure the monitor runs.

    Call once when the dashboard or the API socket server starts.
    """
    global _server_fd
    if _server_fd is None:
        _server_fd = presence.hold(conf.run_dir())
    ensure_running_quietly()


def ensure_running() -> bool:
    """Start the monitor unless it runs or has nothing to do; True if one was started.

    Cheap when it runs (one flock probe) and when there is no work (one query). The monitor is
    started through a shell that exits at once, so it goes to PID 1 rather than staying our child.
    """
    directory = monitor_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = _try_lock(directory)
    if fd is None:
        return False  # one runs
    os.close(fd)
    if not has_work():
        return False
    log = directory / "monitor.log"
    if log.exists() and log.stat().st_size > LOG_CAP:
        log.write_text("")
    argv = ["/bin/sh", "-c", '"$@" </dev/null >>"$0" 2>&1 &', str(log)]
    argv += [sys.executable, str(bundle.MANAGE_PY), "berth", "monitor", str(conf.run_dir())]
    env = {**os.environ, **bundle.engine_env()}
    with bundle.ADOPTION_LOCK:  # not inside an exec's subreaper window
        try:
            subprocess.run(argv, env=env, cwd=_PROJECT, check=True, timeout=10, start_new_session=True)
        except (OSError, subprocess.SubprocessError) as exc:
            raise RuntimeFailure(f"cannot start the monitor: {exc}") from exc
    return True


def ensure_running_quietly() -> None:
    """`ensure_running` for a container start: a monitor that cannot start is logged, never raised."""
    try:
        ensure_running()
    except Exception:  # noqa: BLE001 — the container runs; the server's housekeeping retries
        logger.warning("cannot start the monitor: health checks and alerts wait for it", exc_info=True)


def has_work() -> bool:
    """True while a server is up, or a running container has a health check, or alert rules apply."""
    if presence.server_alive(conf.run_dir()) or _alerts_apply():
        return True
    return bool(_checked_containers())


def _checked_containers() -> list[tuple[Container, HealthSpec]]:
    found = []
    running = Container.objects.filter(state=ContainerState.RUNNING, config__has_key="Healthcheck")
    for container in running.only("id", "name", "state", "config", "health", "started_at"):
        spec = healthconfig.effective(container)
        if spec is not None:
            found.append((container, spec))
    return found


def _alerts_apply() -> bool:
    """Rules to evaluate for running containers, or alert work left (deliveries, unread exits)."""
    from engine.services import alerts

    if alerts.has_work():
        return True
    return (
        AlertRule.objects.filter(enabled=True).exists()
        and Container.objects.filter(state=ContainerState.RUNNING).exists()
    )


@dataclass
class _Slot:
    """One container's schedule: the run it belongs to, when its next check is due, the check running."""

    started_at: datetime | None
    due: float
    running: Future[None] | None = None


class Monitor:
    """The monitor's state; `step` is one round (tests drive it directly)."""

    def __init__(self, workers: int = WORKERS) -> None:
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="health")
        self.slots: dict[str, _Slot] = {}

    def step(self) -> bool:
        """Start the checks that are due, then evaluate alerts. Returns whether there is work."""
        checked = _checked_containers()
        now = time.time()
        for container, spec in checked:
            slot = self.slots.get(container.id)
            if slot is None or slot.started_at != container.started_at:
                started = container.started_at.timestamp() if container.started_at else now
                first = healthconfig.next_delay(spec, status=healthconfig.STARTING, since_start=0.0)
                slot = self.slots[container.id] = _Slot(container.started_at, started + first)
            if slot.running is not None and not slot.running.done():
                continue  # never two checks at once for one container
            if now >= slot.due:
                slot.running = self.pool.submit(self._check, container.id, spec, slot)
        live = {container.id for container, _ in checked}
        for container_id in list(self.slots):
            if container_id not in live:
                del self.slots[container_id]  # stopped, paused or removed: a check still running is dropped
        _tick_alerts()
        return bool(checked) or presence.server_alive(conf.run_dir()) or _alerts_apply()

    def _check(self, container_id: str, spec: HealthSpec, slot: _Slot) -> None:
        from django.db import close_old_connections

        from engine.services import health  # health → lifecycle → … → this module's importers

        try:
            outcome = health.check(container_id)
            status = outcome.after or healthconfig.STARTING
        except Exception:  # noqa: BLE001 — one broken check must not stop the others
            logger.exception("health check of container %s failed", container_id[:12])
            status = healthconfig.STARTING
        finally:
            close_old_connections()
        started = slot.started_at.timestamp() if slot.started_at else time.time()
        now = time.time()
        slot.due = now + healthconfig.next_delay(spec, status=status, since_start=now - started)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _tick_alerts() -> None:
    from engine.services import alerts

    try:
        alerts.tick()
    except Exception:  # noqa: BLE001 — alerting must not stop the health checks
        logger.exception("alerts.tick failed")


def _finish_alerts() -> None:
    """Let a notification being sent finish before the monitor exits."""
    from engine.services import alerts

    try:
        alerts.shutdown()
    except Exception:  # noqa: BLE001 — exiting anyway
        logger.exception("alerts.shutdown failed")


def run(directory: Path) -> None:
    """The monitor's loop; returns when another monitor runs or there was no work for IDLE_EXIT seconds."""
    from django.db import close_old_connections

    while True:
        fd = _try_lock(directory)
        if fd is None:
            return
        monitor = Monitor()
        try:
            idle_since: float | None = None
            while True:
                try:
                    busy = monitor.step()
                except Exception:  # noqa: BLE001 — a locked database: try again next round
                    logger.warning("monitor round failed", exc_info=True)
                    # …but an engine whose database or run dir is gone must not keep its monitor.
                    busy = presence.server_alive(conf.run_dir())
                finally:
                    close_old_connections()
                if busy:
                    idle_since = None
                else:
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since > IDLE_EXIT:
                        break
                time.sleep(ROUND)
        finally:
            monitor.close()
            _finish_alerts()
            os.close(fd)
        # A start just before the lock was released found it held and started nobody.
        try:
            if not has_work():
                return
        except Exception:  # noqa: BLE001 — the engine's database is gone: nothing to watch
            return


def _try_lock(directory: Path) -> int | None:
    """The monitor's flock (one per engine); its fd, or None if another monitor holds it."""
    return singleton.try_hold(directory / _LOCK_NAME)


def serve() -> None:
    """The monitor process (`berth monitor`, hidden): run until there is no work; log to stderr."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s monitor %(levelname)s %(message)s")
    directory = monitor_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    run(directory)
