"""Unpack an image layer (a possibly compressed tar) into a directory, treating it as hostile.

DESIGN.md decision 5: no entry may write outside the layer directory. Every path is split and
checked here (no ``..``; a leading ``/`` is stripped as Docker does, so resolution stays inside
the layer), every directory is entered with ``O_NOFOLLOW`` relative to its parent's descriptor
(so a symlink planted by an earlier entry can never be written through), hard links must point
at an entry inside the layer, device nodes are refused, and sizes, entry counts, depths and name
lengths are capped. ``tarfile`` is used only to parse headers: we never call ``extract``.

OCI/Docker whiteouts become overlayfs whiteouts: ``.wh.NAME`` becomes a 0/0 character device
``NAME`` and ``D/.wh..wh..opq`` sets ``trusted.overlay.opaque=y`` on ``D``.

The stream is read once: the raw bytes are hashed (blob digest) and optionally teed into a
``BlobWriter``, and the uncompressed bytes are hashed (diff ID), in the same pass.

Over 400 lines because _Extractor is one state machine over the tar stream (hard links, whiteouts, opaque
dirs, deferred directory times) whose checks only hold together.
"""

from __future__ import annotations

import base64
import errno
import logging
import os
import stat
import tarfile
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, TypeVar, cast

from engine.errors import DiskFull, EngineError, InvalidArgument, RuntimeFailure, UnsafeArchive
from engine.store import fsops
from engine.store.compression import DecodedStream
from engine.store.diskspace import Reserve

log = logging.getLogger(__name__)
_T = TypeVar("_T")

GiB = 1 << 30
WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
NAME_MAX = 255
_DIR_CACHE = 128
_REGULAR = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
# Errors that mean "an entry tried to go somewhere it may not": a symlink or a file where a
# directory was expected on the way down.
_ESCAPE_ERRNOS = (errno.ELOOP, errno.ENOTDIR, errno.EXDEV)
_RESOURCE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EMFILE, errno.ENFILE, errno.EROFS)


@dataclass(frozen=True)
class Limits:
    """Caps that stop a hostile layer (A9 parser DoS, A10 gzip bomb, A11 inode bomb)."""

    max_bytes: int = 64 * GiB  # uncompressed tar bytes (and raw bytes)
    max_entries: int = 2_000_000
    max_depth: int = 256  # path components
    max_name: int = 4096  # bytes of an entry name or link target (PATH_MAX)


@dataclass(frozen=True)
class UnpackResult:
    """What ``unpack`` read.

    ``digest``/``compressed_size``: sha256 and length of the raw bytes as read (the blob).
    ``diff_id``: sha256 of the uncompressed tar stream, including its padding.
    ``size``: bytes of regular-file content written (Docker's layer size), not tar bytes.
    """

    diff_id: str
    digest: str
    compressed_size: int
    size: int
    compression: str = "tar"
    entries: int = 0


def split_entry_name(name: str, limits: Limits = Limits()) -> tuple[str, ...]:
    """Return the components of a tar entry name, relative to the layer root.

    A leading ``/`` and ``.``/empty components are dropped (Docker resolves absolute names inside
    the layer too). Raise ``UnsafeArchive`` for ``..``, NUL bytes, and names that break the caps.
    An empty tuple means the layer root itself.
    """
    if "\x00" in name:
        raise UnsafeArchive.at(name, "name contains a NUL byte")
    # UTF-8 needs at most 4 bytes a character (1 for surrogate-escaped bytes): encode only when
    # the short cut cannot decide. This runs once per entry, so it is worth keeping cheap.
    if len(name) * 4 > limits.max_name and len(os.fsencode(name)) > limits.max_name:
        raise UnsafeArchive.at(f"{name[:100]}…", f"name longer than {limits.max_name} bytes")
    parts = tuple(part for part in name.split("/") if part and part != ".")
    if ".." in parts:
        raise UnsafeArchive.at(name, "'..' would leave the layer directory")
    if len(parts) > limits.max_depth:
        raise UnsafeArchive.at(f"{name[:100]}…", f"deeper than {limits.max_depth} levels")
    for part in parts:
        if len(part) * 4 > NAME_MAX and len(os.fsencode(part)) > NAME_MAX:
            raise UnsafeArchive.at(f"{name[:100]}…", f"a component is longer than {NAME_MAX} bytes")
    return parts


