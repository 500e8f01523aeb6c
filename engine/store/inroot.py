"""Resolve paths inside a container's root filesystem as if that root were `/`.

Every open goes through ``openat2(2)`` with ``RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS``: the kernel
resolves symlinks and ``..`` with the given directory as the root, so a link to ``/etc/shadow`` in
a container means the container's ``/etc/shadow``, never the host's (SECURITY.md A12–A14, issue 10
item 2). The string form of a resolved path (Docker's ``linkTarget``) is computed by a walk by hand
that applies the same rule; it is only informational, nothing is opened through it.

Mechanism only: descriptors and strings in, descriptors and stat results out; plain ``OSError``.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import stat
from dataclasses import dataclass

_SYS_OPENAT2 = 437  # the same number on every architecture (added in Linux 5.6)
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10
_MAX_LINKS = 40  # Linux's MAXSYMLINKS
_RETRIES = 8  # openat2 answers EAGAIN when a rename raced a ".." lookup


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


@functools.cache
def _syscall() -> ctypes._CFuncPtr:  # type: ignore[name-defined]
    libc = ctypes.CDLL(None, use_errno=True)
    func = libc.syscall
    func.restype = ctypes.c_long
    return func


def open_in_root(root_fd: int, path: str, flags: int = os.O_PATH) -> int:
    """Open ``path`` beneath ``root_fd`` (which acts as `/`); symlinks are followed inside it only."""
    how = _OpenHow(flags | os.O_CLOEXEC, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
    relative = path.lstrip("/") or "."
    encoded = os.fsencode(relative)
    for _ in range(_RETRIES):
        fd = _syscall()(_SYS_OPENAT2, root_fd, encoded, ctypes.byref(how), ctypes.sizeof(how))
        if fd >= 0:
            return int(fd)
        code = ctypes.get_errno()
        if code != errno.EAGAIN:
            raise OSError(code, os.strerror(code), path)
    raise OSError(errno.EAGAIN, "path kept changing while it was resolved", path)


def open_dir_in_root(root_fd: int, path: str) -> int:
    """Open the directory ``path`` beneath ``root_fd`` for reading entries and creating files."""
    return open_in_root(root_fd, path, os.O_RDONLY | os.O_DIRECTORY)


@dataclass(frozen=True)
class Split:
    """Where a path lands: an entry ``name`` in the directory ``parent_fd`` (the caller closes it).

    ``name`` is "." when the path itself names a directory through a trailing ``/``, ``/.`` or
    ``..`` (the directory is then ``parent_fd``); ``base`` is Docker's name for the path in an
    archive: the last component as written, "." for a trailing ``/.``.
    """

    parent_fd: int
    name: str
    base: str
    asserts_dir: bool


def split(path: str) -> tuple[str, str, bool]:
    """Return (parent path, last component, asserts a directory) for an in-root path (pure)."""
    asserts_dir = path.endswith("/") or path.endswith("/.") or path in ("", ".", "/")
    parts = [p for p in path.split("/") if p]
    if not parts:
        return "/", ".", True
    last = parts[-1]
    if last in (".", ".."):
        return "/" + "/".join(parts), ".", True
    if path.endswith("/"):
        return "/" + "/".join(parts), ".", True
    return "/" + "/".join(parts[:-1]), last, asserts_dir


def archive_base(path: str) -> str:
    """Docker's base name for ``path``: "." for a trailing `/.` (copy the contents), else the last name."""
    if path.endswith("/.") or path in (".", ""):
        return "."
    parts = [p for p in path.split("/") if p and p != "."]
    if not parts or parts[-1] == "..":
        return "."
    return parts[-1]


def locate(root_fd: int, path: str) -> Split:
    """Open the parent of ``path``'s last component beneath the root (the last one is not followed)."""
    parent, name, asserts_dir = split(path)
    fd = open_dir_in_root(root_fd, parent)
    return Split(parent_fd=fd, name=name, base=archive_base(path), asserts_dir=asserts_dir)


def lstat_at(dir_fd: int, name: str) -> os.stat_result:
    return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)


def resolved_path(root_fd: int, path: str) -> str:
    """Return the absolute in-root path that ``path`` leads to, every symlink followed inside the root.

    A missing component ends the walk with the rest appended as written (Docker's FollowSymlinkInScope).
    """
    done: list[str] = []
    pending = [p for p in path.split("/") if p and p != "."]
    pending.reverse()
    links = 0
    while pending:
        part = pending.pop()
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        try:
            parent = open_in_root(root_fd, "/" + "/".join(done), os.O_PATH | os.O_DIRECTORY)
        except OSError:
            done.append(part)
            continue
        try:
            st = lstat_at(parent, part)
            if not stat.S_ISLNK(st.st_mode):
                done.append(part)
                continue
            target = os.readlink(part, dir_fd=parent)
        except OSError:
            done.append(part)
            continue
        finally:
            os.close(parent)
        links += 1
        if links > _MAX_LINKS:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
        if target.startswith("/"):
            done = []
        pending.extend(reversed([p for p in target.split("/") if p]))
    return "/" + "/".join(done)
