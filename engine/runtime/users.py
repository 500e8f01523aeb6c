"""Resolve `--user user[:group]` against the image's /etc/passwd and /etc/group.

The files are read inside the rootfs without following symlinks: every path component is opened with
O_NOFOLLOW relative to the rootfs directory fd, so an image whose /etc/passwd (or /etc) is a symlink
cannot make the engine read a host file. Such a file counts as absent. Numeric ids need no files.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from engine.errors import InvalidArgument, RuntimeFailure

MAX_ID = 2**31 - 1  # ids above this are refused; -1 would mean "unchanged" to the kernel
MAX_FILE = 4 * 1024 * 1024  # an image's passwd larger than this is not read (a DoS guard)


@dataclass(frozen=True)
class ResolvedUser:
    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    home: str


@dataclass(frozen=True)
class PasswdEntry:
    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True)
class GroupEntry:
    name: str
    gid: int
    members: tuple[str, ...]


def parse_passwd(text: str) -> list[PasswdEntry]:
    """Parse passwd lines, skipping comments and malformed lines."""
    out = []
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) < 7 or line.startswith("#"):
            continue
        uid, gid = _id_or_none(fields[2], strict=False), _id_or_none(fields[3], strict=False)
        if uid is None or gid is None:
            continue
        out.append(PasswdEntry(fields[0], uid, gid, fields[5] or "/"))
    return out


def parse_group(text: str) -> list[GroupEntry]:
    """Parse group lines, skipping comments and malformed lines."""
    out = []
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) < 4 or line.startswith("#"):
            continue
        gid = _id_or_none(fields[2], strict=False)
        if gid is None:
            continue
        members = tuple(m for m in fields[3].split(",") if m)
        out.append(GroupEntry(fields[0], gid, members))
    return out


def resolve(spec: str | None, passwd: list[PasswdEntry], groups: list[GroupEntry]) -> ResolvedUser:
    """Resolve `spec` ("", "name", "uid", "name:group", "uid:gid", …) against parsed files (pure).

    Follows Docker: a named user must exist; a numeric one need not (its gid is then 0 and home "/");
    without an explicit group the user's supplementary groups come from /etc/group membership.
    Raises InvalidArgument for unknown names or out-of-range ids.
    """
    spec = (spec or "").strip()
    user_part, sep, group_part = spec.partition(":")
    if sep and not group_part:
        raise InvalidArgument(f"user {spec!r}: empty group")
    user_part = user_part or "0"
    entry = _find_user(user_part, passwd)
    if entry is None:
        uid = _id_or_none(user_part)
        if uid is None:
            raise InvalidArgument(f"unable to find user {user_part}: no matching entries in passwd file")
        name, gid, home = None, 0, "/"
    else:
        uid, name, gid, home = entry.uid, entry.name, entry.gid, entry.home
    extra: tuple[int, ...] = ()
    if group_part:
        group = next((g for g in groups if g.name == group_part), None)
        if group is not None:
            gid = group.gid
        else:
            numeric = _id_or_none(group_part)
            if numeric is None:
                raise InvalidArgument(f"unable to find group {group_part}: no matching entries in group file")
            gid = numeric
    elif name is not None:
        extra = tuple(sorted({g.gid for g in groups if name in g.members and g.gid != gid}))
    return ResolvedUser(uid, gid, extra, home)


def resolve_in_rootfs(rootfs: Path, spec: str | None) -> ResolvedUser:
    """Read the image's /etc/passwd and /etc/group safely and resolve `spec` against them."""
    passwd = parse_passwd(read_image_file(rootfs, "etc/passwd") or "")
    groups = parse_group(read_image_file(rootfs, "etc/group") or "")
    return resolve(spec, passwd, groups)


def read_image_file(rootfs: Path, relpath: str) -> str | None:
    """Return a regular file's text from inside `rootfs`, or None if it is absent or not safe to read.

    Every component is opened with O_NOFOLLOW relative to its parent's fd: a symlink anywhere on the
    way, a non-regular file or a file over MAX_FILE yields None, never a read outside the rootfs.
    """
    parts = [p for p in relpath.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise ValueError(f"bad image path {relpath!r}")
    try:
        dirfd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise RuntimeFailure(f"cannot open rootfs {rootfs}: {exc}") from exc
    try:
        for part in parts[:-1]:
            try:
                nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    return None
                raise RuntimeFailure(f"cannot open {part} in {rootfs}: {exc}") from exc
            os.close(dirfd)
            dirfd = nxt
        try:
            # O_NONBLOCK so a FIFO planted as /etc/passwd cannot hang the engine.
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dirfd)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ENXIO):
                return None
            raise RuntimeFailure(f"cannot open {relpath} in {rootfs}: {exc}") from exc
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_FILE:
                return None
            return fh.read(MAX_FILE).decode("utf-8", errors="replace")
    finally:
        os.close(dirfd)


def _find_user(token: str, passwd: list[PasswdEntry]) -> PasswdEntry | None:
    for entry in passwd:
        if entry.name == token:
            return entry
    uid = _id_or_none(token)
    if uid is not None:
        return next((e for e in passwd if e.uid == uid), None)
    return None


def _id_or_none(text: str, *, strict: bool = True) -> int | None:
    """Parse a decimal id; out of range raises when the user typed it, and is skipped in files."""
    if not text.isdigit() or not text.isascii():
        return None
    value = int(text)
    if value > MAX_ID:
        if strict:
            raise InvalidArgument(f"id {value} is out of range (0..{MAX_ID})")
        return None
    return value
