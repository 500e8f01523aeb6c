"""Tar streams of file trees, out of and into directories opened by descriptor.

Writing (`write_tree`) walks from a ``(dir_fd, name)`` pair without following any symlink and yields
the archive in chunks, so a tree of any size never sits in memory; hard links, modes, owners,
times and extended attributes (except overlayfs's own) are kept. Reading (`extract_into`) is the
image layers' hostile-input extractor (store/layers.py) aimed at a directory descriptor, with the
rules of copying files rather than applying a layer: ``.wh.`` names are not whiteouts (refused),
device nodes are refused, owners may be overridden, and a directory is not silently replaced by a
file (or the reverse) when asked.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import tarfile
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

from engine.errors import InvalidArgument, UnsafeArchive
from engine.store import fsops, layers
from engine.store.compression import DecodedStream
from engine.store.diskspace import Reserve

BLOCK = 512
CHUNK = 1 << 20
_FLUSH = 256 * 1024


def _tarinfo(arcname: str, st: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo(arcname)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    # Whole seconds, as GNU tar's default format and Docker's archives store them: a sub-second time
    # would cost a PAX record per entry, which doubles the headers to write and to parse.
    info.mtime = int(st.st_mtime)
    return info


def _xattrs(fd: int) -> dict[str, str]:
    try:
        names = os.listxattr(fd)
    except OSError:
        return {}
    out: dict[str, str] = {}
    for name in names:
        if name.startswith("trusted.overlay."):
            continue  # overlayfs bookkeeping, meaningless elsewhere (and forgeable, A6)
        try:
            value = os.getxattr(fd, name)
        except OSError:
            continue
        out[f"SCHILY.xattr.{name}"] = value.decode("utf-8", "surrogateescape")
    return out


def write_tree(
    parent_fd: int,
    name: str,
    arcname: str,
    *,
    skip_descent: Callable[[str], bool] = lambda rel: False,
    keep: Callable[[str, os.stat_result], bool] | None = None,
) -> Iterator[bytes]:
    """Yield a tar of ``name`` in ``parent_fd`` (and, for a directory, everything below it).

    Entries are named ``arcname`` and ``arcname/…`` (an empty ``arcname`` leaves the top entry out and
    names the rest from there, as `docker export` does); ``skip_descent(rel)`` (rel is the path below
    ``name``, "" for itself) may keep a directory's contents out (e.g. /proc of a live container);
    ``keep(rel, lstat)``, when given, may leave an entry below the top out entirely (device nodes).
    A file that changes size while it is read is padded or cut to the size in its header.
    """
    out = bytearray()
    links: dict[tuple[int, int], str] = {}
    st = fsops.lstat_at(parent_fd, name)
    if st is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)
    arcname = arcname.strip("/")
    stack: list[tuple[int, str, str, Iterator[str]]] = []
    try:
        if arcname:
            yield from _entry(out, parent_fd, name, arcname, st, links)
        if stat.S_ISDIR(st.st_mode) and not skip_descent(""):
            fd = fsops.open_dir_at(parent_fd, name)
            stack.append((fd, arcname, "", iter(sorted(os.listdir(fd)))))
        while stack:
            fd, prefix, rel, names = stack[-1]
            child = next(names, None)
            if child is None:
                stack.pop()
                os.close(fd)
                continue
            child_st = fsops.lstat_at(fd, child)
            if child_st is None:
                continue  # removed while we walked
            child_arc = f"{prefix}/{child}" if prefix else child
            child_rel = f"{rel}/{child}" if rel else child
            if keep is not None and not keep(child_rel, child_st):
                continue
            yield from _entry(out, fd, child, child_arc, child_st, links)
            if stat.S_ISDIR(child_st.st_mode) and not skip_descent(child_rel):
                if len(stack) >= layers.Limits().max_depth:
                    raise InvalidArgument(f"{child_rel}: deeper than {len(stack)} levels")
                try:
                    child_fd = fsops.open_dir_at(fd, child)
                except OSError as exc:
                    if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
                        continue  # swapped for something else while we walked: not followed
                    raise
                stack.append((child_fd, child_arc, child_rel, iter(sorted(os.listdir(child_fd)))))
        out += b"\0" * (2 * BLOCK)
        yield bytes(out)
    finally:
        for fd, _, _, _ in stack:
            os.close(fd)


def _entry(
    out: bytearray,
    parent_fd: int,
    name: str,
    arcname: str,
    st: os.stat_result,
    links: dict[tuple[int, int], str],
) -> Iterator[bytes]:
    info = _tarinfo(arcname, st)
    mode = st.st_mode
    data_fd = -1
    if stat.S_ISREG(mode):
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in links:
            info.type, info.linkname = tarfile.LNKTYPE, links[key]
        else:
            if st.st_nlink > 1:
                links[key] = arcname
            try:
                data_fd = os.open(
                    name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=parent_fd
                )
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.ELOOP):
                    return  # replaced while we walked: skip rather than follow
                raise
            info.type, info.size = tarfile.REGTYPE, os.fstat(data_fd).st_size
            info.pax_headers = _xattrs(data_fd)
    elif stat.S_ISDIR(mode):
        info.type = tarfile.DIRTYPE
        if arcname != ".":
            info.name = arcname + "/"
        try:
            fd = fsops.open_dir_at(parent_fd, name)
        except OSError:
            pass
        else:
            info.pax_headers = _xattrs(fd)
            os.close(fd)
    elif stat.S_ISLNK(mode):
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(name, dir_fd=parent_fd)
    elif stat.S_ISFIFO(mode):
        info.type = tarfile.FIFOTYPE
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    else:
        return  # sockets have no tar form
    out += info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    if data_fd < 0:
        if len(out) >= _FLUSH:
            yield bytes(out)
            out.clear()
        return
    try:
        if out:
            yield bytes(out)
            out.clear()
        left = info.size
        while left > 0:
            chunk = os.read(data_fd, min(CHUNK, left))
            if not chunk:
                yield b"\0" * left  # the file shrank: keep the archive well-formed
                break
            left -= len(chunk)
            yield chunk
        pad = -info.size % BLOCK
        if pad:
            out += b"\0" * pad
    finally:
        os.close(data_fd)


class IterReader(io.RawIOBase):
    """A binary file over an iterator of byte chunks (a tar made by `write_tree`, a request body)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buffer = chunk
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


