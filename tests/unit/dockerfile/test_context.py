"""Reading the build context without ever leaving it (A24)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from engine.dockerfile.context import SourceTree, check_source, open_context, unpack_tar
from engine.errors import DockerfileError, InvalidArgument


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    root = tmp_path / "ctx"
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "dir" / "sub" / "f").write_text("f")
    (root / "a.txt").write_text("a")
    (root / "b.txt").write_text("b")
    os.symlink("/etc/passwd", root / "abs")
    os.symlink("../../etc/shadow", root / "dir" / "up")
    os.symlink("dir/sub", root / "rel")
    os.symlink("/dir", root / "absdir")
    return root


def test_symlinks_resolve_inside_the_root(ctx: Path) -> None:
    with SourceTree(ctx) as tree:
        assert tree.resolve("rel/f") == "dir/sub/f"
        assert tree.resolve("absdir/sub/f") == "dir/sub/f"  # an absolute target starts at the root
        assert tree.resolve("abs") is None  # /etc/passwd of the context, not of the host
        assert tree.resolve("dir/up") is None  # .. stops at the root
        assert tree.resolve("../../etc/passwd") is None


def test_walk_reports_symlinks_as_symlinks(ctx: Path) -> None:
    with SourceTree(ctx) as tree:
        entries = {e.path: e for e in tree.walk("")}
    assert os.path.islink(ctx / "abs") and entries["abs"].st.st_size == len("/etc/passwd")
    assert "dir/sub/f" in entries


def test_open_file_refuses_a_symlink(ctx: Path) -> None:
    with SourceTree(ctx) as tree, pytest.raises(InvalidArgument):
        tree.open_file("abs")


def test_a_fifo_cannot_hang_the_reader(ctx: Path) -> None:
    os.mkfifo(ctx / "fifo")
    with SourceTree(ctx) as tree, pytest.raises(InvalidArgument, match="not a regular file"):
        tree.open_file("fifo")


def test_glob_matches_within_one_directory(ctx: Path) -> None:
    with SourceTree(ctx) as tree:
        assert tree.glob("*.txt") == ["a.txt", "b.txt"]
        assert tree.glob("dir/*/f") == ["dir/sub/f"]


def test_dockerignore_applies_to_glob_and_walk(ctx: Path) -> None:
    (ctx / ".dockerignore").write_text("b.txt\ndir/sub\n")
    with open_context(ctx) as tree:
        assert tree.glob("*.txt") == ["a.txt"]
        assert "dir/sub/f" not in [e.path for e in tree.walk("")]


def test_digest_changes_with_content(ctx: Path) -> None:
    with SourceTree(ctx) as tree:
        before = tree.digest(["dir"])
        (ctx / "dir" / "sub" / "f").write_text("changed")
        assert tree.digest(["dir"]) != before


def test_dotdot_sources_are_refused() -> None:
    check_source("a/../b", 1)
    with pytest.raises(DockerfileError) as info:
        check_source("../outside", 4)
    assert info.value.line == 4


def test_a_tar_context_gets_docker_clean_names(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in ("Dockerfile", "../foo", "/bar", "x/../../baz"):
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"1"))
    buf.seek(0)
    dest = tmp_path / "ctx"
    dest.mkdir()
    unpack_tar(buf, dest)
    assert sorted(os.listdir(dest)) == ["Dockerfile", "bar", "baz", "foo"]