def pax_xattrs(pax_headers: Mapping[str, str]) -> dict[str, bytes]:
    """Return the extended attributes carried in PAX headers (SCHILY and LIBARCHIVE forms)."""
    result: dict[str, bytes] = {}
    for key, value in pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            result[key[len("SCHILY.xattr.") :]] = value.encode("utf-8", "surrogateescape")
        elif key.startswith("LIBARCHIVE.xattr."):
            attr = urllib.parse.unquote(key[len("LIBARCHIVE.xattr.") :])
            try:
                result[attr] = base64.b64decode(value + "=" * (-len(value) % 4))
            except ValueError as exc:
                raise UnsafeArchive(f"invalid LIBARCHIVE xattr {attr!r}: {exc}") from None
    return result


def unpack(
    stream: BinaryIO,
    dest: Path,
    *,
    tee: BinaryIO | None = None,
    limits: Limits = Limits(),
    reserve: Reserve | None = None,
) -> UnpackResult:
    """Extract the layer read from ``stream`` into the existing empty directory ``dest``.

    The stream is read to its end exactly once; its raw bytes are also written to ``tee``.
    Raise ``UnsafeArchive`` for entries that try to escape or break a cap, ``InvalidArgument``
    for corrupt data, ``DiskFull`` when free space falls below ``reserve`` (or the disk fills),
    ``RuntimeFailure`` for other host trouble. Runs of zeros become holes. On error ``dest`` is left
    partly filled: the caller removes it (``remove_tree``).
    """
    try:
        root_fd = fsops.open_dir(dest)
    except OSError as exc:
        raise RuntimeFailure(f"cannot open layer directory {dest}: {exc.strerror}") from exc
    try:
        decoded = DecodedStream(stream, tee=tee, max_bytes=limits.max_bytes)
    except BaseException:
        os.close(root_fd)
        raise
    extractor = _Extractor(root_fd, decoded, limits, reserve=reserve)
    try:
        extractor.run()
    finally:
        decoded.close()
        extractor.close()
        os.close(root_fd)
    return UnpackResult(
        diff_id=decoded.digest,
        digest=decoded.raw_digest,
        compressed_size=decoded.raw_size,
        size=extractor.size,
        compression=decoded.compression,
        entries=extractor.entries,
    )


