"""Find and reclaim what a crash left in the store: `system df` shows it, `prune` removes it.

Internal to the services. A write that fails cleans up after itself (services.staging); a process
that dies mid-write cannot, and leaves blobs and layer directories that no row references, temp
blobs and temp layer directories, and old files in $BERTH_ROOT/tmp. Nothing referenced by an Image
or Layer row is ever a leftover.

In-flight writes are never harmed: every image write holds the store's write lock shared
(staging.staged), and named blobs and layer directories are only taken while that lock can be held
exclusively, that is while no write runs in any process; temp blobs are kept while their writer
holds their flock, temp layer directories while the process named in them lives, and anything
younger than a safe age is kept as well.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from engine import conf, locks
from engine.models import Image, Layer
from engine.services import imagestore, staging
from engine.store import layers as layer_store
from engine.store.blobs import TEMP_PREFIX as BLOB_TEMP_PREFIX
from engine.store.digests import digest_hex

logger = logging.getLogger(__name__)

SAFE_AGE = 600.0  # seconds: younger unreferenced entries may belong to a write that just began
TEMP_SAFE_AGE = 60.0  # a temp blob is flocked, a temp layer named by its pid; the age covers the gap
TMP_SAFE_AGE = 24 * 3600.0  # uploads and build scratch in $BERTH_ROOT/tmp live at most this long
_KEEP_IN_TMP = ("volume-backups",)  # a directory of its own: only its old entries are leftovers


@dataclass(frozen=True)
class Leftover:
    kind: str  # blob, temp blob, layer, temp layer, temp file
    path: Path
    size: int


@dataclass(frozen=True)
class Reclaimed:
    count: int
    size: int
    skipped_in_flight: bool  # named entries were not examined because a write is running


def find(*, min_age: float = SAFE_AGE) -> list[Leftover]:
    """List what a crash left (read-only; it takes no lock, so a write that is running right now may
    show its newest entries until it records them)."""
    return list(_scan(min_age=min_age, named=True))


def reclaim(*, min_age: float = SAFE_AGE) -> Reclaimed:
    """Remove what a crash left; return how much. Never removes a referenced blob or layer."""
    count = size = 0
    with _store_quiet() as quiet:
        with locks.locked("store", "layers"):
            for item in _scan(min_age=min_age, named=quiet):
                try:
                    _remove(item.path)
                except Exception:  # noqa: BLE001 — one stubborn entry must not stop the rest
                    logger.warning("cannot remove leftover %s", item.path, exc_info=True)
                    continue
                count += 1
                size += item.size
    return Reclaimed(count, size, skipped_in_flight=not quiet)


def total_size(*, min_age: float = SAFE_AGE) -> tuple[int, int]:
    """(count, bytes) of leftovers, for `system df`."""
    found = find(min_age=min_age)
    return len(found), sum(item.size for item in found)


@contextmanager
def _store_quiet() -> Iterator[bool]:
    """Yield whether no image write is running (the write lock is ours, exclusively)."""
    fd = staging.open_write_lock()
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            quiet = True
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            quiet = False
        yield quiet
    finally:
        os.close(fd)


def _scan(*, min_age: float, named: bool) -> Iterator[Leftover]:
    conf.ensure_dirs()
    now = time.time()
    store = imagestore.blob_store()
    blob_dir = store.path("sha256:" + "0" * 64).parent
    if named:
        referenced = set(Layer.objects.values_list("blob_digest", flat=True))
        referenced.update(Image.objects.values_list("id", flat=True))
        wanted = {digest_hex(d) for d in referenced}
        chains = {digest_hex(c) for c in Layer.objects.values_list("chain_id", flat=True)}
    for entry in _entries(blob_dir):
        st = _lstat(entry)
        if st is None:
            continue
        if entry.name.startswith(BLOB_TEMP_PREFIX):
            if now - st.st_mtime >= TEMP_SAFE_AGE and not _writer_alive(entry):
                yield Leftover("temp blob", entry, st.st_blocks * 512)
        elif named and len(entry.name) == 64 and entry.name not in wanted and now - st.st_mtime >= min_age:
            yield Leftover("blob", entry, st.st_blocks * 512)
    for entry in _entries(conf.layers_dir()):
        st = _lstat(entry)
        if st is None or not stat.S_ISDIR(st.st_mode):
            continue
        if entry.name.startswith(imagestore.TMP_PREFIX):
            if now - st.st_mtime >= TEMP_SAFE_AGE and imagestore.tmp_is_stale(entry):
                yield Leftover("temp layer", entry, _size(entry))
        elif named and entry.name not in chains and now - st.st_mtime >= min_age:
            yield Leftover("layer", entry, _size(entry))
    for entry in _entries(conf.tmp_dir()):
        if entry.name in _KEEP_IN_TMP:
            candidates = _entries(entry)
        else:
            candidates = iter([entry])
        for item in candidates:
            st = _lstat(item)
            if st is not None and now - st.st_mtime >= TMP_SAFE_AGE:
                yield Leftover("temp file", item, _size(item))


def _entries(directory: Path) -> Iterator[Path]:
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return iter(())
    return (directory / name for name in names)


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return path.lstat()
    except FileNotFoundError:
        return None


def _size(path: Path) -> int:
    from engine.store import volumes as volume_store

    st = _lstat(path)
    if st is None:
        return 0
    if stat.S_ISDIR(st.st_mode):
        return volume_store.disk_usage(path)
    return st.st_blocks * 512


def _writer_alive(path: Path) -> bool:
    """A temp blob's writer holds an flock on it for its whole life (store.blobs)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return True  # vanished or unreadable: not ours to judge now
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    st = _lstat(path)
    if st is None:
        return
    if stat.S_ISDIR(st.st_mode):
        layer_store.remove_tree(path)
    else:
        path.unlink(missing_ok=True)
