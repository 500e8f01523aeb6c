"""The dashboard's Files tab: list a container's directory, read a text file, upload files into it.

Everything goes through `files.open_root` (the live container's /proc/PID/root, or its overlay
mounted for the call) and `inroot.open_in_root`: a path and every symlink on it are resolved with
the container's root as `/`, so a link to /etc/passwd shows the container's file, never the host's.
A listing describes symlinks (their text and where they lead inside the root); it follows none.
The kernel filesystems of a live container (/proc, /sys, cgroups) are not browsed or read: they hold
the process environment that the dashboard masks, and /proc/PID/mem.

Downloads are `files.get_archive` (tar, event "archive-path"). An upload is written to a temporary
name in the target directory and renamed into place (atomic), never through a symlink, capped at
`upload_limit()` bytes (setting BERTH_FILES_UPLOAD_MAX_SIZE); it is an event ("upload"). Listing
and reading are not events, like the volume browser's.

Over 400 lines because listing, reading and uploading share the kernel-filesystem refusal, the error wording
and the open-beneath-root helpers, and the dashboard calls them as one module.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import posixpath
import secrets
import stat as stat_mod
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from django.conf import settings

from engine import events
from engine.errors import InvalidArgument, RuntimeFailure
from engine.models import Container
from engine.services import bundle, files, imagestore
from engine.services.containerinfo import _INIT_PATHS
from engine.store import fsops, inroot

MAX_ENTRIES = 5000  # a directory with more is shown truncated
TEXT_LIMIT = 256 * 1024  # bytes of a file shown as text
DEFAULT_UPLOAD_LIMIT = 256 << 20  # bytes per upload request, all files together
_ID_FILE_LIMIT = 256 * 1024  # /etc/passwd and /etc/group read for owner names
_TMP_PREFIX = ".berth-upload-"
# statfs f_type of filesystems whose files are the kernel's view of processes, not data.
_KERNEL_FS = {0x9FA0: "proc", 0x62656572: "sysfs", 0x27E0EB: "cgroup", 0x63677270: "cgroup2"}


def upload_limit() -> int:
    """The most bytes one upload may write (all its files together)."""
    return int(getattr(settings, "BERTH_FILES_UPLOAD_MAX_SIZE", DEFAULT_UPLOAD_LIMIT))


@dataclass(frozen=True)
class FileEntry:
    """One directory entry. ``change`` is "A" (added), "C" (changed) against the image, or ""."""

    name: str
    kind: str  # "dir", "file", "symlink" or "other"
    size: int
    mode: str  # as ls -l shows it
    owner: str
    group: str
    mtime: float
    change: str = ""
    target: str = ""  # a symlink's text
    resolved: str = ""  # where a symlink leads inside the root ("" when it leads nowhere)
    target_kind: str = ""  # "dir", "file", "other" or "missing" for a symlink
    navigable: bool = True  # False when the name is not UTF-8 (a path built from it would not match)


@dataclass(frozen=True)
class Listing:
    path: str  # the directory as asked, normalised
    resolved: str  # the same directory with every symlink resolved inside the root
    entries: list[FileEntry]
    truncated: bool
    deleted: list[str] = field(default_factory=list)  # names the container deleted from the image
    live: bool = False
    read_only: bool = False


@dataclass(frozen=True)
class TextFile:
    path: str
    resolved: str
    size: int
    data: bytes  # at most the limit asked for
    truncated: bool
    binary: bool


def normalise(path: str) -> str:
    """An absolute, lexically normalised path (pure); InvalidArgument for NUL or an overlong path."""
    if "\x00" in path:
        raise InvalidArgument("a path cannot contain a NUL byte")
    if len(path) > 4096:
        raise InvalidArgument("the path is longer than 4096 characters")
    return posixpath.normpath("/" + path).replace("//", "/")


def _error(exc: OSError, container: Container, path: str) -> Exception:
    return files._path_error(exc, container, path)  # noqa: SLF001 — one wording for every file call


@functools.cache
def _fstatfs() -> ctypes._CFuncPtr:  # type: ignore[name-defined]
    func = ctypes.CDLL(None, use_errno=True).fstatfs
    func.argtypes = [ctypes.c_int, ctypes.c_void_p]
    return func


def _kernel_fs(fd: int) -> str | None:
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on 64-bit; f_type comes first
    if _fstatfs()(fd, buf) != 0:
        return None
    return _KERNEL_FS.get(ctypes.c_long.from_buffer(buf).value)


def _refuse_kernel_fs(fd: int, container: Container | None, path: str) -> None:
    kind = _kernel_fs(fd)
    if kind is not None:
        where = f"{container.name}:{path}" if container is not None else path
        raise InvalidArgument(
            f"{where} is on the container's {kind} (a kernel view of its processes); "
            "the Files tab does not browse it — use the terminal"
        )


def _open_browsable_dir(root: files.ContainerRoot, path: str) -> int:
    """Open the directory ``path`` beneath the root, refusing a kernel filesystem; the caller closes it."""
    try:
        fd = inroot.open_dir_in_root(root.fd, path)
    except OSError as exc:
        raise _error(exc, root.container, path) from None
    try:
        _refuse_kernel_fs(fd, root.container, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_path(ref: str | Container, path: str) -> files.PathStat:
    """Stat ``path`` (for a download): refuse the kernel filesystems as the browser does."""
    path = normalise(path)
    with files.open_root(ref) as root:
        info = files.stat_path(root, path)
        try:
            fd = inroot.open_in_root(root.fd, path)
        except OSError as exc:
            raise _error(exc, root.container, path) from None
        try:
            if not info.is_symlink:
                _refuse_kernel_fs(fd, root.container, path)
        finally:
            os.close(fd)
        return info


# -- listing -------------------------------------------------------------------------------------


def list_dir(ref: str | Container, path: str = "/") -> Listing:
    """List the directory ``path`` of a container: directories first, then by name.

    Raise PathNotFound, InvalidArgument (not a directory, a kernel filesystem), ContainerNotFound.
    """
    path = normalise(path)
    with files.open_root(ref) as root:
        container = root.container
        fd = _open_browsable_dir(root, path)
        try:
            try:
                resolved = inroot.resolved_path(root.fd, path)
            except OSError:
                resolved = path
            names = _owner_names(root.fd)
            raw: list[tuple[str, os.stat_result]] = []
            truncated = False
            with os.scandir(fd) as it:
                for item in it:
                    if len(raw) >= MAX_ENTRIES:
                        truncated = True
                        break
                    with contextlib.suppress(OSError):  # removed by the container meanwhile
                        raw.append((item.name, item.stat(follow_symlinks=False)))
            changes, deleted = _changes(container, resolved, root.live)
            entries = [
                _entry(root.fd, fd, resolved, name, st, names, changes.get(name, "")) for name, st in raw
            ]
        except OSError as exc:
            raise RuntimeFailure(f"cannot list {container.name}:{path}: {exc.strerror}") from exc
        finally:
            os.close(fd)
        entries.sort(key=lambda e: (not (e.kind == "dir" or e.target_kind == "dir"), e.name))
        return Listing(
            path=path,
            resolved=resolved,
            entries=entries,
            truncated=truncated,
            deleted=sorted(deleted),
            live=root.live,
            read_only=bool(container.host_config.get("ReadonlyRootfs")),
        )


def _entry(
    root_fd: int,
    dir_fd: int,
    dir_path: str,
    raw_name: str,
    st: os.stat_result,
    names: tuple[dict[int, str], dict[int, str]],
    change: str,
) -> FileEntry:
    name, navigable = fsops.display_name(raw_name)
    mode = st.st_mode
    kind = fsops.kind_of(mode)
    target = resolved = target_kind = ""
    if kind == "symlink":
        target, resolved, target_kind = _link(root_fd, dir_fd, dir_path, raw_name)
    users, groups = names
    return FileEntry(
        name=name,
        kind=kind,
        size=st.st_size,
        mode=stat_mod.filemode(mode),
        owner=users.get(st.st_uid, str(st.st_uid)),
        group=groups.get(st.st_gid, str(st.st_gid)),
        mtime=st.st_mtime,
        change=change,
        target=target,
        resolved=resolved,
        target_kind=target_kind,
        navigable=navigable,
    )


def _link(root_fd: int, dir_fd: int, dir_path: str, raw_name: str) -> tuple[str, str, str]:
    """(text, where it leads inside the root, what is there); nothing outside the root is touched."""
    try:
        text = os.fsencode(os.readlink(raw_name, dir_fd=dir_fd)).decode("utf-8", "replace")
    except OSError:
        return "?", "", "missing"
    full = posixpath.join(dir_path, raw_name)
    try:
        resolved = inroot.resolved_path(root_fd, full)
        fd = inroot.open_in_root(root_fd, full)
    except OSError:
        return text, "", "missing"
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    return text, resolved, fsops.kind_of(st.st_mode)


def _owner_names(root_fd: int) -> tuple[dict[int, str], dict[int, str]]:
    """uid → name and gid → name from the container's own /etc/passwd and /etc/group."""
    return _id_file(root_fd, "/etc/passwd"), _id_file(root_fd, "/etc/group")


