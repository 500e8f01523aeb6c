"""A full disk as the front ends see it: each error boundary asks here whether an error means "no space".

ENOSPC and SQLite's "database or disk is full" can surface raw from anywhere; this turns them into
DiskFull (the mechanics are in engine/store/diskspace.py) so front ends never reach below the services.
"""

from __future__ import annotations

from engine import conf
from engine.errors import DiskFull
from engine.store.diskspace import full_disk_error


def full_disk(exc: BaseException) -> DiskFull | None:
    """DiskFull if `exc`, or an error in its cause chain, means the disk under BERTH_ROOT is full; else None."""
    return full_disk_error(exc, conf.root())
