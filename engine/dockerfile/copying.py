"""COPY and ADD as tar entries: where each source lands in the image, with which owner and mode.

Sources are read through a SourceTree (the context or another stage's root filesystem) and never
followed out of it. Destinations are resolved inside the current image's merged root filesystem (also
a SourceTree), so `COPY f /bin/` lands in `/usr/bin` when `/bin` is a symlink, as it does in Docker,
and every existing directory on the way is written with the metadata it already has (a new layer must
not turn `/tmp` from 1777 into 0755).
"""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile
from dataclasses import dataclass

from engine.dockerfile.context import SourceTree
from engine.errors import DockerfileError
from engine.store import layerdiff

_DIR_MODE = 0o755
_ARCHIVE_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")


@dataclass(frozen=True)
class Owner:
    uid: int | None  # None keeps the source's owner
    gid: int | None


@dataclass(frozen=True)
class Target:
    """Where one source goes: `path` in the layer, and whether the source's contents go below it."""

    source: str
    path: str  # relative to the image root, symlink-free
    into: bool  # a directory source: its contents are copied below `path`


def parse_chmod(value: str | None, line: int) -> int | None:
    if value is None:
        return None
    if not value or len(value) > 4 or any(c not in "01234567" for c in value):
        raise DockerfileError(f"invalid --chmod={value}: use an octal mode such as 0755", line=line)
    return int(value, 8)


def plan(
    sources: list[str],
    tree: SourceTree,
    dest: str,
    view: SourceTree,
    *,
    line: int,
    as_dir: frozenset[str] | set[str] = frozenset(),
) -> tuple[list[Target], list[str]]:
    """Decide the target of each (resolved) source; also return the parent directories to write.

    `dest` is absolute (WORKDIR already applied). Sources in `as_dir` (archives ADD extracts) land
    like directories. Raise DockerfileError as Docker does: several sources need a directory
    destination ending in `/`.
    """
    wants_dir = dest.endswith("/") or dest.endswith("/.") or dest in (".", "/")
    if len(sources) > 1 and not wants_dir:
        raise DockerfileError(
            "when using COPY with more than one source file, the destination must be a directory and end with a /",
            line=line,
        )
    existing, missing = view.resolve_partial(posixpath.normpath(dest))
    resolved = "/".join(p for p in (existing, *missing) if p)
    dest_is_dir = wants_dir or (not missing and _is_dir(view, existing))
    targets = []
    for source in sources:
        st = tree.lstat(source)
        if st is None:
            raise DockerfileError(f"{source}: no such file or directory", line=line)
        if stat.S_ISDIR(st.st_mode) or source in as_dir:
            targets.append(Target(source, resolved, True))
        elif dest_is_dir:
            name = source.rsplit("/", 1)[-1]
            targets.append(Target(source, f"{resolved}/{name}" if resolved else name, False))
        else:
            targets.append(Target(source, resolved, False))
    parents: set[str] = set()
    for target in targets:
        parts = target.path.split("/") if target.path else []
        parents.update("/".join(parts[:n]) for n in range(1, len(parts)))
    return targets, sorted(parents)


def _is_dir(view: SourceTree, path: str) -> bool:
    st = view.lstat(path)
    return st is not None and stat.S_ISDIR(st.st_mode)


def write_parents(tar: tarfile.TarFile, parents: list[str], view: SourceTree, owner: Owner) -> None:
    """Directory entries for each parent: the image's own metadata if it exists, else a new 0755."""
    for path in parents:
        st = view.lstat(path)
        if st is not None and stat.S_ISDIR(st.st_mode):
            info = layerdiff.tarinfo(path, st)
        else:
            info = tarfile.TarInfo(path)
            info.type, info.mode = tarfile.DIRTYPE, _DIR_MODE
            info.uid, info.gid = owner.uid or 0, owner.gid or 0
        tar.addfile(info)


def write_target(
    tar: tarfile.TarFile, tree: SourceTree, target: Target, owner: Owner, chmod: int | None, view: SourceTree
) -> None:
    """Write one source at its target: a file, a symlink (as a symlink), or a directory's contents."""
    first = True
    for entry in tree.walk(target.source):
        rel = entry.path[len(target.source) :].lstrip("/") if target.source else entry.path
        arc = "/".join(p for p in (target.path, rel) if p)
        if first and target.into:
            first = False
            if not arc:
                continue  # the image root itself
            existing = view.lstat(arc)
            if existing is not None and stat.S_ISDIR(existing.st_mode):
                tar.addfile(layerdiff.tarinfo(arc, existing))  # keep the image's directory as it is
                continue
            if not target.source:  # the context root's own mode (often 0700) is not the user's intent
                write_parents(tar, [arc], view, owner)
                continue
        first = False
        _write_entry(tar, tree, entry.path, entry.st, arc, owner, chmod)


def _write_entry(
    tar: tarfile.TarFile,
    tree: SourceTree,
    path: str,
    st: os.stat_result,
    arc: str,
    owner: Owner,
    chmod: int | None,
) -> None:
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode)):
        return  # FIFOs, sockets and devices are not copied
    is_link = stat.S_ISLNK(st.st_mode)
    info = layerdiff.tarinfo(
        arc,
        st,
        linkname=tree.readlink(path) if is_link else "",
        uid=owner.uid,
        gid=owner.gid,
        mode=None if chmod is None or is_link else chmod,
    )
    if not stat.S_ISREG(st.st_mode):
        tar.addfile(info)
        return
    fd = tree.open_file(path)
    with os.fdopen(fd, "rb") as fh:
        if os.fstat(fh.fileno()).st_size != info.size:
            info.size = os.fstat(fh.fileno()).st_size  # changed since the walk: take what is there now
        tar.addfile(info, fh)


def is_archive(tree: SourceTree, path: str) -> bool:
    """ADD extracts local tar archives (plain or compressed); anything else is copied as it is."""
    st = tree.lstat(path)
    if st is None or not stat.S_ISREG(st.st_mode) or st.st_size < 4:
        return False
    fd = tree.open_file(path)
    with os.fdopen(fd, "rb") as fh:
        head = fh.read(512)
    if any(head.startswith(magic) for magic in _ARCHIVE_MAGIC):
        return True
    return len(head) == 512 and head[257:262] == b"ustar"


def is_url(source: str) -> bool:
    lowered = source.lower()
    return "://" in lowered or lowered.startswith(("git@", "github.com/"))
