"""Turn a directory into a layer tar stream: a container's overlay upper dir, or any plain tree.

An upper dir is the container's changes: regular files, directories, symlinks and hard links keep
their modes, owners, times and extended attributes (overlay's own `trusted.overlay.*` are dropped);
a whiteout (a 0/0 character device) becomes a `.wh.NAME` entry and an opaque directory (xattr
`trusted.overlay.opaque=y`) a `.wh..wh..opq` entry, the OCI layer format. The walk is done from
directory descriptors and never follows a symlink. Entries are written in sorted order, so the
same tree always gives the same tar and diff ID.

`TarPipe` runs a tar writer in a thread and hands the stream to a reader (the layer store), so a
huge file is never held in memory or written twice.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from engine.errors import InvalidArgument, RuntimeFailure
from engine.store import fsops

log = logging.getLogger(__name__)

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
# A layer diff is only right when overlay stored every change as a plain file: with redirect_dir or
# metacopy a directory rename or a chmod is recorded as a pointer into the lower layers instead.
_UNSUPPORTED_XATTRS = ("trusted.overlay.redirect", "trusted.overlay.metacopy")
MAX_DEPTH = 256
_POISON = b"\xff" * 1024  # not a tar header: a reader fails instead of accepting a cut-short stream

Skip = Callable[[str, os.stat_result], bool]


def tarinfo(
    name: str,
    st: os.stat_result,
    *,
    linkname: str = "",
    uid: int | None = None,
    gid: int | None = None,
    mode: int | None = None,
) -> tarfile.TarInfo:
    """A tar header for `name` from its lstat; uid/gid/mode override what the file has."""
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode) if mode is None else mode
    info.uid = st.st_uid if uid is None else uid
    info.gid = st.st_gid if gid is None else gid
    info.uname = info.gname = ""
    info.mtime = int(st.st_mtime)
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = linkname
    elif stat.S_ISFIFO(st.st_mode):
        info.type = tarfile.FIFOTYPE
    elif stat.S_ISREG(st.st_mode):
        info.type = tarfile.REGTYPE
        info.size = st.st_size
    else:
        raise InvalidArgument(f"{name}: unsupported file type")
    return info


def xattrs(dir_fd: int, name: str) -> dict[str, str]:
    """The PAX records for the entry's extended attributes, without overlay's own."""
    where = f"/proc/self/fd/{dir_fd}/{name}"  # the verified parent; the last component is not followed
    try:
        names = os.listxattr(where, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.ENODATA, errno.EPERM):
            return {}
        raise
    records: dict[str, str] = {}
    for attr in sorted(names):
        if attr in _UNSUPPORTED_XATTRS:
            raise InvalidArgument(
                f"{name}: overlay recorded a change as {attr}; it cannot be turned into a layer",
                hint="mount overlay with redirect_dir=off and metacopy=off",
            )
        if attr.startswith("trusted.overlay."):
            continue
        try:
            value = os.getxattr(where, attr, follow_symlinks=False)
        except OSError:
            continue
        records[f"SCHILY.xattr.{attr}"] = value.decode("utf-8", "surrogateescape")
    return records


class TreeWriter:
    """Writes the entries below one directory into a tar, under `prefix`."""

    def __init__(
        self,
        tar: tarfile.TarFile,
        *,
        overlay: bool,
        prefix: str = "",
        skip: Skip | None = None,
        uid: int | None = None,
        gid: int | None = None,
    ) -> None:
        self.tar = tar
        self.overlay = overlay  # whiteouts and opaque directories are overlay's, not content
        self.prefix = prefix.strip("/")
        self.skip = skip
        self.uid = uid
        self.gid = gid
        self.links: dict[tuple[int, int], str] = {}

    def arcname(self, rel: str) -> str:
        return "/".join(p for p in (self.prefix, rel) if p)

    def write(self, root: Path) -> None:
        try:
            fd = fsops.open_dir(root)
        except OSError as exc:
            raise RuntimeFailure(f"cannot open {root}: {exc.strerror}") from exc
        try:
            self._dir(fd, "", 1)
        except OSError as exc:
            raise RuntimeFailure(f"cannot read {root}: {exc.strerror or exc}") from exc
        finally:
            os.close(fd)

    def _dir(self, dir_fd: int, rel: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise InvalidArgument(f"{rel}: directories nested deeper than {MAX_DEPTH} levels")
        for name in sorted(os.listdir(dir_fd)):
            child = f"{rel}/{name}" if rel else name
            st = fsops.lstat_at(dir_fd, name)
            if st is None or (self.skip is not None and self.skip(child, st)):
                continue
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                if self.overlay:
                    parent = child.rpartition("/")[0]
                    self._marker(
                        f"{parent}/{WHITEOUT_PREFIX}{name}" if parent else WHITEOUT_PREFIX + name, st
                    )
                else:
                    log.warning("%s: skipping a whiteout device outside an overlay upper dir", child)
                continue
            if stat.S_ISDIR(st.st_mode):
                sub = fsops.open_dir_at(dir_fd, name)
                try:
                    self._add(dir_fd, name, child, st)
                    if self.overlay and _opaque(sub):
                        self._marker(f"{child}/{OPAQUE_MARKER}", st)
                    self._dir(sub, child, depth + 1)
                finally:
                    os.close(sub)
            elif stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode) or stat.S_ISFIFO(st.st_mode):
                self._add(dir_fd, name, child, st)
            else:
                log.warning("%s: skipping a device node or socket (not allowed in a layer)", child)

    def _add(self, dir_fd: int, name: str, rel: str, st: os.stat_result) -> None:
        arc = self.arcname(rel)
        linkname = os.readlink(name, dir_fd=dir_fd) if stat.S_ISLNK(st.st_mode) else ""
        info = tarinfo(arc, st, linkname=linkname, uid=self.uid, gid=self.gid)
        info.pax_headers = xattrs(dir_fd, name)
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            first = self.links.get((st.st_dev, st.st_ino))
            if first is not None:
                info.type, info.linkname, info.size = tarfile.LNKTYPE, first, 0
                self.tar.addfile(info)
                return
            self.links[(st.st_dev, st.st_ino)] = arc
        if info.type != tarfile.REGTYPE:
            self.tar.addfile(info)
            return
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        with os.fdopen(fd, "rb") as fh:
            self.tar.addfile(info, fh)

    def _marker(self, rel: str, st: os.stat_result) -> None:
        info = tarfile.TarInfo(self.arcname(rel))
        info.mode, info.mtime = 0o600, int(st.st_mtime)
        self.tar.addfile(info)


def _opaque(fd: int) -> bool:
    try:
        return os.getxattr(fd, OPAQUE_XATTR) == b"y"
    except OSError:
        return False


def write_upper(tar: tarfile.TarFile, upper: Path, *, skip: Skip | None = None) -> None:
    """Write an overlay upper dir as an OCI layer diff."""
    TreeWriter(tar, overlay=True, skip=skip).write(upper)


def _discard(tar: tarfile.TarFile) -> None:
    """Forget what tarfile still buffers, so nothing follows the poison (nor is written when the
    stream object is garbage collected, which would hit a closed file)."""
    stream: Any = tar.fileobj
    if hasattr(stream, "buf"):
        stream.buf = b""
        stream.closed = True
    tar.closed = True  # type: ignore[attr-defined]


class TarPipe:
    """`with TarPipe(write) as stream:` — `write(tar)` runs in a thread; read its tar from `stream`.

    If the writer fails, the stream ends in bytes that are not a tar header (so a reader fails rather
    than accept a short layer) and the writer's error is raised when the block exits.
    """

    def __init__(self, write: Callable[[tarfile.TarFile], None]) -> None:
        self._write = write
        self.error: BaseException | None = None
        self._reader: BinaryIO | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> BinaryIO:
        read_fd, write_fd = os.pipe()
        self._reader = os.fdopen(read_fd, "rb", buffering=1 << 20)
        self._thread = threading.Thread(target=self._produce, args=(write_fd,), daemon=True, name="tarpipe")
        self._thread.start()
        return self._reader

    def _produce(self, write_fd: int) -> None:
        try:
            with os.fdopen(write_fd, "wb", buffering=1 << 20) as out:
                tar = tarfile.open(
                    fileobj=out,
                    mode="w|",
                    format=tarfile.PAX_FORMAT,
                    encoding="utf-8",
                    errors="surrogateescape",
                )
                try:
                    self._write(tar)
                    tar.close()
                except BaseException as exc:  # noqa: BLE001 — handed to the reading thread
                    self.error = exc
                    _discard(tar)
                    out.write(_POISON)
        except OSError as exc:
            if self.error is None:
                self.error = exc  # the reader went away (EPIPE), or the pipe failed

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        assert self._reader is not None and self._thread is not None
        self._reader.close()  # a writer blocked on a full pipe gets EPIPE and ends
        self._thread.join()
        error = self.error
        if error is None:
            return
        if isinstance(error, OSError) and error.errno == errno.EPIPE:
            if exc_type is None:
                raise RuntimeFailure("the layer reader stopped before the end of the stream")
            return
        if isinstance(error, OSError):
            raise RuntimeFailure(f"cannot write the layer: {error.strerror or error}") from error
        raise error