class _Extractor:
    """Creates entries one by one below ``root_fd``; owns a small LRU of directory descriptors."""

    def __init__(
        self, root_fd: int, src: DecodedStream, limits: Limits, *, reserve: Reserve | None = None
    ) -> None:
        self.root_fd = root_fd
        self.src = src
        self.limits = limits
        self.reserve = reserve
        self.dirs: OrderedDict[tuple[str, ...], int] = OrderedDict()
        self.dir_times: dict[tuple[str, ...], int] = {}
        self.entries = 0
        self.size = 0
        self.as_root = os.geteuid() == 0

    def close(self) -> None:
        for fd in self.dirs.values():
            os.close(fd)
        self.dirs.clear()

    # -- walking ---------------------------------------------------------------------------
    def dir_fd(self, parts: tuple[str, ...], *, create: bool = True) -> int:
        """Return a cached descriptor of directory ``parts``, creating missing ones (0755)."""
        if not parts:
            return self.root_fd
        fd = self.dirs.get(parts)
        if fd is not None:
            self.dirs.move_to_end(parts)
            return fd
        parent = self.dir_fd(parts[:-1], create=create)
        try:
            fd = fsops.open_dir_at(parent, parts[-1])
        except FileNotFoundError:
            if not create:
                raise
            # Docker creates missing parents as root-owned 0755 directories.
            os.mkdir(parts[-1], 0o755, dir_fd=parent)
            fd = fsops.open_dir_at(parent, parts[-1])
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafeArchive(
                    f"{'/'.join(parts)!r} is a symlink or not a directory; refusing to write through it"
                ) from None
            raise
        self.dirs[parts] = fd
        if len(self.dirs) > _DIR_CACHE:
            _, old = self.dirs.popitem(last=False)
            os.close(old)
        return fd

    def forget(self, parts: tuple[str, ...]) -> None:
        """Drop cached descriptors and pending times of ``parts`` and everything below it."""
        depth = len(parts)
        for key in [key for key in self.dirs if key[:depth] == parts]:
            os.close(self.dirs.pop(key))
        for key in [key for key in self.dir_times if key[:depth] == parts]:
            del self.dir_times[key]

    def remove(self, parent: int, parts: tuple[str, ...]) -> None:
        """Remove whatever exists at ``parts`` (a later entry replaces an earlier one)."""
        self.forget(parts)
        fsops.remove_at(parent, parts[-1])

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> None:
        """Create every entry, then read the stream to its end (its digests must cover all of it).

        Raise UnsafeArchive for a chain of extended headers too deep for tarfile, besides the errors
        of each entry.
        """
        try:
            self._extract_entries()
            self.src.drain()
        except RecursionError:
            raise UnsafeArchive("tar archive chains too many extended headers") from None

    def _extract_entries(self) -> None:
        try:
            # Not stream mode ("r|"): its _Stream re-buffers and copies every read. DecodedStream is
            # already a stream with forward-only seek, which is all tarfile's "r:" mode needs.
            archive = tarfile.open(
                fileobj=cast(IO[bytes], self.src), mode="r:", encoding="utf-8", errors="surrogateescape"
            )
        except (tarfile.TarError, ValueError) as exc:  # ValueError: a malformed GNU sparse map
            raise InvalidArgument(f"layer is not a tar archive: {exc}") from None
        while True:
            try:
                info = archive.next()
            except (tarfile.TarError, ValueError) as exc:
                raise InvalidArgument(f"invalid tar archive: {exc}") from None
            if info is None:
                break
            archive.members.clear()  # type: ignore[attr-defined]  # else it keeps every TarInfo (A11)
            self.entries += 1
            if self.entries > self.limits.max_entries:
                raise UnsafeArchive(f"layer has more than {self.limits.max_entries} entries")
            try:
                self.entry(info)
            except UnsafeArchive as exc:
                if exc.entry is not None:
                    raise
                raise UnsafeArchive.at(info.name, exc.message) from None
            except EngineError:
                raise
            except ValueError as exc:
                raise UnsafeArchive.at(info.name, str(exc)) from None
            except OSError as exc:
                raise _translate(info.name, exc) from exc
        last = self.src.last_read
        # tarfile reports a corrupt or truncated header as the end of the archive; only an
        # all-zero end block or a clean end of data at a header boundary is a real end.
        if last and last.count(0) != len(last):
            raise InvalidArgument(f"invalid tar header at offset {self.src.tell() - len(last)}")
        for parts, mtime_ns in self.dir_times.items():
            try:
                os.utime(self.dir_fd(parts, create=False), ns=(mtime_ns, mtime_ns))
            except OSError as exc:
                raise _translate("/".join(parts) or ".", exc) from exc

    def entry(self, info: tarfile.TarInfo) -> None:
        parts = split_entry_name(info.name, self.limits)
        if info.sparse is not None or info.type == tarfile.GNUTYPE_SPARSE:
            raise UnsafeArchive(f"tar entry {info.name!r}: sparse files are not supported")
        if info.size > self.limits.max_bytes:  # its own header says it cannot fit: refuse before writing
            raise UnsafeArchive(
                f"tar entry {info.name!r}: declares {info.size} bytes, past the limit of {self.limits.max_bytes}"
            )
        if not parts:
            if not info.isdir():
                raise UnsafeArchive(f"tar entry {info.name!r}: only a directory may name the layer root")
            self.metadata(self.root_fd, info)
            self.dir_times[()] = _mtime_ns(info)
            return
        if parts[0].startswith(WHITEOUT_META_PREFIX):
            return  # AUFS bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not content
        if WHITEOUT_PREFIX in info.name and any(part.startswith(WHITEOUT_PREFIX) for part in parts[:-1]):
            raise UnsafeArchive(f"tar entry {info.name!r}: a whiteout cannot have children")
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self.whiteout(parts, info)
            return
        if info.islnk():
            self.hardlink(parts, info)
            return
        parent = self.dir_fd(parts[:-1])
        if info.type in _REGULAR:
            self.regular(parent, parts, info)
        elif info.isdir():
            self.directory(parent, parts, info)
        elif info.issym():
            self.symlink(parent, parts, info)
        elif info.isfifo() or (info.ischr() and info.devmajor == 0 and info.devminor == 0):
            kind = stat.S_IFIFO if info.isfifo() else stat.S_IFCHR
            self.create(parent, parts, lambda: os.mknod(base, kind | 0o600, 0, dir_fd=parent))
            self.metadata_at(parent, base, info)
        elif info.ischr() or info.isblk():
            raise UnsafeArchive(
                f"tar entry {info.name!r}: device nodes ({info.devmajor}:{info.devminor}) are not allowed"
            )
        else:
            raise UnsafeArchive(f"tar entry {info.name!r}: unsupported entry type {info.type!r}")

    def create(self, parent: int, parts: tuple[str, ...], make: Callable[[], _T]) -> _T:
        """Run ``make``; if the name exists, remove what is there and run it once more."""
        try:
            return make()
        except FileExistsError:
            self.remove(parent, parts)
            return make()

    # -- entry kinds -----------------------------------------------------------------------
    def regular(self, parent: int, parts: tuple[str, ...], info: tarfile.TarInfo) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = self.create(parent, parts, lambda: os.open(parts[-1], flags, 0o600, dir_fd=parent))
        try:
            self.src.copy_to(fd, info.size, reserve=self.reserve)
            self.size += info.size
            self.metadata(fd, info)
            mtime = _mtime_ns(info)
            _utime(fd, mtime)
        finally:
            os.close(fd)

    def directory(self, parent: int, parts: tuple[str, ...], info: tarfile.TarInfo) -> None:
        try:
            os.mkdir(parts[-1], 0o700, dir_fd=parent)
        except FileExistsError:
            existing = fsops.lstat_at(parent, parts[-1])
            if existing is None or not stat.S_ISDIR(existing.st_mode):
                self.remove(parent, parts)
                os.mkdir(parts[-1], 0o700, dir_fd=parent)
        self.metadata(self.dir_fd(parts), info)
        self.dir_times[parts] = _mtime_ns(info)

    def symlink(self, parent: int, parts: tuple[str, ...], info: tarfile.TarInfo) -> None:
        target = info.linkname
        if not target or "\x00" in target or len(os.fsencode(target)) > self.limits.max_name:
            raise UnsafeArchive(f"tar entry {info.name!r}: invalid symlink target")
        # The target is stored, never resolved by us: it only means something inside a container.
        self.create(parent, parts, lambda: os.symlink(target, parts[-1], dir_fd=parent))
        self.metadata_at(parent, parts[-1], info)

    def hardlink(self, parts: tuple[str, ...], info: tarfile.TarInfo) -> None:
        target = split_entry_name(info.linkname, self.limits)
        if not target or target[-1].startswith(WHITEOUT_PREFIX):
            raise UnsafeArchive(f"tar entry {info.name!r}: invalid hard link target {info.linkname!r}")
        if target == parts:
            return  # a link to itself: the file is already there
        # Two directories at once: dup both, so walking to one cannot evict the other from the cache.
        try:
            source_dir = os.dup(self.dir_fd(target[:-1], create=False))
        except FileNotFoundError:
            raise UnsafeArchive(
                f"tar entry {info.name!r}: hard link target {info.linkname!r} is not a file in this layer"
            ) from None
        parent = -1
        try:
            existing = fsops.lstat_at(source_dir, target[-1])
            if existing is None or stat.S_ISDIR(existing.st_mode):
                raise UnsafeArchive(
                    f"tar entry {info.name!r}: hard link target {info.linkname!r} is not a file in this layer"
                )
            parent = os.dup(self.dir_fd(parts[:-1]))
            # follow_symlinks=False: linkat without AT_SYMLINK_FOLLOW links a symlink itself.
            self.create(
                parent,
                parts,
                lambda: os.link(
                    target[-1], parts[-1], src_dir_fd=source_dir, dst_dir_fd=parent, follow_symlinks=False
                ),
            )
        finally:
            os.close(source_dir)
            if parent >= 0:
                os.close(parent)

    def whiteout(self, parts: tuple[str, ...], info: tarfile.TarInfo) -> None:
        base = parts[-1]
        parent = self.dir_fd(parts[:-1])
        if base == OPAQUE_MARKER:
            os.setxattr(parent, OPAQUE_XATTR, b"y")
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            raise UnsafeArchive(f"tar entry {info.name!r}: unknown whiteout metadata entry")
        hidden = parts[:-1] + (base[len(WHITEOUT_PREFIX) :],)
        if hidden[-1] in ("", ".", ".."):
            raise UnsafeArchive(f"tar entry {info.name!r}: invalid whiteout")
        try:
            self.create(parent, hidden, lambda: os.mknod(hidden[-1], stat.S_IFCHR, 0, dir_fd=parent))
        except PermissionError as exc:
            raise RuntimeFailure(f"cannot create whiteout {'/'.join(hidden)!r}: needs root") from exc
        if self.as_root:
            os.chown(hidden[-1], info.uid, info.gid, dir_fd=parent, follow_symlinks=False)

    # -- metadata --------------------------------------------------------------------------
    def metadata(self, fd: int, info: tarfile.TarInfo) -> None:
        """Owner, then mode (chown clears setuid bits), then xattrs, on an open descriptor."""
        if self.as_root:
            os.fchown(fd, info.uid, info.gid)
        os.fchmod(fd, info.mode & 0o7777)
        for name, value in pax_xattrs(info.pax_headers).items():
            if _xattr_allowed(name, info.name):
                _setxattr(fd, name, value, info.name)

    def metadata_at(self, parent: int, name: str, info: tarfile.TarInfo) -> None:
        """Metadata for entries that cannot be opened (symlinks, fifos) — never following links."""
        if self.as_root:
            os.chown(name, info.uid, info.gid, dir_fd=parent, follow_symlinks=False)
        if not info.issym():
            # We just created this fifo or 0/0 device ourselves, so following is not a concern.
            os.chmod(name, info.mode & 0o7777, dir_fd=parent)
        # /proc/self/fd/N resolves to the verified parent; the last component is not followed.
        where = f"/proc/self/fd/{parent}/{name}"
        for attr, value in pax_xattrs(info.pax_headers).items():
            if _xattr_allowed(attr, info.name):
                _setxattr(where, attr, value, info.name)
        mtime = _mtime_ns(info)
        try:
            os.utime(name, ns=(mtime, mtime), dir_fd=parent, follow_symlinks=False)
        except (OverflowError, ValueError):
            pass


