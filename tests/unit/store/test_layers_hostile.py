"""Hostile layers (SECURITY.md A1–A11): each test proves nothing was written outside the layer."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import threading
import zlib
from pathlib import Path

import pytest
import zstandard

from engine.errors import InvalidArgument, UnsafeArchive
from engine.store.layers import Limits, unpack

from .tarbuild import TarBuilder

SENTINEL = b"original sentinel\n"


class Sandbox:
    """``root/a/layer`` is the layer; ``root/sentinel`` and ``root/a/sentinel`` are host files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dest = root / "a" / "layer"
        self.dest.mkdir(parents=True)
        for path in (root / "sentinel", root / "a" / "sentinel"):
            path.write_bytes(SENTINEL)
        self.before = self.snapshot()
        self.passwd_links = os.stat("/etc/passwd").st_nlink

    def snapshot(self) -> dict[str, tuple[int, int, int]]:
        """Everything outside the layer directory: type/mode, size and mtime of every entry."""
        seen = {}
        for current, dirs, files in os.walk(self.root):
            for name in dirs + files:
                path = Path(current) / name
                if path == self.dest or self.dest in path.parents:
                    continue
                st = path.lstat()
                seen[str(path.relative_to(self.root))] = (st.st_mode, st.st_size, st.st_mtime_ns)
        st = self.root.lstat()
        seen["."] = (st.st_mode, st.st_size, st.st_mtime_ns)
        return seen

    def unpack(self, data: bytes, **limits: int):
        return unpack(io.BytesIO(data), self.dest, limits=Limits(**limits))

    def assert_untouched(self) -> None:
        assert self.snapshot() == self.before
        assert (self.root / "sentinel").read_bytes() == SENTINEL
        assert (self.root / "a" / "sentinel").read_bytes() == SENTINEL
        assert os.stat("/etc/passwd").st_nlink == self.passwd_links


@pytest.fixture
def box(tmp_path):
    return Sandbox(tmp_path)


@pytest.mark.parametrize("name", ["../escaped", "../../sentinel", "ok/../../escaped", "./../escaped"])
def test_unpack_refuses_a_dotdot_entry(box, name):
    with pytest.raises(UnsafeArchive, match=r"\.\."):
        box.unpack(TarBuilder().file(name, b"pwned").bytes())
    box.assert_untouched()


def test_unpack_keeps_absolute_entries_inside_the_layer(box):
    host_path = str(box.root / "sentinel")  # an absolute name aimed at a real host file
    box.unpack(TarBuilder().file("/abs-escape", b"1").file(host_path, b"pwned").bytes())
    box.assert_untouched()
    # Docker's behaviour: the leading "/" is dropped and the entry lands inside the layer.
    assert (box.dest / "abs-escape").read_bytes() == b"1"
    assert (box.dest / host_path.lstrip("/")).read_bytes() == b"pwned"


@pytest.mark.parametrize("target", ["../..", "../../", "RELATIVE_TMP", "ABSOLUTE_TMP", "/"])
def test_unpack_refuses_to_write_through_a_symlinked_directory(box, target):
    target = {"RELATIVE_TMP": "../../", "ABSOLUTE_TMP": str(box.root)}.get(target, target)
    archive = TarBuilder().symlink("evil", target).file("evil/pwned", b"pwned").bytes()
    with pytest.raises(UnsafeArchive, match="evil"):
        box.unpack(archive)
    box.assert_untouched()
    assert not (box.root / "pwned").exists()


def test_unpack_refuses_to_write_through_a_nested_symlink(box):
    archive = TarBuilder().dir("d").symlink("d/up", "../../..").file("d/up/a/sentinel", b"pwned").bytes()
    with pytest.raises(UnsafeArchive):
        box.unpack(archive)
    box.assert_untouched()


def test_a_file_entry_replaces_a_symlink_instead_of_writing_through_it(box):
    archive = TarBuilder().symlink("evil", "../../sentinel").file("evil", b"pwned").bytes()
    box.unpack(archive)
    box.assert_untouched()
    assert not (box.dest / "evil").is_symlink()
    assert (box.dest / "evil").read_bytes() == b"pwned"