def _id_file(root_fd: int, path: str) -> dict[int, str]:
    try:
        data = _read_regular(root_fd, path, _ID_FILE_LIMIT)
    except (OSError, InvalidArgument):
        return {}
    out: dict[int, str] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        parts = line.split(":")
        if len(parts) >= 3 and parts[2].isdigit():
            out.setdefault(int(parts[2]), parts[0][:32])
    return out


def _changes(container: Container, directory: str, live: bool) -> tuple[dict[str, str], list[str]]:
    """Names in ``directory`` (resolved, in-root) that the container added or changed, and deleted.

    Read from the container's upper dir and the image's layers with no symlink followed. A directory
    at or below a mount point the engine or the user put there is a different filesystem: no marks.
    """
    hidden = _INIT_PATHS | {m.destination for m in container.mounts.all()}
    if any(directory == h or directory.startswith(h.rstrip("/") + "/") for h in hidden if h != "/"):
        return {}, []
    parts = [p for p in directory.split("/") if p]
    try:
        upper = _open_under(bundle.paths(container.id).upper, parts)
    except OSError:
        return {}, []  # nothing below this directory was changed (or the layer is gone)
    lowers = _open_lowers(container, parts)
    changes: dict[str, str] = {}
    deleted: list[str] = []
    try:
        for name in os.listdir(upper):
            if posixpath.join(directory, name) in hidden:
                continue
            st = fsops.lstat_at(upper, name)
            if st is None:
                continue
            if stat_mod.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                deleted.append(os.fsencode(name).decode("utf-8", "replace"))
                continue
            in_image = any(fsops.lstat_at(lower, name) is not None for lower in lowers)
            changes[name] = "C" if in_image else "A"
    finally:
        os.close(upper)
        for fd in lowers:
            os.close(fd)
    return changes, deleted


