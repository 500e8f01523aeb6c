"""Copy a directory tree into another through directory descriptors, never following a symlink.

The target is a place another container may be changing while we copy (a volume that a running
co-tenant mounts, issue 10 item 2): a path string into it could be redirected to the host by a
directory swapped for a symlink between two calls. So the target root is opened once, every
directory is created with ``mkdirat`` and entered with ``openat(O_DIRECTORY | O_NOFOLLOW)`` relative
to its parent's descriptor, files are created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` and owners,
modes and times are set on descriptors. Whatever the co-tenant does, a write lands inside the
target or is refused with `Conflict`. The source side is read the same way (no symlink followed).

Mechanism only: descriptors and paths in; `Conflict` for a target that changed under us,
`InvalidArgument` for a source deeper than MAX_DEPTH, plain ``OSError`` for anything else.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import Conflict, InvalidArgument
from engine.store import fsops

CHUNK = 1 << 20
MAX_DEPTH = 256  # directories held open at once are twice this: far below RLIMIT_NOFILE
_FILE_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_FILE_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_FALLBACK_ERRNOS = (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF)


@dataclass
class CopyHooks:
    """Test-only seams inside the walk; the engine never sets them.

    ``after_mkdir(dst_parent_fd, name, rel)`` runs between creating a directory and entering it,
    which is exactly where a co-tenant's swap would land.
    """

    after_mkdir: Callable[[int, str, str], None] | None = None


@dataclass
class _Frame:
    src: int
    dst: int
    rel: str
    st: os.stat_result
    names: Iterator[str] = field(default_factory=lambda: iter(()))


def copy_into(
    source_root: Path | str, components: list[str], target: Path | str, *, hooks: CopyHooks | None = None
) -> bool:
    """Copy the directory ``components`` below ``source_root`` into the empty directory ``target``.

    Links are copied as links, owners, modes, times and extended attributes are kept, devices,
    fifos and sockets are left out. Returns False, copying nothing, when ``target`` is not an empty
    directory or the source is missing, not a directory or reached through a symlink. Raises
    `Conflict` (nothing written outside ``target``; what was copied before stays) when an entry in
    the target is found where one was about to be created, e.g. a directory swapped for a symlink.
    """
    try:
        dst_root = fsops.open_dir(target)
    except (FileNotFoundError, NotADirectoryError):
        return False
    try:
        with os.scandir(dst_root) as entries:
            if next(entries, None) is not None:
                return False
        src_root = fsops.open_dir(source_root)
        try:
            try:
                src = fsops.open_beneath(src_root, components)
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    return False
                raise
        finally:
            os.close(src_root)
        _copy_tree(src, os.dup(dst_root), hooks or CopyHooks())
        return True
    finally:
        os.close(dst_root)


def _copy_tree(src: int, dst: int, hooks: CopyHooks) -> None:
    """Copy the contents of ``src`` into ``dst`` (both descriptors are taken over and closed)."""
    stack = [_Frame(src, dst, "", os.fstat(src), iter(sorted(os.listdir(src))))]
    try:
        while stack:
            frame = stack[-1]
            name = next(frame.names, None)
            if name is None:
                stack.pop()
                try:
                    set_attributes(frame.dst, frame.st, source_fd=frame.src)
                finally:
                    os.close(frame.src)
                    os.close(frame.dst)
                continue
            st = fsops.lstat_at(frame.src, name)
            if st is None:
                continue
            rel = f"{frame.rel}/{name}" if frame.rel else name
            if stat.S_ISDIR(st.st_mode):
                if len(stack) >= MAX_DEPTH:
                    raise InvalidArgument(
                        f"cannot copy {rel!r} into the volume: deeper than {MAX_DEPTH} levels"
                    )
                child = _enter_source_dir(frame.src, name)
                if child is None:
                    continue
                try:
                    names = iter(sorted(os.listdir(child)))
                    child_dst = make_dir_at(frame.dst, name, rel, hooks)
                except BaseException:
                    os.close(child)
                    raise
                stack.append(_Frame(child, child_dst, rel, st, names))
            elif stat.S_ISREG(st.st_mode):
                copy_file_at(frame.src, frame.dst, name, rel)
            elif stat.S_ISLNK(st.st_mode):
                copy_symlink_at(frame.src, frame.dst, name, rel, st)
            # devices, fifos and sockets are not copied: reading a fifo would block the start
    finally:
        for frame in stack:
            os.close(frame.src)
            os.close(frame.dst)


def _enter_source_dir(src_parent: int, name: str) -> int | None:
    try:
        return fsops.open_dir_at(src_parent, name)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return None  # changed since we listed it: not followed
        raise


def _changed(rel: str, what: str) -> Conflict:
    return Conflict(
        f"volume copy-up stopped at {rel!r}: {what} appeared in the volume while the image's files "
        "were copied into it (another container changed it); nothing was written outside the volume",
        hint="start the container again once the volume is not in use, or remove and recreate the volume",
    )


def _existing_kind(dir_fd: int, name: str) -> str:
    st = fsops.lstat_at(dir_fd, name)
    if st is None:
        return "an entry"
    if stat.S_ISLNK(st.st_mode):
        return "a symbolic link"
    if stat.S_ISDIR(st.st_mode):
        return "a directory"
    return "a file"


def make_dir_at(parent: int, name: str, rel: str, hooks: CopyHooks | None = None) -> int:
    """Create the directory ``name`` in ``parent`` and return a descriptor for it (never a symlink's).

    The directory is made 0700 and given its real mode once filled (set_attributes), so nothing
    can be put into it by another user meanwhile. Raises `Conflict` if something already is there.
    """
    try:
        os.mkdir(name, 0o700, dir_fd=parent)
    except FileExistsError:
        raise _changed(rel, _existing_kind(parent, name)) from None
    if hooks is not None and hooks.after_mkdir is not None:
        hooks.after_mkdir(parent, name, rel)
    try:
        return fsops.open_dir_at(parent, name)
    except OSError as exc:
        if exc.errno in (errno.ENOTDIR, errno.ELOOP, errno.ENOENT):
            raise _changed(rel, _existing_kind(parent, name)) from exc
        raise


def copy_file_at(src_parent: int, dst_parent: int, name: str, rel: str) -> None:
    """Copy the regular file ``name`` from ``src_parent`` to a new file in ``dst_parent``."""
    try:
        src = os.open(name, _FILE_READ, dir_fd=src_parent)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP):
            return  # replaced since we listed it: skipped, not followed
        raise
    try:
        st = os.fstat(src)
        if not stat.S_ISREG(st.st_mode):
            return
        try:
            dst = os.open(name, _FILE_CREATE, 0o600, dir_fd=dst_parent)
        except FileExistsError:
            raise _changed(rel, _existing_kind(dst_parent, name)) from None
        try:
            write_data(src, dst, st.st_size)
            set_attributes(dst, st, source_fd=src)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def write_data(src: int, dst: int, size: int) -> None:
    """Copy ``size`` bytes from ``src`` to ``dst``: the one place this module writes file content.

    ``copy_file_range`` lets the kernel copy (or share) the data; where it cannot (across some file
    systems, older kernels), a plain read/write loop does.
    """
    left = size
    try:
        while left > 0:
            done = os.copy_file_range(src, dst, min(left, 1 << 30))
            if done == 0:
                return  # the file shrank while we copied
            left -= done
        return
    except OSError as exc:
        if exc.errno not in _FALLBACK_ERRNOS:
            raise
    while left > 0:
        chunk = os.read(src, min(CHUNK, left))
        if not chunk:
            return
        view = memoryview(chunk)
        while view:
            written = os.write(dst, view)
            view = view[written:]
        left -= len(chunk)


def copy_symlink_at(src_parent: int, dst_parent: int, name: str, rel: str, st: os.stat_result) -> None:
    """Recreate the symlink ``name`` in ``dst_parent`` with the same target text, owner and times."""
    try:
        link = os.readlink(name, dir_fd=src_parent)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.EINVAL):
            return  # replaced since we listed it
        raise
    try:
        os.symlink(link, name, dir_fd=dst_parent)
    except FileExistsError:
        raise _changed(rel, _existing_kind(dst_parent, name)) from None
    # Both calls act on the entry in the pinned directory itself, never on what a link points to.
    os.chown(name, st.st_uid, st.st_gid, dir_fd=dst_parent, follow_symlinks=False)
    os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst_parent, follow_symlinks=False)


def set_attributes(fd: int, st: os.stat_result, *, source_fd: int | None = None) -> None:
    """Give the open file or directory ``fd`` the owner, mode, xattrs and times in ``st``.

    The order matters: chown clears set-id bits and file capabilities, so it comes first.
    """
    os.chown(fd, st.st_uid, st.st_gid)
    os.chmod(fd, stat.S_IMODE(st.st_mode))
    if source_fd is not None:
        _copy_xattrs(source_fd, fd)
    os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))


def _copy_xattrs(src: int, dst: int) -> None:
    try:
        names = os.listxattr(src)
    except OSError:
        return
    for xname in names:
        if xname.startswith("trusted.overlay."):
            continue  # overlayfs bookkeeping of the image's layers, meaningless in a volume
        try:
            os.setxattr(dst, xname, os.getxattr(src, xname))
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EPERM, errno.ENODATA):
                raise