def test_unpack_refuses_a_directory_replaced_by_a_symlink_then_written_under(box):
    archive = (
        TarBuilder()
        .dir("d")
        .file("d/inside", b"ok")
        .symlink("d", str(box.root))  # replaces the directory in the same tar
        .file("d/pwned", b"pwned")
        .bytes()
    )
    with pytest.raises(UnsafeArchive, match="d"):
        box.unpack(archive)
    box.assert_untouched()
    assert not (box.root / "pwned").exists()


@pytest.mark.parametrize("target", ["/etc/passwd", "etc/passwd", "../sentinel", "../../sentinel"])
def test_unpack_refuses_a_hardlink_to_outside_the_layer(box, target):
    with pytest.raises(UnsafeArchive):
        box.unpack(TarBuilder().hardlink("link", target).bytes())
    box.assert_untouched()
    assert not (box.dest / "link").exists()


def test_unpack_refuses_a_hardlink_through_a_symlink(box):
    archive = TarBuilder().symlink("evil", "../..").hardlink("link", "evil/sentinel").bytes()
    with pytest.raises(UnsafeArchive):
        box.unpack(archive)
    box.assert_untouched()
    assert not (box.dest / "link").exists()


def test_a_hardlink_to_a_symlink_links_the_symlink_not_its_target(box):
    archive = TarBuilder().symlink("evil", "../../sentinel").hardlink("link", "evil").bytes()
    box.unpack(archive)
    box.assert_untouched()
    assert os.readlink(box.dest / "link") == "../../sentinel"


@pytest.mark.parametrize(
    ("kind", "major", "minor"),
    [(tarfile.CHRTYPE, 1, 3), (tarfile.CHRTYPE, 1, 1), (tarfile.BLKTYPE, 8, 0), (tarfile.BLKTYPE, 0, 0)],
)
def test_unpack_refuses_device_nodes(box, kind, major, minor):
    with pytest.raises(UnsafeArchive, match="device"):
        box.unpack(TarBuilder().device("dev/sda", kind=kind, major=major, minor=minor).bytes())
    box.assert_untouched()
    assert not (box.dest / "dev" / "sda").exists()


