"""The blob store: content-addressed files under ``root/sha256/<hex>``.

A blob is written to a ``.tmp-*`` file in the same directory, hashed as it is written, checked
against the digest the caller expected, fsynced and renamed into place, so a reader never sees a
half-written blob under its final name (DESIGN.md decision 4; attack A30, content mismatch).
Each writer holds an flock on its temp file for its whole life: ``sweep_temp`` removes only temp
files whose writer is gone, so a CLI process starting up cannot delete the temp file of a pull
that the server is running at that moment.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from engine.errors import DigestMismatch, DiskFull, InvalidArgument, NotFound, RuntimeFailure
from engine.store.digests import ALGORITHM, digest_hex, parse_digest
from engine.store.diskspace import Reserve

log = logging.getLogger(__name__)

TEMP_PREFIX = ".tmp-"
_CHUNK = 1 << 20


def _fail(action: str, exc: OSError) -> RuntimeFailure | DiskFull:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(f"blob store: cannot {action}: {exc.strerror}")
    return RuntimeFailure(f"blob store: cannot {action}: {exc.strerror or exc}")


class BlobWriter:
    """A write-once file that becomes a blob on ``commit()``.

    Use it as a context manager: leaving the ``with`` block without a successful ``commit()``
    (an exception, a digest mismatch) removes the temp file. A process killed mid-write leaves
    only a ``.tmp-*`` file, which ``BlobStore.sweep_temp`` removes later.
    """

    def __init__(
        self, directory: Path, *, expected: str | None = None, reserve: Reserve | None = None
    ) -> None:
        self._dir = directory
        self._reserve = reserve
        self._expected = parse_digest(expected) if expected is not None else None
        self._hash = hashlib.sha256()
        self._size = 0
        self._done = False
        try:
            fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=directory)
        except OSError as exc:
            raise _fail(f"create a temp file in {directory}", exc) from exc
        self._fd: int | None = fd
        self._tmp = Path(name)
        # Held until the fd is closed; it tells sweep_temp that this writer is alive.
        fcntl.flock(fd, fcntl.LOCK_EX)

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._size

    @property
    def temp_path(self) -> Path:
        """Path of the temp file (for tests and diagnostics)."""
        return self._tmp

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append ``data``, hashing it; return its length."""
        if self._fd is None:
            raise InvalidArgument("blob writer is closed")
        view = memoryview(data)
        self._hash.update(view)
        total = len(view)
        offset = 0
        try:
            while offset < total:
                offset += os.write(self._fd, view[offset:])
        except OSError as exc:
            raise _fail(f"write {self._tmp}", exc) from exc
        self._size += total
        if self._reserve is not None:
            self._reserve.written(total)  # DiskFull here: the caller's `with` removes the temp file
        return total

    def digest(self) -> str:
        """Return the digest of what has been written so far."""
        return f"{ALGORITHM}:{self._hash.hexdigest()}"

    def commit(self) -> tuple[str, int]:
        """Verify, fsync and rename the temp file to its final name; return ``(digest, size)``.

        Raise ``DigestMismatch`` (an InvalidArgument; temp file removed) when the content does
        not hash to the expected digest. A blob that already exists is kept and the temp dropped.
        """
        if self._fd is None or self._done:
            raise InvalidArgument("blob writer already committed or aborted")
        digest = self.digest()
        if self._expected is not None and digest != self._expected:
            self.abort()
            raise DigestMismatch(
                f"digest mismatch: expected {self._expected}, got {digest} ({self._size} bytes)"
            )
        final = self._dir / digest_hex(digest)
        try:
            os.fsync(self._fd)
            if final.exists():
                self.abort()
            else:
                os.rename(self._tmp, final)
                _fsync_dir(self._dir)
        except OSError as exc:
            self.abort()
            raise _fail(f"store blob {digest}", exc) from exc
        finally:
            self._close()
        self._done = True
        return digest, self._size

    def abort(self) -> None:
        """Remove the temp file; safe to call more than once."""
        self._close()
        try:
            self._tmp.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("cannot remove temp blob %s: %s", self._tmp, exc)
        self._done = True

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._done:
            self.abort()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    """Blobs under ``root/sha256/<hex>``; every digest is parsed strictly before it becomes a path.

    With a ``reserve``, every writer stops with ``DiskFull`` when free space falls below it.
    """

    def __init__(self, root: Path, *, reserve: Reserve | None = None) -> None:
        self.root = Path(root)
        self._reserve = reserve
        self._dir = self.root / ALGORITHM

    def _ensure_dirs(self) -> None:
        for directory in (self.root, self._dir):
            try:
                directory.mkdir(mode=0o700, exist_ok=True)
            except OSError as exc:
                raise _fail(f"create {directory}", exc) from exc

    def path(self, digest: str) -> Path:
        """Return where the blob ``digest`` lives (whether or not it exists)."""
        return self._dir / digest_hex(digest)

    def exists(self, digest: str) -> bool:
        """Tell whether the blob is stored (as a regular file)."""
        try:
            return self.path(digest).lstat().st_mode & 0o170000 == 0o100000
        except FileNotFoundError:
            return False

    def size(self, digest: str) -> int:
        """Return the stored blob's size; raise ``NotFound`` when it is missing."""
        try:
            return self.path(digest).lstat().st_size
        except FileNotFoundError:
            raise NotFound(f"blob not found: {digest}") from None

    def open(self, digest: str) -> BinaryIO:
        """Open the blob for reading; raise ``NotFound`` when it is missing."""
        path = self.path(digest)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"blob not found: {digest}") from None
        except OSError as exc:
            raise _fail(f"open blob {digest}", exc) from exc
        return os.fdopen(fd, "rb")

    def delete(self, digest: str) -> None:
        """Remove the blob; a missing blob is not an error."""
        try:
            self.path(digest).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _fail(f"delete blob {digest}", exc) from exc

    def writer(self, *, expected: str | None = None) -> BlobWriter:
        """Return a ``BlobWriter`` for a new blob, optionally checked against ``expected``."""
        self._ensure_dirs()
        reserve = self._reserve.fresh() if self._reserve is not None else None
        return BlobWriter(self._dir, expected=expected, reserve=reserve)

    def put_bytes(self, data: bytes, *, expected: str | None = None) -> tuple[str, int]:
        """Store ``data`` as a blob and return ``(digest, size)``."""
        with self.writer(expected=expected) as writer:
            writer.write(data)
            return writer.commit()

    def verify(self, digest: str) -> bool:
        """Re-hash a stored blob and tell whether it still matches its name (False if missing)."""
        hasher = hashlib.sha256()
        try:
            with self.open(digest) as handle:
                while chunk := handle.read(_CHUNK):
                    hasher.update(chunk)
        except NotFound:
            return False
        return f"{ALGORITHM}:{hasher.hexdigest()}" == digest

    def digests(self) -> list[str]:
        """List the digests of stored blobs (names that are not valid digests are skipped)."""
        try:
            names = os.listdir(self._dir)
        except FileNotFoundError:
            return []
        return sorted(f"{ALGORITHM}:{name}" for name in names if len(name) == 64 and not name.startswith("."))

    def sweep_temp(self, *, min_age: float = 0.0) -> int:
        """Remove ``.tmp-*`` files left by dead writers; return how many were removed.

        A temp file whose flock is still held belongs to a live writer (maybe in another process)
        and is kept. ``min_age`` (seconds) additionally keeps files modified very recently.
        """
        try:
            names = [name for name in os.listdir(self._dir) if name.startswith(TEMP_PREFIX)]
        except FileNotFoundError:
            return 0
        removed = 0
        now = time.time()
        for name in names:
            path = self._dir / name
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                if min_age and now - os.fstat(fd).st_mtime < min_age:
                    continue
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                        continue
                    raise
                path.unlink(missing_ok=True)
                removed += 1
            except OSError as exc:
                log.warning("cannot sweep temp blob %s: %s", path, exc)
            finally:
                os.close(fd)
        return removed
