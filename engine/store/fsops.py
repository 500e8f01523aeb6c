"""Low-level file operations relative to directory descriptors that never follow symlinks.

Everything here works on ``(dir_fd, name)`` pairs. A directory is entered only with
``O_DIRECTORY | O_NOFOLLOW``, so a symlink planted in a layer, a rootfs or a volume cannot
redirect a create, a chown or a delete to the host (attacks A3, A5, A14). The functions raise
plain ``OSError``; callers translate it into engine errors with the entry or path it concerns.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import stat
from collections.abc import Iterable
from pathlib import Path

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# Deeper than this, remove_tree moves a subtree up instead of holding one more descriptor.
_MAX_HELD_FDS = 256
_RENAME_EXCHANGE = 2  # renameat2(2) flag


def open_dir(path: Path | str) -> int:
    """Open the directory ``path`` itself (its last component must not be a symlink)."""
    return os.open(path, DIR_FLAGS)


def open_dir_at(dir_fd: int, name: str) -> int:
    """Open the subdirectory ``name`` of ``dir_fd``; ELOOP/ENOTDIR if it is a symlink or not a dir."""
    return os.open(name, DIR_FLAGS, dir_fd=dir_fd)


def kind_of(mode: int) -> str:
    """The kind a file browser shows for ``st_mode``: dir, file, symlink or other."""
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


def display_name(name: str) -> tuple[str, bool]:
    """``name`` as text, and whether it round-trips (a name that is not UTF-8 cannot be navigated to)."""
    raw = os.fsencode(name)
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError:
        return raw.decode("utf-8", "replace"), False


def read_at_most(fd: int, limit: int) -> bytes:
    """Read from ``fd`` until end of file or ``limit`` bytes, whichever comes first."""
    chunks: list[bytes] = []
    left = max(0, limit)
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def open_beneath(root_fd: int, components: Iterable[str]) -> int:
    """Walk ``components`` down from ``root_fd`` one by one without following symlinks.

    Return a new descriptor for the last directory (a dup of ``root_fd`` for no components).
    A component that cannot be entered raises ``OSError`` whose ``filename`` is the path walked
    so far (``a/b``): ENOENT when missing, ELOOP when it is a symlink (never followed), ENOTDIR
    when it is something else that is not a directory.
    """
    fd = os.dup(root_fd)
    walked: list[str] = []
    try:
        for name in components:
            walked.append(name)
            try:
                child = open_dir_at(fd, name)
            except OSError as exc:
                raise _blocked(exc, fd, name, "/".join(walked)) from exc
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _blocked(exc: OSError, dir_fd: int, name: str, walked: str) -> OSError:
    code = exc.errno or errno.EIO
    if code == errno.ENOTDIR:
        # O_DIRECTORY is checked before O_NOFOLLOW, so a symlink answers ENOTDIR: tell them apart.
        st = lstat_at(dir_fd, name)
        if st is not None and stat.S_ISLNK(st.st_mode):
            code = errno.ELOOP
    return OSError(code, os.strerror(code), walked)  # OSError(ENOENT, …) is a FileNotFoundError


def lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    """Return the lstat of ``name`` in ``dir_fd``, or None when it does not exist."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def remove_at(dir_fd: int, name: str) -> None:
    """Remove ``name`` from ``dir_fd`` whatever it is (a directory with all its contents)."""
    try:
        os.unlink(name, dir_fd=dir_fd)
        return
    except FileNotFoundError:
        return
    except IsADirectoryError:
        pass
    except PermissionError:
        _make_writable(dir_fd)
        try:
            os.unlink(name, dir_fd=dir_fd)
            return
        except IsADirectoryError:
            pass
    _remove_dir_at(dir_fd, name)


def _make_writable(fd: int) -> None:
    # Only matters when not root: a read-only directory from an image must still be deletable.
    mode = os.fstat(fd).st_mode
    os.chmod(fd, stat.S_IMODE(mode) | stat.S_IRWXU)


def _scan(fd: int) -> tuple[list[str], list[str]]:
    """Split the entries of ``fd`` into (subdirectories, other names)."""
    dirs: list[str] = []
    others: list[str] = []
    try:
        entries = list(os.scandir(fd))
    except PermissionError:
        _make_writable(fd)
        entries = list(os.scandir(fd))
    for entry in entries:
        (dirs if entry.is_dir(follow_symlinks=False) else others).append(entry.name)
    return dirs, others