def _xattr_allowed(name: str, entry: str) -> bool:
    # Overlay metadata in a layer would let an image forge redirects, origins or opacity (A6);
    # whiteouts are expressed only through .wh. entries.
    if name.startswith("trusted.overlay."):
        log.warning("layer entry %r: ignoring overlay xattr %s", entry, name)
        return False
    return True


def _setxattr(target: int | str, name: str, value: bytes, entry: str) -> None:
    try:
        # A str target is a /proc/self/fd path whose last component must not be followed.
        os.setxattr(target, name, value, follow_symlinks=isinstance(target, int))
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EPERM):
            raise
        # Docker does the same: not every filesystem (or every namespace) takes every xattr.
        level = logging.DEBUG if name.startswith("security.") else logging.WARNING
        log.log(level, "layer entry %r: cannot set xattr %s: %s", entry, name, exc.strerror)


def _mtime_ns(info: tarfile.TarInfo) -> int:
    try:
        return max(0, int(info.mtime * 1_000_000_000))
    except (OverflowError, ValueError, TypeError):
        return 0


def _utime(fd: int, mtime_ns: int) -> None:
    try:
        os.utime(fd, ns=(mtime_ns, mtime_ns))
    except (OverflowError, ValueError):
        pass
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # a time the filesystem cannot store
            raise


def _translate(name: str, exc: OSError) -> EngineError:
    if exc.errno in _ESCAPE_ERRNOS:
        return UnsafeArchive(f"tar entry {name!r}: {exc.strerror}; refusing to write through it")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(f"not enough disk space to extract tar entry {name!r}: {exc.strerror}")
    if exc.errno in _RESOURCE_ERRNOS:
        return RuntimeFailure(f"cannot extract tar entry {name!r}: {exc.strerror}")
    return InvalidArgument(f"cannot extract tar entry {name!r}: {exc.strerror}")


def remove_tree(path: Path) -> None:
    """Delete a layer directory and everything in it without following symlinks.

    Read-only directories and whiteout devices are handled; a missing path is fine. Raise
    ``RuntimeFailure`` when something cannot be removed.
    """
    try:
        fsops.remove_tree(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise RuntimeFailure(f"cannot remove {path}: {exc.strerror or exc}") from exc


def layer_dir_size(path: Path) -> int:
    """Return the bytes of file content under ``path`` (hard links once, symlinks not followed)."""
    try:
        return fsops.tree_size(path)
    except OSError as exc:
        raise RuntimeFailure(f"cannot measure {path}: {exc.strerror or exc}") from exc
