"""Reading a build context (or a stage's root filesystem) without ever leaving it.

A `SourceTree` is a directory we read files from on behalf of a Dockerfile: the build context, or
the merged root filesystem of an earlier stage for `COPY --from`. Paths are resolved the way
openat2's RESOLVE_IN_ROOT does: component by component from a directory descriptor, each opened with
O_NOFOLLOW, a symlink's target re-resolved inside the root (an absolute target starts again at the
root, `..` stops at the root). Nothing a Dockerfile names can reach a host file (A24), and a context
changed under our feet fails with ELOOP/ENOTDIR rather than escaping. Symlinks found while walking a
directory are reported as symlinks, never followed. `.dockerignore` applies to the context only.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import os
import posixpath
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from engine.dockerfile import ignore
from engine.errors import DockerfileError, InvalidArgument, RuntimeFailure
from engine.store import fsops, layerdiff
from engine.store import layers as layer_store
from engine.store.diskspace import Reserve

MAX_SYMLINKS = 40  # as the kernel's MAXSYMLINKS
MAX_DEPTH = 256
MAX_MATCHES = 100_000
MAX_DOCKERIGNORE = 1 << 20
MAX_DOCKERFILE = 4 << 20
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@dataclass(frozen=True)
class Entry:
    """One thing found in a tree: its path relative to the root and its lstat."""

    path: str  # "a/b" ("" is the root)
    st: os.stat_result

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


class SourceTree:
    """A directory read only through descriptors, never through a symlink."""

    def __init__(self, root: Path, *, rules: ignore.Matcher | None = None) -> None:
        self.root = Path(root)
        self.rules = rules or ignore.Matcher([])
        try:
            self.root_fd = fsops.open_dir(self.root)
        except OSError as exc:
            raise InvalidArgument(f"cannot open build context {root}: {exc.strerror}") from exc

    def close(self) -> None:
        if self.root_fd >= 0:
            os.close(self.root_fd)
            self.root_fd = -1

    def __enter__(self) -> SourceTree:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- resolving -----------------------------------------------------------------------------
    def resolve(self, path: str, *, follow_last: bool = True) -> str | None:
        """Resolve `path` inside the root; return the symlink-free relative path, or None if missing."""
        done, missing = self.resolve_partial(path, follow_last=follow_last)
        return None if missing else done

    def resolve_partial(self, path: str, *, follow_last: bool = True) -> tuple[str, list[str]]:
        """Resolve as much of `path` as exists: (resolved existing part, the missing components).

        A non-directory in the middle of the path counts as the end of what exists.
        """
        pending = _components(path)
        done: list[str] = []
        links = 0
        while pending:
            name = pending.pop(0)
            if name == "..":
                if done:
                    done.pop()
                continue
            st = self._lstat(done, name)
            if st is None:
                return "/".join(done), [name, *[p for p in pending if p != ".."]]
            if stat.S_ISLNK(st.st_mode) and (pending or follow_last):
                links += 1
                if links > MAX_SYMLINKS:
                    raise InvalidArgument(f"too many levels of symbolic links resolving {path!r}")
                target = self._readlink(done, name)
                if target.startswith("/"):
                    done = []
                pending = _components(target) + pending
                continue
            if pending and not stat.S_ISDIR(st.st_mode):
                return "/".join(done), [name, *pending]
            done.append(name)
        return "/".join(done), []

    def lstat(self, path: str) -> os.stat_result | None:
        """lstat of a resolved path (no symlink on the way, by construction)."""
        parts = _components(path)
        if not parts:
            return os.fstat(self.root_fd)
        return self._lstat(parts[:-1], parts[-1])

    def _lstat(self, parents: list[str], name: str) -> os.stat_result | None:
        fd = self._open_dir(parents)
        try:
            return fsops.lstat_at(fd, name)
        finally:
            os.close(fd)

    def _readlink(self, parents: list[str], name: str) -> str:
        fd = self._open_dir(parents)
        try:
            return os.readlink(name, dir_fd=fd)
        finally:
            os.close(fd)

    def readlink(self, path: str) -> str:
        parts = _components(path)
        return self._readlink(parts[:-1], parts[-1])

    def _open_dir(self, parts: list[str]) -> int:
        try:
            return fsops.open_beneath(self.root_fd, parts)
        except OSError as exc:
            raise _escape_error("/".join(parts), exc) from exc

    # -- reading -------------------------------------------------------------------------------
    def open_file(self, path: str) -> int:
        """Open a resolved regular file for reading; refuse anything else (a FIFO cannot hang us)."""
        parts = _components(path)
        parent = self._open_dir(parts[:-1])
        try:
            fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=parent)
        except OSError as exc:
            raise _escape_error(path, exc) from exc
        finally:
            os.close(parent)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise InvalidArgument(f"{path}: not a regular file")
        os.set_blocking(fd, True)
        return fd

    def read_text(self, path: str, *, limit: int) -> str | None:
        """A small file's text (None if absent); larger than `limit` is an error."""
        resolved = self.resolve(path)
        if resolved is None:
            return None
        fd = self.open_file(resolved)
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(limit + 1)
        if len(data) > limit:
            raise InvalidArgument(f"{path} is larger than {limit} bytes")
        return data.decode("utf-8", errors="replace")

    def listdir(self, path: str) -> list[str]:
        fd = self._open_dir(_components(path))
        try:
            return sorted(os.listdir(fd))
        finally:
            os.close(fd)

    def excluded(self, path: str) -> bool:
        return self.rules.excluded(path)

    def walk(self, path: str) -> Iterator[Entry]:
        """Yield `path` and everything below it (pre-order, sorted), skipping excluded entries.

        Symlinks are yielded as symlinks. `path` must be resolved.
        """
        st = self.lstat(path)
        if st is None:
            return
        yield Entry(path, st)
        if stat.S_ISDIR(st.st_mode):
            yield from self._walk_below(path, 1)

    def _walk_below(self, path: str, depth: int) -> Iterator[Entry]:
        if depth > MAX_DEPTH:
            raise InvalidArgument(f"{path}: directories nested deeper than {MAX_DEPTH} levels")
        for name in self.listdir(path):
            child = f"{path}/{name}" if path else name
            st = self.lstat(child)
            if st is None:
                continue  # removed while we walk
            is_dir = stat.S_ISDIR(st.st_mode)
            if self.excluded(child):
                if is_dir and self.rules.may_include_below(child):
                    yield Entry(child, st)
                    yield from self._walk_below(child, depth + 1)
                continue
            yield Entry(child, st)
            if is_dir:
                yield from self._walk_below(child, depth + 1)

    def glob(self, pattern: str) -> list[str]:
        """Resolved paths matching a COPY source with wildcards, component by component, sorted."""
        found = [""]
        for part in _components(pattern):
            nxt: list[str] = []
            for base in found:
                if part == "..":
                    nxt.append(base.rsplit("/", 1)[0] if "/" in base else "")
                    continue
                if not _has_magic(part):
                    candidates = [part]
                else:
                    st = self.lstat(base)
                    if st is None or not stat.S_ISDIR(st.st_mode):
                        continue
                    candidates = [n for n in self.listdir(base) if fnmatch.fnmatchcase(n, part)]
                for name in candidates:
                    joined = f"{base}/{name}" if base else name
                    resolved = self.resolve(joined)
                    if resolved is not None and not self.excluded(joined):
                        nxt.append(resolved)
                if len(nxt) > MAX_MATCHES:
                    raise InvalidArgument(f"{pattern!r} matches more than {MAX_MATCHES} paths")
            found = nxt
        return sorted(set(found))

    def digest(self, paths: list[str]) -> str:
        """A digest of the names, types, modes and contents under `paths` (the build cache key)."""
        h = hashlib.sha256()
        for path in paths:
            for entry in self.walk(path):
                st = entry.st
                h.update(
                    f"{entry.path}\0{st.st_mode:o}\0{st.st_uid}:{st.st_gid}\0".encode(
                        "utf-8", "surrogateescape"
                    )
                )
                if stat.S_ISLNK(st.st_mode):
                    h.update(os.fsencode(self.readlink(entry.path)))
                elif stat.S_ISREG(st.st_mode):
                    fd = self.open_file(entry.path)
                    with os.fdopen(fd, "rb") as fh:
                        while chunk := fh.read(1 << 20):
                            h.update(chunk)
                h.update(b"\0")
        return "sha256:" + h.hexdigest()