def _open_under(top: Path | str, parts: list[str]) -> int:
    fd = fsops.open_dir(top)
    try:
        return fsops.open_beneath(fd, parts)
    finally:
        os.close(fd)


def _open_lowers(container: Container, parts: list[str]) -> list[int]:
    out: list[int] = []
    for layer in imagestore.layer_paths(container.image):
        with contextlib.suppress(OSError):
            out.append(_open_under(layer, parts))
    return out


# -- reading -------------------------------------------------------------------------------------


def _read_regular(root_fd: int, path: str, limit: int) -> bytes:
    fd = _open_regular(root_fd, path)
    try:
        return fsops.read_at_most(fd, limit)
    finally:
        os.close(fd)


def _open_regular(root_fd: int, path: str, container: Container | None = None) -> int:
    """Open a regular file for reading; a FIFO, a device or a kernel file is refused before that."""
    pinned = inroot.open_in_root(root_fd, path)
    try:
        _refuse_kernel_fs(pinned, container, path)
        st = os.fstat(pinned)
        if stat_mod.S_ISDIR(st.st_mode):
            raise InvalidArgument(f"{path} is a directory")
        if not stat_mod.S_ISREG(st.st_mode):
            raise InvalidArgument(f"{path} is not a regular file")
        # Reopening the O_PATH descriptor reads the very inode that was checked (no second lookup).
        return os.open(f"/proc/self/fd/{pinned}", os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    finally:
        os.close(pinned)


def read_text(ref: str | Container, path: str, *, limit: int = TEXT_LIMIT) -> TextFile:
    """Read up to ``limit`` bytes of the regular file ``path`` (symlinks followed inside the root).

    ``binary`` is set for a NUL byte or invalid UTF-8 in what was read. Raise PathNotFound or
    InvalidArgument (a directory, a special file, a kernel filesystem).
    """
    path = normalise(path)
    with files.open_root(ref) as root:
        try:
            fd = _open_regular(root.fd, path, root.container)
        except OSError as exc:
            raise _error(exc, root.container, path) from None
        try:
            size = os.fstat(fd).st_size
            data = fsops.read_at_most(fd, limit + 1)
        except OSError as exc:
            raise _error(exc, root.container, path) from None
        finally:
            os.close(fd)
        try:
            resolved = inroot.resolved_path(root.fd, path)
        except OSError:
            resolved = path
    shown = data[:limit]
    return TextFile(
        path=path,
        resolved=resolved,
        size=size,
        data=shown,
        truncated=len(data) > limit,
        binary=_looks_binary(shown),
    )


def _looks_binary(data: bytes) -> bool:
    if b"\x00" in data[:8192]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < len(data) - 4  # a character cut at the read limit is not binary
    return False


# -- uploading -----------------------------------------------------------------------------------


def check_upload_name(name: str) -> str:
    """The base name an uploaded file is stored under (pure); InvalidArgument for a bad one."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    if base in ("", ".", "..") or "\x00" in base:
        raise InvalidArgument(f"invalid file name {name!r}")
    if base.startswith(_TMP_PREFIX):
        raise InvalidArgument(f"file names starting with {_TMP_PREFIX} are reserved")
    if len(os.fsencode(base)) > 255:
        raise InvalidArgument(f"file name too long: {base[:40]}…")
    return base


def upload(ref: str | Container, path: str, uploads: Iterable[tuple[str, BinaryIO]]) -> list[str]:
    """Write each (name, file) into the directory ``path``; return the paths written.

    Each file goes to a temporary name in that directory, is fsynced and renamed over ``name``
    (atomic: readers see the old file or the whole new one). An existing symlink, directory or
    special file of that name is refused, not followed or replaced; a replaced file keeps its mode
    and owner, a new one is 0644 root:root. Raise InvalidArgument (too large, not a directory,
    read-only rootfs, a refused name), PathNotFound. Files written before an error stay.
    """
    path = normalise(path)
    items = [(check_upload_name(name), stream) for name, stream in uploads]
    if not items:
        raise InvalidArgument("choose at least one file to upload")
    if len({name for name, _ in items}) != len(items):
        raise InvalidArgument("two uploaded files have the same name")
    budget = upload_limit()
    written: list[str] = []
    with files.open_root(ref) as root:
        container = root.container
        dir_fd = _open_browsable_dir(root, path)
        try:
            if (
                container.host_config.get("ReadonlyRootfs")
                and os.fstat(dir_fd).st_dev == os.fstat(root.fd).st_dev
            ):
                raise InvalidArgument(f"container {container.name} has a read-only root filesystem")
            for name, stream in items:
                budget -= _write_one(dir_fd, name, stream, budget, container, path)
                written.append(posixpath.join(path, name))
        finally:
            os.close(dir_fd)
        events.record(
            "container",
            "upload",
            object_id=container.id,
            object_name=container.name,
            attributes={"path": path, "files": ",".join(n for n, _ in items)[:1000]},
        )
    return written


def _write_one(dir_fd: int, name: str, stream: BinaryIO, budget: int, container: Container, path: str) -> int:
    where = f"{container.name}:{posixpath.join(path, name)}"
    existing = fsops.lstat_at(dir_fd, name)
    if existing is not None:
        if stat_mod.S_ISLNK(existing.st_mode):
            raise InvalidArgument(f"{where} is a symbolic link; an upload does not follow or replace one")
        if stat_mod.S_ISDIR(existing.st_mode):
            raise InvalidArgument(f"{where} is a directory")
        if not stat_mod.S_ISREG(existing.st_mode):
            raise InvalidArgument(f"{where} is a special file")
    tmp = f"{_TMP_PREFIX}{secrets.token_hex(8)}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(tmp, flags, 0o600, dir_fd=dir_fd)
    except OSError as exc:
        raise _error(exc, container, path) from None
    done = False
    try:
        size = 0
        while chunk := stream.read(1 << 20):
            size += len(chunk)
            if size > budget:
                raise InvalidArgument(f"upload too large: more than {human_size(upload_limit())} (the limit)")
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
        if existing is not None:
            os.fchown(fd, existing.st_uid, existing.st_gid)
            os.fchmod(fd, stat_mod.S_IMODE(existing.st_mode))
        else:
            os.fchown(fd, 0, 0)
            os.fchmod(fd, 0o644)
        os.fsync(fd)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        done = True
        return size
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise InvalidArgument(f"{where}: no space left on the device") from None
        raise _error(exc, container, path) from None
    finally:
        os.close(fd)
        if not done:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=dir_fd)


def human_size(n: int) -> str:
    """A byte count as people read it (1.5 MiB)."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
