"""Is a Berth server up for this engine? Answered with a lock, so a crashed server never looks alive.

The server (dashboard or API socket) holds a shared flock on `$BERTH_RUN/server.lock` for as long as
it runs. The engine's helper processes (the monitor, the metrics sampler), which otherwise exit
when no container needs them, ask `server_alive` and stay while a server is up. Imports no Django:
the sampler uses it too.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = "server.lock"


def hold(run_dir: Path) -> int:
    """Mark a server as up until this process exits (or the returned fd is closed)."""
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def server_alive(run_dir: Path) -> bool:
    """True while some process holds the server lock of this engine."""
    try:
        fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing also drops the exclusive lock if we got it
    return False