class _CopyExtractor(layers._Extractor):  # noqa: SLF001 — the layer extractor with copy rules
    def __init__(
        self,
        root_fd: int,
        src: DecodedStream,
        limits: layers.Limits,
        *,
        owner: tuple[int, int] | None,
        no_overwrite_dir_non_dir: bool,
        rename: Callable[[str], str] | None,
        reserve: Reserve | None = None,
    ) -> None:
        super().__init__(root_fd, src, limits, reserve=reserve)
        self.owner = owner
        self.no_overwrite = no_overwrite_dir_non_dir
        self.rename = rename

    def entry(self, info: tarfile.TarInfo) -> None:
        if info.ischr() or info.isblk():
            raise UnsafeArchive(f"tar entry {info.name!r}: device nodes cannot be copied into a container")
        if self.rename is not None:
            info.name = self.rename(info.name)
            if info.islnk():
                info.linkname = self.rename(info.linkname)
        if self.owner is not None:
            info.uid, info.gid = self.owner
        if self.no_overwrite:
            self._check_kind(info)
        super().entry(info)

    def _check_kind(self, info: tarfile.TarInfo) -> None:
        parts = layers.split_entry_name(info.name, self.limits)
        if not parts:
            return
        try:
            parent = self.dir_fd(parts[:-1], create=False)
        except (FileNotFoundError, UnsafeArchive):
            return
        existing = fsops.lstat_at(parent, parts[-1])
        if existing is None:
            return
        if stat.S_ISDIR(existing.st_mode) and not info.isdir():
            raise InvalidArgument(f"cannot overwrite directory {info.name!r} with non-directory")
        if not stat.S_ISDIR(existing.st_mode) and info.isdir():
            raise InvalidArgument(f"cannot overwrite non-directory {info.name!r} with directory")

    def whiteout(self, parts: tuple[str, ...], info: tarfile.TarInfo) -> None:
        raise UnsafeArchive(
            f"tar entry {info.name!r}: names starting with .wh. are reserved for image layers"
        )


def extract_into(
    stream: BinaryIO,
    dir_fd: int,
    *,
    max_bytes: int,
    owner: tuple[int, int] | None = None,
    no_overwrite_dir_non_dir: bool = False,
    rename: Callable[[str], str] | None = None,
    reserve: Reserve | None = None,
) -> int:
    """Extract the (possibly compressed) tar ``stream`` below the directory ``dir_fd``; return entries.

    Nothing is written through a symlink or outside ``dir_fd``; ``owner`` replaces every entry's
    uid/gid (None keeps them); ``rename`` maps entry names first (Docker's archive rebasing).
    Raise ``UnsafeArchive``/``InvalidArgument`` for refused or corrupt input, ``DiskFull`` when free
    space falls below ``reserve``; zero runs become holes; what was written
    before the error stays (as with `docker cp`).
    """
    limits = layers.Limits(max_bytes=max_bytes)
    decoded = DecodedStream(stream, max_bytes=max_bytes, hashed=False)
    extractor = _CopyExtractor(
        dir_fd,
        decoded,
        limits,
        owner=owner,
        no_overwrite_dir_non_dir=no_overwrite_dir_non_dir,
        rename=rename,
        reserve=reserve,
    )
    try:
        extractor.run()
    finally:
        decoded.close()
        extractor.close()
    return extractor.entries


def rebase(old: str, new: str) -> Callable[[str], str]:
    """Docker's RebaseArchiveEntries: an entry whose first component is ``old`` gets ``new`` instead."""

    def rename(name: str) -> str:
        parts = [p for p in name.split("/") if p]
        if old == ".":
            if name.startswith("./") or name in (".", "./"):
                return new + name[1:]
            return name
        if parts and parts[0] == old:
            return "/".join([new, *parts[1:]]) + ("/" if name.endswith("/") else "")
        return name

    return rename
