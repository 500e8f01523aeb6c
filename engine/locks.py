"""Per-object locks across processes: flock files under $BERTH_RUN/locks/.

The web server, CLI processes and conmon exit commands all act on the same objects; a flock
serialises lifecycle operations on one object without holding a database transaction open.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

from engine import conf

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


@contextmanager
def locked(kind: str, key: str) -> Iterator[None]:
    """Hold an exclusive lock on (kind, key) for the duration of the block."""
    directory = conf.locks_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / f"{kind}-{_SAFE.sub('_', key)[:200]}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock
