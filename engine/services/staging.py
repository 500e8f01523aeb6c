"""Take back what a refused or failed image write put in the store before its records existed.

Internal to the services. A load, pull, import, build or commit names blobs and layer directories
as it goes (each complete before it gets its name) and writes the rows that reference them last.
When the write fails part-way, `staged()` removes every blob and layer directory it created that
no row references yet, so a refused archive leaves the store as it found it.

Another write may meanwhile reuse what this one created (two loads of the same new layer): reuse
touches the directory or blob, and a touched one is kept. Both the reuse and the removal happen
under the store lock; what a crash leaves is found later by `services.leftovers`.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from engine import conf, locks
from engine.models import Image, Layer
from engine.store import layers as layer_store
from engine.store.blobs import BlobStore

logger = logging.getLogger(__name__)


@dataclass
class Staging:
    """What one write created: (path, name, mtime_ns) of layer directories and blobs."""

    layers: list[tuple[Path, str, int]] = field(default_factory=list)
    blobs: list[tuple[Path, str, int]] = field(default_factory=list)

    def discard(self) -> None:
        """Remove what is still unreferenced and untouched; never raise (the write's error matters)."""
        with locks.locked("store", "layers"):
            for path, chain, mtime in reversed(self.layers):
                try:
                    if Layer.objects.filter(chain_id=chain).exists() or _mtime(path) != mtime:
                        continue  # recorded, or reused by another write since we made it
                    layer_store.remove_tree(path)
                except Exception:  # noqa: BLE001 — keep cleaning; log what stays for leftovers
                    logger.warning("cannot remove staged layer %s", path, exc_info=True)
            for path, digest, mtime in reversed(self.blobs):
                try:
                    if (
                        Layer.objects.filter(blob_digest=digest).exists()
                        or Image.objects.filter(id=digest).exists()
                        or _mtime(path) != mtime
                    ):
                        continue
                    path.unlink(missing_ok=True)
                except Exception:  # noqa: BLE001
                    logger.warning("cannot remove staged blob %s", path, exc_info=True)
        self.layers.clear()
        self.blobs.clear()


_CURRENT: ContextVar[Staging | None] = ContextVar("berth_staging", default=None)


@contextmanager
def staged() -> Iterator[Staging]:
    """Track what the block creates in the store; on any exception remove what no row references.

    Nested blocks record into the innermost one.
    """
    staging = Staging()
    token = _CURRENT.set(staging)
    lock = open_write_lock()
    try:
        # Shared with every other write; services.leftovers takes it exclusively, so it never
        # mistakes this write's not yet recorded blobs and layers for a crash's leftovers.
        fcntl.flock(lock, fcntl.LOCK_SH)
        yield staging
    except BaseException:
        staging.discard()
        raise
    finally:
        os.close(lock)
        _CURRENT.reset(token)


def open_write_lock() -> int:
    """Open (not lock) the store's write lock file; the caller closes the descriptor."""
    directory = conf.locks_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return os.open(directory / "store-writes.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def created_layer(path: Path, chain_id: str) -> None:
    """Note a layer directory just renamed into place (call under the store lock)."""
    staging = _CURRENT.get()
    if staging is not None:
        staging.layers.append((path, chain_id, _mtime(path)))


def created_blob(store: BlobStore, digest: str) -> None:
    """Note a blob that did not exist before this write committed it."""
    staging = _CURRENT.get()
    if staging is not None:
        path = store.path(digest)
        staging.blobs.append((path, digest, _mtime(path)))


def reused(path: Path) -> None:
    """Mark an existing layer directory or blob as used by this write, so no other write's
    clean-up removes it before our rows reference it."""
    try:
        os.utime(path)
    except FileNotFoundError:
        pass


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return -1
