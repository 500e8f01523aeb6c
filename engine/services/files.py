"""Files in and out of a container: stat a path, read it as a tar, extract a tar into it, export.

A running (or paused) container is reached through its init's ``/proc/PID/root``, so paths see
what the container sees, volumes and tmpfs included. A stopped one has its overlay mounted for the
operation (under the container's lock, so it cannot start meanwhile) and unmounted afterwards; its
volumes are then not mounted, so a path below a volume's mount point reads and writes the
container's own layer underneath it (documented limitation).

Every path is resolved with the container's root as `/` (store/inroot.py), and every write goes
through descriptors opened beneath it (store/tarstream.py): a symlink in the container never leads
a read or a write to the host.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat as stat_module
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO

from engine import conf, events, locks
from engine.errors import (
    EngineError,
    InvalidArgument,
    InvalidState,
    NotFound,
    PermissionDenied,
    RuntimeFailure,
)
from engine.models import Container, ContainerState
from engine.services import bundle, containers, imagestore, lifecycle
from engine.store import fsops, inroot, overlay, tarstream

UPLOAD_LIMIT = 8 << 30  # uncompressed bytes one copy into a container may write
LIVE_STATES = (ContainerState.RUNNING, ContainerState.PAUSED)
# A live container's kernel filesystems: archiving "/" must not read every file of /proc and /sys.
_NO_DESCENT = frozenset(("/proc", "/sys"))


class PathNotFound(NotFound):
    """The path does not exist in the container."""


@dataclass(frozen=True)
class PathStat:
    """What Docker's X-Docker-Container-Path-Stat header says about a path (mode is a Unix st_mode)."""

    name: str
    size: int
    mode: int
    mtime: datetime
    link_target: str

    @property
    def is_dir(self) -> bool:
        return stat_module.S_ISDIR(self.mode)

    @property
    def is_symlink(self) -> bool:
        return stat_module.S_ISLNK(self.mode)


class ContainerRoot:
    """An open root of a container's filesystem; close it (or use `with`) to release mounts and locks."""

    def __init__(self, container: Container, fd: int, *, live: bool, cleanup: contextlib.ExitStack) -> None:
        self.container = container
        self.fd = fd
        self.live = live
        self._cleanup = cleanup

    def close(self) -> None:
        self._cleanup.close()

    def __enter__(self) -> ContainerRoot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_root(ref: str | Container, *, with_mounts: bool = True) -> ContainerRoot:
    """Open the container's root filesystem (its mount namespace's view when ``with_mounts``).

    Raise ContainerNotFound, or RuntimeFailure when the rootfs cannot be mounted.
    """
    container = containers.resolve(ref) if isinstance(ref, str) else ref
    cleanup = contextlib.ExitStack()
    try:
        cleanup.enter_context(locks.locked("container", container.id))
        containers.refresh(container)
        lifecycle.reconcile(container)
        p = bundle.paths(container.id)
        if container.state in LIVE_STATES and container.pid and overlay.is_mounted(p.rootfs):
            fd = _open_live(container, p.rootfs, with_mounts=with_mounts)
            # The descriptor pins what it opened; the lock need not be held while we stream.
            cleanup.close()
            cleanup = contextlib.ExitStack()
            cleanup.callback(os.close, fd)
            return ContainerRoot(container, fd, live=True, cleanup=cleanup)
        if not overlay.is_mounted(p.rootfs):
            p.rootfs.mkdir(mode=0o755, exist_ok=True)
            overlay.mount_overlay(
                imagestore.layer_paths(container.image), upper=p.upper, work=p.work, target=p.rootfs
            )
            cleanup.callback(overlay.unmount, p.rootfs)
        fd = fsops.open_dir(p.rootfs)
        cleanup.callback(os.close, fd)
        return ContainerRoot(container, fd, live=False, cleanup=cleanup)
    except BaseException:
        cleanup.close()
        raise


def _open_live(container: Container, rootfs: os.PathLike[str], *, with_mounts: bool) -> int:
    path = f"/proc/{container.pid}/root" if with_mounts else os.fspath(rootfs)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise InvalidState(f"container {container.name} stopped while its files were opened") from exc
    # The pid could have been reused by now; the container's root is its overlay, whatever the pid.
    if os.fstat(fd).st_dev != os.stat(rootfs).st_dev:
        os.close(fd)
        raise InvalidState(f"container {container.name} stopped while its files were opened")
    return fd


def _path_error(exc: OSError, container: Container, path: str) -> EngineError:
    where = f"{container.name}:{path}"
    if exc.errno == errno.ENOENT:
        return PathNotFound(f"Could not find the file {path} in container {container.name}")
    if exc.errno == errno.ENOTDIR:
        return InvalidArgument(f"{where}: not a directory")
    if exc.errno == errno.ELOOP:
        return InvalidArgument(f"{where}: too many levels of symbolic links")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return PermissionDenied(f"{where}: permission denied")
    if exc.errno == errno.EROFS:
        return InvalidArgument(f"{where}: read-only file system")
    return RuntimeFailure(f"{where}: {exc.strerror}")


def _clean(path: str) -> str:
    if not path:
        raise InvalidArgument("a path in the container is required")
    if "\x00" in path:
        raise InvalidArgument("a path cannot contain a NUL byte")
    return path if path.startswith("/") else "/" + path


