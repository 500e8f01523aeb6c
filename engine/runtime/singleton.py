"""One helper process per engine: the flock the log keeper, the sampler and the monitor each hold.

Imports no Django (the keeper and the sampler load none).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


def try_hold(path: Path) -> int | None:
    """Take the exclusive flock at `path` without waiting: its fd, or None if another process holds it.

    The lock lasts while the fd is open, so a crashed holder never blocks its successor.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd
