"""`cp` between a container and the host, with Docker's rules for paths (docker/cli cp.go, moby
pkg/archive/copy.go): a trailing `/` asserts a directory, `SRC/.` copies a directory's contents,
a missing DEST takes the source's content under its own name, an existing directory DEST receives
the source under the source's name.

The container side goes through services/files.py (paths resolved inside its root). The host side
is the caller's own filesystem: DEST may be reached through the caller's symlinks, but what the
container sends is extracted beneath DEST's directory without following any link it contains.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import BinaryIO

from engine.errors import InvalidArgument, NotFound
from engine.services import files
from engine.store import inroot, tarstream

HOST_LIMIT = 1 << 40  # what one copy out of a container may write on the host


@dataclass(frozen=True)
class Target:
    """Where an archive is extracted and how its top entry is renamed (moby's PrepareArchiveCopy)."""

    directory: str
    rename_from: str | None
    rename_to: str | None


def asserts_directory(path: str) -> bool:
    return path.endswith("/") or path.endswith("/.")


def split_dir_entry(path: str) -> tuple[str, str]:
    """moby's SplitPathDirEntry: ("/a", "b") for "/a/b" and "/a/b/", ("/a/b", ".") for "/a/b/."."""
    trailing_dot = path.endswith("/.") or path == "."
    cleaned = os.path.normpath(path)
    if trailing_dot and cleaned != "/":
        cleaned += "/."
    elif trailing_dot:
        cleaned = "/."
    return os.path.dirname(cleaned) or ".", os.path.basename(cleaned) or "/"


def prepare(
    *,
    src_is_dir: bool,
    src_base: str,
    dst_path: str,
    dst_exists: bool,
    dst_is_dir: bool,
    what: str,
) -> Target:
    """Decide where the source's archive goes (pure; ``what`` names DEST in messages)."""
    dst_dir, dst_base = split_dir_entry(dst_path)
    if dst_exists and dst_is_dir:
        return Target(dst_path, None, None)
    if dst_exists and src_is_dir:
        raise InvalidArgument(f"cannot copy a directory to a file: {what}")
    if dst_exists or src_is_dir:
        return Target(dst_dir, src_base, dst_base)
    if asserts_directory(dst_path):
        raise InvalidArgument(f"destination directory {what} does not exist")
    return Target(dst_dir, src_base, dst_base)


def copy_from_container(
    ref: str,
    src: str,
    dest: str,
    *,
    follow_link: bool = False,
    keep_owner: bool = False,
    out: BinaryIO | None = None,
) -> None:
    """`cp CONTAINER:SRC DEST` (DEST "-" with ``out``: write the tar there unchanged)."""
    original = src
    info = files.stat(ref, src)
    if follow_link and info.is_symlink:
        src = info.link_target
        info = files.stat(ref, src)
    if asserts_directory(src) and not info.is_dir:
        raise InvalidArgument(f"{ref}:{src}: not a directory")
    _, stream = files.get_archive(ref, src)
    try:
        if dest == "-":
            assert out is not None
            for chunk in stream:
                out.write(chunk)
            return
        dst_path = dest
        try:
            dst_st: os.stat_result | None = os.stat(dst_path)
        except FileNotFoundError:
            dst_st = None
        if dst_st is not None and not (stat.S_ISDIR(dst_st.st_mode) or stat.S_ISREG(dst_st.st_mode)):
            raise InvalidArgument(f"destination {dest} must be a directory or a regular file")
        target = prepare(
            src_is_dir=info.is_dir,
            src_base=inroot.archive_base(src),
            dst_path=dst_path,
            dst_exists=dst_st is not None,
            dst_is_dir=dst_st is not None and stat.S_ISDIR(dst_st.st_mode),
            what=dest,
        )
        wanted = inroot.archive_base(original)
        if target.rename_from is None and wanted != inroot.archive_base(src):
            # Following a link copies its target under the link's name (docker cp -L).
            target = Target(target.directory, inroot.archive_base(src), wanted)
        try:
            dir_fd = os.open(target.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"destination directory {target.directory} does not exist") from None
        try:
            tarstream.extract_into(
                files.iter_reader(stream),
                dir_fd,
                max_bytes=HOST_LIMIT,
                owner=None if keep_owner else (os.getuid(), os.getgid()),
                rename=_rename(target),
            )
        finally:
            os.close(dir_fd)
    finally:
        stream.close()


def copy_to_container(
    ref: str,
    src: str,
    dest: str,
    *,
    follow_link: bool = False,
    keep_owner: bool = False,
    stdin: BinaryIO | None = None,
) -> None:
    """`cp SRC CONTAINER:DEST` (SRC "-" with ``stdin``: a tar extracted into the directory DEST)."""
    dst_path = dest if dest.startswith("/") else "/" + dest
    try:
        dst = files.stat(ref, dst_path)
        if dst.is_symlink:
            dst_path = dst.link_target
            dst = files.stat(ref, dst_path)
    except files.PathNotFound:
        dst = None
    if dst is not None and not (dst.is_dir or stat.S_ISREG(dst.mode)):
        raise InvalidArgument(f'destination "{ref}:{dest}" must be a directory or a regular file')
    if src == "-":
        if dst is None or not dst.is_dir:
            raise InvalidArgument(f'destination "{ref}:{dest}" must be a directory')
        assert stdin is not None
        files.put_archive(ref, dst_path, stdin, copy_uid_gid=keep_owner)
        return
    host = src
    if follow_link and os.path.islink(src.rstrip("/") or "/"):
        host = os.path.realpath(src)
    try:
        # A trailing / or /. asks for the directory itself, through a link if it is one (as Docker).
        src_st = os.stat(host) if host != src or asserts_directory(src) else os.lstat(src)
    except FileNotFoundError:
        raise NotFound(f"could not find the file {src} on the host") from None
    except NotADirectoryError:
        raise InvalidArgument(f"{src}: not a directory") from None
    if asserts_directory(src) and not stat.S_ISDIR(src_st.st_mode):
        raise InvalidArgument(f"{src}: not a directory")
    src_base = inroot.archive_base(src)
    target = prepare(
        src_is_dir=stat.S_ISDIR(src_st.st_mode),
        src_base=src_base,
        dst_path=dst_path,
        dst_exists=dst is not None,
        dst_is_dir=dst is not None and dst.is_dir,
        what=f"{ref}:{dest}",
    )
    arcname = target.rename_to if target.rename_to is not None else src_base
    parent, name = _host_entry(host, src)
    parent_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        chunks = tarstream.write_tree(parent_fd, name, arcname)
        try:
            files.put_archive(
                ref,
                target.directory,
                files.iter_reader(chunks),
                copy_uid_gid=keep_owner,
                no_overwrite_dir_non_dir=True,
            )
        finally:
            chunks.close()  # type: ignore[attr-defined]
    finally:
        os.close(parent_fd)


def _host_entry(host: str, original: str) -> tuple[str, str]:
    """The (directory, name) of the host source; "." names a directory through a trailing `/` or `/.`."""
    if host != original:
        return os.path.dirname(host) or "/", os.path.basename(host) or "."
    if asserts_directory(original) or original.rstrip("/") in ("", "."):
        return original, "."
    cleaned = os.path.normpath(original)
    return os.path.dirname(cleaned) or ".", os.path.basename(cleaned)


def _rename(target: Target):  # type: ignore[no-untyped-def]
    if target.rename_from is None or target.rename_to is None or target.rename_from == target.rename_to:
        return None
    return tarstream.rebase(target.rename_from, target.rename_to)
