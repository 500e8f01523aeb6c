"""Find a symlink on a path the runtime mounts on or creates inside a container's root (issue 10 item 1).

runc (this host's predates the 2025 fixes) follows a symlink at `/dev`, `/dev/pts`, `/proc`, … in the
image to wherever it leads, the host included, and mounts or creates files there. So before the
runtime sees a bundle, every such path is walked one component at a time through directory
descriptors opened with O_NOFOLLOW, and the first component that is a symlink is reported.

Each path is walked in the file system that will be visible there when runc reaches it: below a
fresh file system the spec mounts (the tmpfs at /dev, proc, sysfs, …) there is nothing of the
image's to follow; below a bind mount (a volume, a host directory) the rest of the path is walked in
the bind's source. A missing component ends the walk: runc creates it, in a directory already checked.

Mechanism only: a root path and the OCI spec's mounts in, a finding (or None) out; plain OSError.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# What runc creates in /dev on its own (runtime-spec default devices and links) and the files the
# engine binds over; they are checked like mount destinations.
RUNTIME_PATHS = (
    "/dev",
    "/dev/pts",
    "/dev/shm",
    "/dev/mqueue",
    "/proc",
    "/sys",
    "/sys/fs/cgroup",
    *(
        f"/dev/{name}"
        for name in ("null zero full random urandom tty console ptmx fd stdin stdout stderr core".split())
    ),
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/hostname",
)
# Hidden below the fresh /dev and /sys the spec mounts, but refused in the image all the same: the
# issue names them, and should a spec ever lack the fresh mount above them, runc would follow them.
# (Device links such as /dev/fd -> /proc/self/fd, which some base images carry, are not: harmless.)
IMAGE_PATHS = ("/dev/pts", "/dev/shm", "/dev/mqueue", "/sys/fs/cgroup")
_FRESH = frozenset({"tmpfs", "proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2"})
_DIR = os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC


@dataclass(frozen=True)
class SymlinkFound:
    """`path` (a container path, or the part of one that is a link) is a symlink to `target`."""

    path: str
    target: str


def find_symlink(rootfs: str, mounts: Iterable[Mapping[str, Any]]) -> SymlinkFound | None:
    """Return the first runtime path or mount destination that is (or passes through) a symlink."""
    mounts = list(mounts)
    wanted = [*RUNTIME_PATHS, *(str(m.get("destination") or "") for m in mounts)]
    for path in dict.fromkeys(p for p in wanted if p.startswith("/")):
        base, base_path, rest = _where(rootfs, path, mounts)
        if base is None:
            continue
        found = _walk(base, rest)
        if found is not None:
            return SymlinkFound(posixpath.join(base_path, found[0]), found[1])
    for path in IMAGE_PATHS:
        found = _walk(rootfs, path.lstrip("/"))
        if found is not None:
            return SymlinkFound("/" + found[0], found[1])
    return None


def _where(rootfs: str, path: str, mounts: list[Mapping[str, Any]]) -> tuple[str | None, str, str]:
    """(host directory to walk in, its container path, the rest of `path` below it)."""
    parent: Mapping[str, Any] | None = None
    for m in mounts:
        dest = str(m.get("destination") or "").rstrip("/")
        if dest and path.startswith(dest + "/") and (parent is None or len(dest) > len(parent["d"])):
            parent = {"d": dest, "m": m}
    if parent is None:
        return rootfs, "/", path.lstrip("/")
    mount = parent["m"]
    if mount.get("type") in _FRESH:
        return None, "", ""  # a new, empty file system: nothing of the image's lies on this path
    return str(mount.get("source") or ""), parent["d"], path[len(parent["d"]) :].lstrip("/")


def _walk(base: str, rest: str) -> tuple[str, str] | None:
    """Walk `rest` below `base` without following links: (the link's relative path, its target) or None."""
    parts = [p for p in rest.split("/") if p and p != "."]
    try:
        fd = os.open(base, _DIR)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None  # runc reports a missing bind source itself
        raise
    try:
        for index, part in enumerate(parts):
            try:
                st = os.stat(part, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                return None
            if stat.S_ISLNK(st.st_mode):
                return "/".join(parts[: index + 1]), os.readlink(part, dir_fd=fd)
            if not stat.S_ISDIR(st.st_mode):
                return None  # a file on the way: runc fails with ENOTDIR, it cannot follow it
            next_fd = os.open(part, _DIR, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        return None
    finally:
        os.close(fd)