def _components(path: str) -> list[str]:
    return [p for p in path.split("/") if p and p != "."]


def _has_magic(part: str) -> bool:
    return any(c in part for c in "*?[")


def _escape_error(path: str, exc: OSError) -> InvalidArgument | RuntimeFailure:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return InvalidArgument(f"{path!r} changed into a symlink while reading it; refusing to follow it")
    if exc.errno == errno.ENOENT:
        return InvalidArgument(f"{path!r}: no such file or directory in the build context")
    return RuntimeFailure(f"cannot read {path!r} from the build context: {exc.strerror}")


def check_source(path: str, line: int | None) -> None:
    """Refuse a COPY/ADD source that names something outside the context (`..` escapes)."""
    depth = 0
    for part in path.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                raise DockerfileError(f"{path}: forbidden path outside the build context", line=line)
        elif part and part != ".":
            depth += 1


def open_context(root: Path) -> SourceTree:
    """A context directory with its .dockerignore rules."""
    tree = SourceTree(root)
    try:
        text = tree.read_text(".dockerignore", limit=MAX_DOCKERIGNORE)
        tree.rules = ignore.matcher(text)
    except BaseException:
        tree.close()
        raise
    return tree


def read_dockerfile(tree: SourceTree, name: str) -> str:
    """The Dockerfile's text from inside the context (ignore rules do not apply to it, as in Docker)."""
    check_source(name, None)
    candidates = [name] + (["dockerfile"] if name == "Dockerfile" else [])
    for candidate in candidates:
        text = tree.read_text(candidate, limit=MAX_DOCKERFILE)
        if text is not None:
            return text
    raise InvalidArgument(f"cannot locate the Dockerfile {name!r} in the build context")