def gzip_of_zeros(total: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(1 << 20)
    parts = [compressor.compress(chunk) for _ in range(total // len(chunk))]
    return b"".join(parts) + compressor.flush()


def test_unpack_stops_a_gzip_bomb_early(box):
    # 256 MiB of zeros in about 250 KiB: one big file entry followed by the zeros.
    info = tarfile.TarInfo("bomb")
    info.size = 256 << 20
    header = zlib.compress(info.tobuf(format=tarfile.USTAR_FORMAT), wbits=16 + zlib.MAX_WBITS)
    bomb = header + gzip_of_zeros(256 << 20)
    assert len(bomb) < 1 << 20
    with pytest.raises(UnsafeArchive, match="limit"):
        box.unpack(bomb, max_bytes=8 << 20)
    # Stopped early: no more than the limit reached the disk (not 256 MiB); a header that declares
    # more than the limit is refused before its file is even created.
    written = box.dest / "bomb"
    assert not written.exists() or written.stat().st_size <= 8 << 20
    box.assert_untouched()


def test_unpack_refuses_a_path_deeper_than_the_limit(box):
    deep = "/".join(["d"] * 9) + "/f"
    with pytest.raises(UnsafeArchive, match="deeper"):
        box.unpack(TarBuilder().file(deep, b"x").bytes(), max_depth=8)
    box.assert_untouched()


def test_unpack_refuses_more_entries_than_the_limit(box):
    builder = TarBuilder()
    for index in range(11):
        builder.file(f"f{index}", b"")
    with pytest.raises(UnsafeArchive, match="more than 10 entries"):
        box.unpack(builder.bytes(), max_entries=10)
    box.assert_untouched()


def test_unpack_refuses_a_name_longer_than_the_limit(box):
    with pytest.raises(UnsafeArchive, match="longer"):
        box.unpack(TarBuilder().file("x" * 100 + "/" + "y" * 100, b"").bytes(), max_name=150)
    with pytest.raises(UnsafeArchive, match="longer"):
        box.unpack(TarBuilder().file("z" * 300, b"").bytes())
    box.assert_untouched()


def test_unpack_refuses_sparse_files(box):
    with pytest.raises(UnsafeArchive, match="sparse"):
        box.unpack(TarBuilder().raw_type("sparse", tarfile.GNUTYPE_SPARSE).bytes())
    box.assert_untouched()


@pytest.mark.parametrize("kind", [b"V", b"M", b"Z"])
def test_unpack_refuses_unknown_entry_types(box, kind):
    with pytest.raises(UnsafeArchive, match="unsupported entry type"):
        box.unpack(TarBuilder().raw_type("odd", kind, b"data").bytes())
    box.assert_untouched()


def test_unpack_refuses_a_whiteout_with_children(box):
    with pytest.raises(UnsafeArchive, match="whiteout"):
        box.unpack(TarBuilder().file(".wh.etc/passwd", b"x").bytes())
    box.assert_untouched()


def test_unpack_refuses_a_pax_header_that_claims_a_gigabyte(box):
    info = tarfile.TarInfo("././@PaxHeader")
    info.type, info.size = tarfile.XHDTYPE, 1 << 30
    with pytest.raises(UnsafeArchive, match="too large"):
        box.unpack(info.tobuf(format=tarfile.USTAR_FORMAT) + bytes(4096))
    box.assert_untouched()


def test_unpack_refuses_endlessly_chained_extended_headers(box):
    record = b"20 comment=xxxxxxxx\n"
    info = tarfile.TarInfo("././@PaxHeader")
    info.type, info.size = tarfile.XHDTYPE, len(record)
    block = info.tobuf(format=tarfile.USTAR_FORMAT) + record.ljust(512, b"\0")
    with pytest.raises(UnsafeArchive):
        box.unpack(block * 5000 + TarBuilder().file("f", b"x").bytes())
    box.assert_untouched()


def without_end_blocks(data: bytes) -> bytes:
    """Cut a tar after its last entry (drop the zero end blocks and record padding)."""
    end = len(data.rstrip(b"\0"))
    return data[: (end + 511) // 512 * 512]


def test_unpack_refuses_a_corrupt_header_after_valid_entries(box):
    good = without_end_blocks(TarBuilder().file("a", b"1").bytes())
    with pytest.raises(InvalidArgument, match="invalid tar header"):
        box.unpack(good + b"garbage".ljust(512, b"x") + bytes(1024))
    box.assert_untouched()


def test_unpack_refuses_a_truncated_file(box):
    data = TarBuilder().file("big", b"x" * 5000).bytes()
    with pytest.raises(InvalidArgument, match="truncated"):
        box.unpack(data[:2048])
    box.assert_untouched()


def test_unpack_refuses_a_name_with_a_nul_byte(box):
    info = tarfile.TarInfo("a")
    info.pax_headers = {"path": "ok\x00/../../sentinel"}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        archive.addfile(info, io.BytesIO(b""))
    with pytest.raises(UnsafeArchive):
        box.unpack(buffer.getvalue())
    box.assert_untouched()


def test_unpack_ignores_overlay_xattrs_carried_by_the_archive(box):
    archive = TarBuilder().dir("d", xattrs={"trusted.overlay.redirect": b"/etc"}).bytes()
    box.unpack(archive)
    assert "trusted.overlay.redirect" not in os.listxattr(box.dest / "d")
    box.assert_untouched()


def test_unpack_stops_a_zstd_bomb_too(box):
    info = tarfile.TarInfo("bomb")
    info.size = 256 << 20
    compressor = zstandard.ZstdCompressor(level=3)
    bomb = compressor.compress(info.tobuf(format=tarfile.USTAR_FORMAT) + bytes(256 << 20))
    assert len(bomb) < 1 << 20
    with pytest.raises(UnsafeArchive, match="limit"):
        box.unpack(bomb, max_bytes=8 << 20)
    box.assert_untouched()


def test_a_refused_layer_leaves_no_decoder_thread_running(box):
    with pytest.raises(UnsafeArchive):
        box.unpack(gzip.compress(TarBuilder().file("../x", b"x" * 100_000).bytes() + bytes(50 << 20)))
    # The producer thread reads the stream and writes the tee: it must be joined before we return,
    # or it would keep writing into a blob the caller is about to abort.
    assert not [t for t in threading.enumerate() if t.name == "layer-decode"]
