"""An overlay upper dir as a layer tar: whiteouts, opaque dirs, links, owners, xattrs."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from engine.errors import InvalidArgument
from engine.store import layers
from engine.store.layerdiff import TarPipe, write_upper
from tests.conftest import require_root


def tar_of(upper: Path, **kwargs: object) -> tuple[list[tarfile.TarInfo], bytes]:
    with TarPipe(lambda tar: write_upper(tar, upper, **kwargs)) as stream:  # type: ignore[arg-type]
        data = stream.read()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getmembers(), data


@pytest.fixture
def upper(tmp_path: Path) -> Path:
    require_root()
    root = tmp_path / "upper"
    (root / "etc").mkdir(parents=True)
    os.mknod(root / "etc" / "group", stat.S_IFCHR | 0o000, 0)  # overlay's whiteout for a deleted file
    (root / "opaque").mkdir()
    os.setxattr(root / "opaque", "trusted.overlay.opaque", b"y")
    (root / "opaque" / "new").write_text("n")
    (root / "file").write_text("data")
    os.chown(root / "file", 1234, 5678)
    os.chmod(root / "file", 0o640)
    os.setxattr(root / "file", "user.note", b"hello")
    os.setxattr(root / "file", "trusted.overlay.origin", b"\x00junk")
    os.link(root / "file", root / "hard")
    os.symlink("/etc/passwd", root / "link")
    (root / "etc" / "hosts").write_text("")
    return root


def test_whiteouts_and_opaque_dirs_become_oci_entries(upper: Path) -> None:
    members, _ = tar_of(upper)
    names = [m.name for m in members]
    assert "etc/.wh.group" in names and "etc/group" not in names
    assert names.index("opaque") < names.index("opaque/.wh..wh..opq") < names.index("opaque/new")
    assert "trusted.overlay.opaque" not in str([m.pax_headers for m in members])


def test_files_keep_owner_mode_xattrs_and_links(upper: Path) -> None:
    members = {m.name: m for m in tar_of(upper)[0]}
    file = members["file"]
    assert (file.uid, file.gid, file.mode, file.size) == (1234, 5678, 0o640, 4)
    assert file.pax_headers["SCHILY.xattr.user.note"] == "hello"
    assert not any("trusted.overlay" in key for key in file.pax_headers)  # overlay's own xattrs never leak
    assert members["hard"].islnk() and members["hard"].linkname == "file"
    assert members["link"].issym() and members["link"].linkname == "/etc/passwd"


def test_a_skip_callback_drops_mount_placeholders(upper: Path) -> None:
    names = [m.name for m in tar_of(upper, skip=lambda rel, st: rel == "etc/hosts")[0]]
    assert "etc/hosts" not in names and "etc" in names


def test_the_same_tree_gives_the_same_bytes(upper: Path) -> None:
    assert tar_of(upper)[1] == tar_of(upper)[1]


def test_the_diff_round_trips_through_the_layer_extractor(upper: Path, tmp_path: Path) -> None:
    _, data = tar_of(upper)
    dest = tmp_path / "layer"
    dest.mkdir()
    layers.unpack(io.BytesIO(data), dest)
    st = os.lstat(dest / "etc" / "group")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(dest / "opaque", "trusted.overlay.opaque") == b"y"
    assert os.stat(dest / "file").st_ino == os.stat(dest / "hard").st_ino


def test_a_redirect_xattr_is_refused(upper: Path) -> None:
    (upper / "moved").mkdir()
    os.setxattr(upper / "moved", "trusted.overlay.redirect", b"/old")
    with pytest.raises(InvalidArgument, match="redirect"):
        tar_of(upper)


def test_a_failing_writer_fails_the_reader_and_raises_its_error() -> None:
    def write(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo("a")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
        raise InvalidArgument("writer broke")

    with pytest.raises(InvalidArgument, match="writer broke"):
        with TarPipe(write) as stream:
            data = stream.read()
    assert data.endswith(b"\xff" * 512)  # a reader sees a bad header, never a clean end
