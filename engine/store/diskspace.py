"""The free-space reserve under the engine's root: every writer stops before the disk is full.

A writer (a blob, a layer being unpacked, a volume restore, a copy into a container) makes one
`Reserve` for the file system it writes to and calls ``written(n)`` as it streams. The reserve asks
the kernel for free space (one ``statvfs``) at the start and then every `CHECK_EVERY` bytes, more
often as it nears the reserve, so the check costs nothing measurable next to the writes; when free
space drops below the reserve it raises `DiskFull`, and the writer removes its partial work as on any
other error.

The same module turns the raw forms of a full disk (``ENOSPC`` from any write, SQLite's "database
or disk is full") into `DiskFull`, for the front ends' one error boundary each.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from engine.errors import DiskFull

MiB = 1 << 20
GiB = 1 << 30
CHECK_EVERY = 32 * MiB
DEFAULT_MIN = GiB
DEFAULT_FRACTION = 0.05
NEARLY_FULL = 16 * MiB  # below this, SQLite's vague "disk I/O error" is taken to mean a full disk
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def default_reserve(total: int) -> int:
    """The reserve when none is configured: the larger of 1 GiB and 5 % of the file system."""
    return max(DEFAULT_MIN, int(total * DEFAULT_FRACTION))


def _size(n: int) -> str:
    if n >= GiB and n % GiB == 0:
        return f"{n // GiB} GiB"
    if n >= GiB:
        return f"{n / GiB:.1f} GiB"
    if n >= MiB:
        return f"{n // MiB} MiB"
    return f"{n // 1024} KiB"


class Reserve:
    """Free space that writers under ``path`` must leave; ``written(n)`` checks it every few MiB.

    ``reserve`` is in bytes; None means `default_reserve` of the file system's size. The object is
    cheap and not shared between threads: make one per write operation.
    """

    def __init__(self, path: Path | str, reserve: int | None = None, *, every: int = CHECK_EVERY) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self._reserve = reserve
        self._every = max(1, every)
        self._next = self._every  # bytes until the next statvfs; shrinks as the disk nears the reserve
        self._since = self._every  # the first write checks at once

    def free(self) -> tuple[int, int]:
        """Return ``(free bytes for unprivileged writers, reserve in bytes)``; statvfs once."""
        try:
            st = os.statvfs(self._fd if self._fd is not None else self.path)
        except FileNotFoundError:
            st = os.statvfs(self._existing_parent())
        reserve = self._reserve if self._reserve is not None else default_reserve(st.f_blocks * st.f_frsize)
        # f_bavail, not f_bfree: the blocks ext4 keeps for root are the host's own last resort.
        return st.f_bavail * st.f_frsize, reserve

    def check(self, *, needed: int = 0) -> None:
        """Raise `DiskFull` unless ``needed`` more bytes still leave the reserve free."""
        self._since = 0
        free, reserve = self.free()
        headroom = free - needed - reserve
        # Far from the reserve, check every `every` bytes; near it, before half the headroom is used,
        # so a fast writer cannot fill the disk between two checks however small the reserve is.
        self._next = min(self._every, max(64 * 1024, headroom // 2))
        if headroom < 0:
            raise DiskFull(
                f"not enough disk space under {self.path}: {_size(free)} free, {_size(reserve)} reserved",
                hint="free some space, e.g. with berth system prune, or lower BERTH_DISK_RESERVE",
            )

    def fresh(self) -> Reserve:
        """A new reserve like this one, for another writer (its own byte count)."""
        return Reserve(self.path, self._reserve, every=self._every)

    def at(self, dir_fd: int, path: Path | str) -> Reserve:
        """The same reserve for the file system of the open directory ``dir_fd`` (named ``path``).

        An overlay mount reports its upper layer's file system, so a container's root is checked
        against the disk its writes really land on; a bind mount against its own.
        """
        other = Reserve(path, self._reserve, every=self._every)
        other._fd = dir_fd
        return other

    def written(self, n: int) -> None:
        """Count ``n`` bytes written; statvfs and maybe raise `DiskFull` once every few MiB."""
        self._since += n
        if self._since >= self._next:
            self.check()

    def _existing_parent(self) -> Path:
        path = self.path
        while not path.exists() and path != path.parent:
            path = path.parent
        return path


def full_disk_error(exc: BaseException, root: Path | str) -> DiskFull | None:
    """Return a `DiskFull` for an error that means "the disk is full" (ENOSPC, SQLite's full), else None.

    Django wraps the sqlite3 error (``raise … from``), so the cause chain is searched too.
    """
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, DiskFull):
            return seen
        if isinstance(seen, OSError) and seen.errno in _FULL_ERRNOS:
            return DiskFull(f"not enough disk space under {root}: {seen.strerror}", hint=_HINT)
        if isinstance(seen, sqlite3.OperationalError):
            # In WAL mode a full disk shows as "disk I/O error" when the -shm/-wal files cannot be made.
            if "disk is full" in str(seen) or ("disk I/O error" in str(seen) and _nearly_full(root)):
                return DiskFull(
                    f"not enough disk space under {root}: the database cannot be written", hint=_HINT
                )
        seen = seen.__cause__ or seen.__context__
    return None


def _nearly_full(root: Path | str) -> bool:
    try:
        st = os.statvfs(root)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < NEARLY_FULL


_HINT = "free some space, e.g. with berth system prune, then try again"
