"""Paths resolved with a directory as `/`, and tar streams in and out of directory descriptors."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from engine.errors import InvalidArgument, UnsafeArchive
from engine.runtime.runc import update_argv
from engine.store import fsops, inroot, tarstream


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """A root with links that would escape to `outside` if the host resolved them."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "etc").mkdir(parents=True)
    outside.mkdir()
    (root / "etc" / "secret").write_text("inside\n")
    (outside / "secret").write_text("outside\n")
    os.symlink(f"{outside}/secret", root / "abs")
    os.symlink(f"../../../../../../..{outside}/secret", root / "rel")
    os.symlink(str(outside), root / "dirlink")
    os.makedirs(root / str(outside).lstrip("/"))
    (root / str(outside).lstrip("/") / "secret").write_text("shadow\n")
    return root, outside


def _read(root: Path, path: str) -> str:
    root_fd = fsops.open_dir(root)
    try:
        fd = inroot.open_in_root(root_fd, path, os.O_RDONLY)
    finally:
        os.close(root_fd)
    with os.fdopen(fd) as handle:
        return handle.read()


def test_links_resolve_inside_the_root(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    for path in ("/abs", "/rel", "/dirlink/secret", "/../../etc/../abs"):
        assert _read(root, path) == "shadow\n", path  # the root's copy, never the host's


def test_resolved_path_names_the_target_inside_the_root(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    root_fd = fsops.open_dir(root)
    try:
        assert inroot.resolved_path(root_fd, "/rel") == f"{outside}/secret"
        assert inroot.resolved_path(root_fd, "/a/../../etc/secret") == "/etc/secret"
    finally:
        os.close(root_fd)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/etc/passwd", ("/etc", "passwd", False)),
        ("/etc/", ("/etc", ".", True)),
        ("/etc/.", ("/etc/.", ".", True)),
        ("/", ("/", ".", True)),
    ],
)
def test_split_keeps_what_a_trailing_slash_asserts(path: str, expected: tuple[str, str, bool]) -> None:
    assert inroot.split(path) == expected


def test_archive_base_follows_docker() -> None:
    assert [inroot.archive_base(p) for p in ("/a/b", "/a/b/", "/a/b/.", "/")] == ["b", "b", ".", "."]


def test_tar_round_trip_keeps_links_and_refuses_writes_through_them(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_text("data")
    os.link(src / "d" / "f", src / "d" / "hard")
    os.symlink("/etc", src / "d" / "link")
    dst.mkdir()
    parent = fsops.open_dir(src)
    dst_fd = fsops.open_dir(dst)
    try:
        data = b"".join(tarstream.write_tree(parent, "d", "copy"))
        tarstream.extract_into(io.BytesIO(data), dst_fd, max_bytes=1 << 20)
        assert (dst / "copy" / "f").read_text() == "data"
        assert os.stat(dst / "copy" / "hard").st_ino == os.stat(dst / "copy" / "f").st_ino
        assert os.readlink(dst / "copy" / "link") == "/etc"
        evil = io.BytesIO()
        with tarfile.open(fileobj=evil, mode="w") as tar:
            info = tarfile.TarInfo("copy/link/planted")
            tar.addfile(info, io.BytesIO(b""))
        with pytest.raises(UnsafeArchive):
            tarstream.extract_into(io.BytesIO(evil.getvalue()), dst_fd, max_bytes=1 << 20)
        with pytest.raises(InvalidArgument, match="cannot overwrite directory"):
            replace = io.BytesIO()
            with tarfile.open(fileobj=replace, mode="w") as tar:
                tar.addfile(tarfile.TarInfo("copy"), io.BytesIO(b""))
            tarstream.extract_into(
                io.BytesIO(replace.getvalue()), dst_fd, max_bytes=1 << 20, no_overwrite_dir_non_dir=True
            )
    finally:
        os.close(parent)
        os.close(dst_fd)


def test_rebase_renames_only_the_top_entry() -> None:
    rename = tarstream.rebase(".", "new")
    assert [rename(n) for n in (".", "./a", "./a/b")] == ["new", "new/a", "new/a/b"]
    rename = tarstream.rebase("dir", "other")
    assert [rename(n) for n in ("dir", "dir/x", "dirx")] == ["other", "other/x", "dirx"]


def test_runc_update_argv_lists_only_the_given_limits() -> None:
    argv = update_argv(Path("/r"), "c1", memory=64 << 20, pids_limit=-1)
    assert argv == ["--root", "/r", "update", "--memory", str(64 << 20), "--pids-limit", "-1", "c1"]