def unpack_tar(stream: BinaryIO, dest: Path, *, reserve: Reserve | None = None) -> None:
    """Unpack a tar build context (plain or gzip/bzip2/xz) into the empty directory `dest`.

    `reserve` is the free space the unpacking must leave (DiskFull when it would not).

    Names are cleaned as Docker does (`../foo` and `/bar` land at `foo` and `bar`), then the stream
    goes through the engine's hostile-tar extractor, which refuses devices and writes through symlinks.
    """

    def rewrite(out: tarfile.TarFile) -> None:
        try:
            src = tarfile.open(fileobj=stream, mode="r|*", encoding="utf-8", errors="surrogateescape")
        except tarfile.TarError as exc:
            raise InvalidArgument(f"the build context is not a tar archive: {exc}") from None
        while True:
            try:
                member = src.next()
            except tarfile.TarError as exc:
                raise InvalidArgument(f"invalid build context archive: {exc}") from None
            if member is None:
                break
            src.members.clear()  # type: ignore[attr-defined]  # else it keeps every header (A11)
            name = _clean(member.name)
            if not name or name.rsplit("/", 1)[-1].startswith(".wh."):
                continue  # the root itself, or a whiteout: not context content
            member.name = name
            if member.islnk():
                member.linkname = _clean(member.linkname)
            try:
                out.addfile(member, src.extractfile(member) if member.isreg() else None)
            except tarfile.TarError as exc:  # a body cut short: "unexpected end of data"
                raise InvalidArgument(f"invalid build context archive: {exc}") from None

    with layerdiff.TarPipe(rewrite) as piped:
        layer_store.unpack(piped, dest, reserve=reserve)


def _clean(name: str) -> str:
    return posixpath.normpath("/" + name).lstrip("/")
