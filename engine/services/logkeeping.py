"""Log rotation that does not need the web server: register each started container with the keeper.

See runtime/logkeeper for the keeper process. The web server's housekeeping and log readers rotate
through the same `rotate` too (supervision.rotate_log); the container's lock keeps them apart.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from django.conf import settings

from engine import conf, locks
from engine.errors import EngineError
from engine.models import Container
from engine.runtime import logkeeper
from engine.services.options import DEFAULT_LOG_MAX_FILE, DEFAULT_LOG_MAX_SIZE

logger = logging.getLogger(__name__)


def limits(host_config: dict[str, Any]) -> tuple[int, int]:
    """(max-size in bytes, max-file) from a container's LogConfig."""
    config = (host_config.get("LogConfig") or {}).get("Config") or {}
    try:
        size = int(config.get("max-size") or DEFAULT_LOG_MAX_SIZE)
        files = int(config.get("max-file") or DEFAULT_LOG_MAX_FILE)
    except (TypeError, ValueError):
        size, files = DEFAULT_LOG_MAX_SIZE, DEFAULT_LOG_MAX_FILE
    return size, max(files, 1)


def keeper_dir() -> Path:
    return conf.run_dir() / "logkeeper"


def job(container: Container, *, log: Path, ctl: Path, conmon_pidfile: Path) -> logkeeper.Job:
    size, files = limits(container.host_config)
    reserve = getattr(settings, "BERTH_DISK_RESERVE", None)
    return logkeeper.Job(
        container_id=container.id,
        log=str(log),
        ctl=str(ctl),
        conmon_pidfile=str(conmon_pidfile),
        lock=str(locks.lock_path("container", container.id)),
        max_size=size,
        max_file=files,
        root=str(conf.root()),
        reserve=None if reserve is None else int(reserve),
    )


def register(container: Container, *, log: Path, ctl: Path, conmon_pidfile: Path, lock: Any) -> None:
    """Have the keeper rotate this container's log from now on (nothing to do with max-file 1).

    A keeper that cannot start is logged, not raised: the container runs, and the server's
    housekeeping and every `logs` still rotate.
    """
    entry = job(container, log=log, ctl=ctl, conmon_pidfile=conmon_pidfile)
    if entry.max_file < 2:
        return
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
    env.update(BERTH_ROOT=str(conf.root()), BERTH_RUN=str(conf.run_dir()))  # marks whose keeper it is
    try:
        logkeeper.write_job(keeper_dir(), entry)
        logkeeper.ensure_running(keeper_dir(), env=env, lock=lock)
    except EngineError as exc:
        logger.warning("log rotation of %s without the server is off: %s", container.name, exc)


def forget(container_id: str) -> None:
    logkeeper.remove_job(keeper_dir(), container_id)
