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
from pathlib import Path

from engine import conf

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def lock_path(kind: str, key: str) -> Path:
    """The flock file of (kind, key), for a process that takes it without this module (the log keeper)."""
    return conf.locks_dir() / f"{kind}-{_SAFE.sub('_', key)[:200]}.lock"


def _open(kind: str, key: str) -> int:
    """Open (creating) the flock file of (kind, key); the caller closes the descriptor."""
    path = lock_path(kind, key)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


@contextmanager
def locked(kind: str, key: str) -> Iterator[None]:
    """Hold an exclusive lock on (kind, key) for the duration of the block."""
    fd = _open(kind, key)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


@contextmanager
def try_locked(kind: str, key: str) -> Iterator[bool]:
    """Take the exclusive lock on (kind, key) if it is free; yield whether it was taken.

    For housekeeping (log rotation) that must not wait behind a long stop or start.
    """
    fd = _open(kind, key)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


@contextmanager
def holding_shared(kind: str, key: str) -> Iterator[None]:
    """Hold a shared lock on (kind, key): a marker that another process can test with `is_held`."""
    fd = _open(kind, key)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def is_held(kind: str, key: str) -> bool:
    """True while some process holds (kind, key) through `holding_shared`."""
    try:
        fd = os.open(lock_path(kind, key), os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