def stat_path(root: ContainerRoot, path: str) -> PathStat:
    """Stat ``path`` (its last component not followed) beneath an open root."""
    path = _clean(path)
    try:
        where = inroot.locate(root.fd, path)
    except OSError as exc:
        raise _path_error(exc, root.container, path) from None
    try:
        st = inroot.lstat_at(where.parent_fd, where.name)
        link = inroot.resolved_path(root.fd, path) if stat_module.S_ISLNK(st.st_mode) else ""
    except OSError as exc:
        raise _path_error(exc, root.container, path) from None
    finally:
        os.close(where.parent_fd)
    if where.asserts_dir and not stat_module.S_ISDIR(st.st_mode):
        raise InvalidArgument(f"{root.container.name}:{path}: not a directory")
    name = "/" if path.strip("/.") == "" else (where.base if path.endswith("/.") else _last(path))
    return PathStat(
        name=name,
        size=st.st_size,
        mode=st.st_mode,
        mtime=datetime.fromtimestamp(st.st_mtime, tz=UTC),
        link_target=link,
    )


def _last(path: str) -> str:
    parts = [p for p in path.split("/") if p]
    return parts[-1] if parts else "/"


def stat(ref: str, path: str) -> PathStat:
    """Docker's HEAD /containers/{id}/archive: PathNotFound when ``path`` does not exist."""
    with open_root(ref) as root:
        return stat_path(root, path)


class ArchiveStream:
    """Tar bytes produced on demand; `close()` releases the container's root (always call it)."""

    def __init__(self, chunks: Iterator[bytes], close: Callable[[], None]) -> None:
        self._chunks = chunks
        self._close = close
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        finally:
            self._close()


def get_archive(ref: str, path: str) -> tuple[PathStat, ArchiveStream]:
    """Docker's GET /containers/{id}/archive: the stat of ``path`` and a tar of it, named by its base."""
    root = open_root(ref)
    try:
        path = _clean(path)
        info = stat_path(root, path)
        where = inroot.locate(root.fd, path)
    except OSError as exc:
        root.close()
        raise _path_error(exc, root.container, path) from None
    except BaseException:
        root.close()
        raise
    start = "/" if where.name == "." else ""
    if root.live:
        try:
            start = inroot.resolved_path(root.fd, path if where.name == "." else _parent(path))
            start = start.rstrip("/") + ("" if where.name == "." else "/" + where.name)
        except OSError:
            start = path

    def skip(rel: str) -> bool:
        if not root.live:
            return False
        full = (start.rstrip("/") + "/" + rel).rstrip("/") if rel else start
        return full in _NO_DESCENT

    def close() -> None:
        try:
            os.close(where.parent_fd)
        finally:
            root.close()

    chunks = tarstream.write_tree(where.parent_fd, where.name, where.base, skip_descent=skip)
    events.record(
        "container",
        "archive-path",
        object_id=root.container.id,
        object_name=root.container.name,
        attributes={"path": path},
    )
    return info, ArchiveStream(_translated(chunks, root.container, path), close)


def _parent(path: str) -> str:
    parts = [p for p in path.split("/") if p]
    return "/" + "/".join(parts[:-1])


def _translated(chunks: Iterator[bytes], container: Container, path: str) -> Iterator[bytes]:
    try:
        yield from chunks
    except OSError as exc:
        raise _path_error(exc, container, path) from None
    finally:
        chunks.close()  # type: ignore[attr-defined]


def put_archive(
    ref: str,
    path: str,
    stream: BinaryIO,
    *,
    no_overwrite_dir_non_dir: bool = False,
    copy_uid_gid: bool = False,
) -> int:
    """Docker's PUT /containers/{id}/archive: extract the tar ``stream`` into the directory ``path``.

    Entries keep their owners with ``copy_uid_gid`` and are owned by root otherwise (docker cp
    without -a). Raise PathNotFound, InvalidArgument (not a directory, read-only rootfs, refused
    or corrupt archive); return the number of entries.
    """
    path = _clean(path)
    with open_root(ref) as root:
        try:
            dir_fd = inroot.open_dir_in_root(root.fd, path)
        except OSError as exc:
            raise _path_error(exc, root.container, path) from None
        try:
            if (
                root.container.host_config.get("ReadonlyRootfs")
                and os.fstat(dir_fd).st_dev == os.fstat(root.fd).st_dev
            ):
                raise InvalidArgument("container rootfs is marked read-only")
            entries = tarstream.extract_into(
                stream,
                dir_fd,
                max_bytes=UPLOAD_LIMIT,
                owner=None if copy_uid_gid else (0, 0),
                no_overwrite_dir_non_dir=no_overwrite_dir_non_dir,
                reserve=conf.disk_reserve().at(dir_fd, f"{root.container.name}:{path}"),
            )
        except RuntimeFailure as exc:
            # The store raises from the OSError it translated: classify by its errno, not its words.
            if isinstance(exc.__cause__, OSError) and exc.__cause__.errno == errno.EROFS:
                raise InvalidArgument(f"{root.container.name}:{path}: read-only file system") from None
            raise
        finally:
            os.close(dir_fd)
        events.record(
            "container",
            "extract-to-dir",
            object_id=root.container.id,
            object_name=root.container.name,
            attributes={"path": path},
        )
        return entries


def export(ref: str) -> ArchiveStream:
    """The container's filesystem (its image and its own layer, no volumes) as a tar, streamed."""
    root = open_root(ref, with_mounts=False)
    try:
        chunks = tarstream.write_tree(root.fd, ".", "")
    except BaseException:
        root.close()
        raise
    events.record("container", "export", object_id=root.container.id, object_name=root.container.name)
    return ArchiveStream(_translated(chunks, root.container, "/"), root.close)


def iter_reader(chunks: Iterable[bytes]) -> BinaryIO:
    """A binary file over byte chunks (for extracting a tar made on the fly)."""
    return tarstream.IterReader(chunks)  # type: ignore[return-value]