def _unlink_all(fd: int, names: list[str]) -> None:
    for index, name in enumerate(names):
        try:
            os.unlink(name, dir_fd=fd)
        except FileNotFoundError:
            pass
        except PermissionError:
            _make_writable(fd)
            for rest in names[index:]:
                try:
                    os.unlink(rest, dir_fd=fd)
                except FileNotFoundError:
                    pass
            return


def _remove_dir_at(parent_fd: int, name: str) -> None:
    """Delete the directory ``name`` and its contents without recursion or symlink following."""
    top = open_dir_at(parent_fd, name)
    # Each frame: (descriptor, its name in the frame below, subdirectories still to delete).
    stack: list[tuple[int, str, list[str]]] = [(top, name, [])]
    moved = 0
    try:
        dirs, others = _scan(top)
        _unlink_all(top, others)
        stack[0][2].extend(dirs)
        while stack:
            fd, own_name, pending = stack[-1]
            if not pending:
                stack.pop()
                os.close(fd)
                _rmdir(stack[-1][0] if stack else parent_fd, own_name)
                continue
            child_name = pending.pop()
            if len(stack) >= _MAX_HELD_FDS:
                # Pathologically deep tree (a container can make one): move the subtree up to the
                # top directory and finish it from there, so we never hold thousands of fds.
                moved += 1
                flat = f".berth-rm-{os.getpid()}-{moved}"
                os.rename(child_name, flat, src_dir_fd=fd, dst_dir_fd=top)
                stack[0][2].append(flat)
                continue
            try:
                child = open_dir_at(fd, child_name)
            except FileNotFoundError:
                continue
            except PermissionError:
                _make_writable(fd)
                child = open_dir_at(fd, child_name)
            stack.append((child, child_name, []))
            dirs, others = _scan(child)
            _unlink_all(child, others)
            stack[-1][2].extend(dirs)
    finally:
        for fd, _, _ in stack:
            os.close(fd)


def _rmdir(parent_fd: int, name: str) -> None:
    try:
        os.rmdir(name, dir_fd=parent_fd)
    except FileNotFoundError:
        pass
    except PermissionError:
        _make_writable(parent_fd)
        os.rmdir(name, dir_fd=parent_fd)


def remove_tree(path: Path | str) -> None:
    """Delete ``path`` and everything below it; a missing path is fine; symlinks are not followed.

    If ``path`` itself is a symlink, the link is removed, never its target.
    """
    path = Path(path)
    parent_fd = open_dir(path.parent)
    try:
        remove_at(parent_fd, path.name)
    finally:
        os.close(parent_fd)


def tree_size(path: Path | str) -> int:
    """Return the bytes of file content under ``path`` (regular files and symlinks, hard links
    counted once), like Docker's layer size; symlinks are not followed."""
    seen: set[tuple[int, int]] = set()
    total = 0
    stack = [open_dir(path)]
    try:
        while stack:
            fd = stack.pop()
            try:
                for entry in os.scandir(fd):
                    st = entry.stat(follow_symlinks=False)
                    if stat.S_ISDIR(st.st_mode):
                        try:
                            stack.append(open_dir_at(fd, entry.name))
                        except OSError as exc:
                            if exc.errno not in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
                                raise
                    elif stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
                        if st.st_nlink > 1:
                            key = (st.st_dev, st.st_ino)
                            if key in seen:
                                continue
                            seen.add(key)
                        total += st.st_size
            finally:
                os.close(fd)
    finally:
        for fd in stack:
            os.close(fd)
    return total


@functools.cache
def _renameat2() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    try:
        func = ctypes.CDLL(None, use_errno=True).renameat2
    except AttributeError:
        return None
    func.restype = ctypes.c_int
    func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return func


def exchange_at(parent: int, a: str, b: str) -> None:
    """Swap the names ``a`` and ``b`` in ``parent`` atomically (two renames where the kernel or file
    system cannot exchange: a container starting in between would find no ``b``)."""
    func = _renameat2()
    if func is not None:
        if func(parent, os.fsencode(a), parent, os.fsencode(b), _RENAME_EXCHANGE) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS):
            raise OSError(code, os.strerror(code), b)
    aside = f"{a}.old"
    os.rename(b, aside, src_dir_fd=parent, dst_dir_fd=parent)
    os.rename(a, b, src_dir_fd=parent, dst_dir_fd=parent)
    os.rename(aside, a, src_dir_fd=parent, dst_dir_fd=parent)
