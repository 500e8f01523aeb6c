"""What a well-formed layer must look like once unpacked: content, metadata, hashes, whiteouts."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import stat
from pathlib import Path

import pytest
import zstandard

from engine.errors import InvalidArgument
from engine.store.blobs import BlobStore
from engine.store.layers import UnpackResult, layer_dir_size, remove_tree, unpack

from .tarbuild import TarBuilder, require_root

EMPTY_LAYER_DIFF_ID = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sample_tar() -> bytes:
    return (
        TarBuilder()
        .dir("etc", mode=0o755)
        .file("etc/hostname", b"box\n")
        .dir("usr/bin", mode=0o755)
        .file("usr/bin/tool", b"\x7fELF" + b"x" * 300_000, mode=0o755)
        .symlink("bin", "usr/bin")
        .hardlink("usr/bin/tool2", "usr/bin/tool")
        .bytes()
    )


def unpack_bytes(data: bytes, dest: Path, **kwargs) -> UnpackResult:
    dest.mkdir(exist_ok=True)
    return unpack(io.BytesIO(data), dest, **kwargs)


def test_unpack_writes_files_symlinks_and_hardlinks(tmp_path):
    result = unpack_bytes(sample_tar(), tmp_path / "layer")
    layer = tmp_path / "layer"
    assert (layer / "etc/hostname").read_bytes() == b"box\n"
    assert os.readlink(layer / "bin") == "usr/bin"
    assert (layer / "usr/bin/tool").stat().st_ino == (layer / "usr/bin/tool2").stat().st_ino
    assert result.size == 4 + 300_004  # bytes of regular-file content, as Docker reports
    assert result.entries == 6


def test_hashes_are_those_of_the_raw_and_uncompressed_bytes(tmp_path):
    tar = sample_tar()
    raw = gzip.compress(tar)
    result = unpack_bytes(raw, tmp_path / "layer")
    assert result.digest == sha(raw)
    assert result.compressed_size == len(raw)
    assert result.diff_id == sha(tar)
    assert result.compression == "gzip"


@pytest.mark.parametrize(
    ("name", "compress"),
    [
        ("tar", lambda data: data),
        ("gzip", gzip.compress),
        ("gzip", lambda data: gzip.compress(data[:5000]) + gzip.compress(data[5000:])),  # multi-member
        ("zstd", lambda data: zstandard.ZstdCompressor().compress(data)),
        (
            "zstd",
            lambda data: (
                zstandard.ZstdCompressor().compress(data[:7000])
                + zstandard.ZstdCompressor().compress(data[7000:])
            ),
        ),
        ("xz", lzma.compress),
        ("bzip2", bz2.compress),
    ],
)
def test_every_compression_gives_the_same_diff_id_and_tree(tmp_path, name, compress):
    tar = sample_tar()
    raw = compress(tar)
    result = unpack_bytes(raw, tmp_path / "layer")
    assert (result.compression, result.diff_id, result.digest) == (name, sha(tar), sha(raw))
    assert (tmp_path / "layer/usr/bin/tool").stat().st_size == 300_004


def test_the_tee_receives_exactly_the_raw_bytes_in_the_same_pass(tmp_path):
    raw = zstandard.ZstdCompressor().compress(sample_tar())
    store = BlobStore(tmp_path / "blobs")
    with store.writer(expected=sha(raw)) as writer:
        result = unpack_bytes(raw, tmp_path / "layer", tee=writer)
        digest, size = writer.commit()
    assert (digest, size) == (result.digest, len(raw))
    assert store.path(digest).read_bytes() == raw


def test_a_stream_is_read_in_chunks_to_its_very_end(tmp_path):
    tar = sample_tar() + bytes(20_480)  # extra zero padding after the end blocks still counts

    class Trickle(io.RawIOBase):
        def __init__(self) -> None:
            self.data = io.BytesIO(gzip.compress(tar))
            self.calls = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            self.calls += 1
            chunk = self.data.read(min(len(buffer), 777))  # short reads, like a socket
            buffer[: len(chunk)] = chunk
            return len(chunk)

    stream = Trickle()
    (tmp_path / "layer").mkdir()
    result = unpack(stream, tmp_path / "layer")
    assert result.diff_id == sha(tar)
    assert stream.data.read() == b""


def test_an_empty_layer_has_the_well_known_diff_id(tmp_path):
    assert unpack_bytes(bytes(1024), tmp_path / "layer").diff_id == EMPTY_LAYER_DIFF_ID
    assert os.listdir(tmp_path / "layer") == []


def test_modes_owners_times_and_setuid_are_kept(tmp_path):
    require_root("chown to arbitrary owners")
    tar = (
        TarBuilder()
        .dir("d", mode=0o1777, uid=7, gid=8, mtime=1_000_000)
        .file("d/suid", b"#!/bin/sh\n", mode=0o4755, uid=1234, gid=5678, mtime=1_500_000_000)
        .file("d/sgid", b"", mode=0o2711, uid=1, gid=2, mtime=1_400_000_000)
        .file("d/private", b"secret", mode=0o600, uid=1000, gid=1000)
        .symlink("d/link", "suid", uid=42, gid=43, mtime=1_300_000_000)
        .fifo("d/pipe", mode=0o620)
        .bytes()
    )
    unpack_bytes(tar, tmp_path / "layer")
    d = tmp_path / "layer" / "d"
    suid = (d / "suid").stat()
    # fchown clears setuid, so mode must be applied after owner: both must survive.
    assert (stat.S_IMODE(suid.st_mode), suid.st_uid, suid.st_gid) == (0o4755, 1234, 5678)
    assert suid.st_mtime_ns == 1_500_000_000 * 10**9
    assert stat.S_IMODE((d / "sgid").stat().st_mode) == 0o2711
    assert stat.S_IMODE((d / "private").stat().st_mode) == 0o600
    link = (d / "link").lstat()
    assert (link.st_uid, link.st_gid, link.st_mtime_ns) == (42, 43, 1_300_000_000 * 10**9)
    assert stat.S_ISFIFO((d / "pipe").lstat().st_mode)
    assert stat.S_IMODE((d / "pipe").lstat().st_mode) == 0o620
    # The directory's mtime is set after its contents were written.
    dstat = d.stat()
    assert (stat.S_IMODE(dstat.st_mode), dstat.st_uid, dstat.st_gid) == (0o1777, 7, 8)
    assert dstat.st_mtime_ns == 1_000_000 * 10**9


def test_xattrs_from_pax_headers_are_kept(tmp_path):
    tar = (
        TarBuilder()
        .file("f", b"x", xattrs={"user.mime": b"text/plain", "user.bin": b"\x00\xff\x01"})
        .dir("d", xattrs={"user.tag": b"dir"})
        .bytes()
    )
    unpack_bytes(tar, tmp_path / "layer")
    layer = tmp_path / "layer"
    assert os.getxattr(layer / "f", "user.mime") == b"text/plain"
    assert os.getxattr(layer / "f", "user.bin") == b"\x00\xff\x01"
    assert os.getxattr(layer / "d", "user.tag") == b"dir"


def test_trusted_xattrs_are_kept(tmp_path):
    require_root("trusted.* xattrs")
    unpack_bytes(TarBuilder().file("f", b"x", xattrs={"trusted.note": b"kept"}).bytes(), tmp_path / "layer")
    assert os.getxattr(tmp_path / "layer" / "f", "trusted.note") == b"kept"


def test_whiteouts_become_overlay_whiteouts(tmp_path):
    require_root("mknod of the 0/0 whiteout device and trusted.overlay.opaque")
    tar = (
        TarBuilder().dir("a").file("a/.wh.gone", b"").dir("b").file("b/.wh..wh..opq", b"").file("b/new", b"n")
    )
    unpack_bytes(tar.bytes(), tmp_path / "layer")
    layer = tmp_path / "layer"
    gone = (layer / "a" / "gone").lstat()
    assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == 0
    assert not (layer / "a" / ".wh.gone").exists()
    assert not (layer / "b" / ".wh..wh..opq").exists()
    assert os.getxattr(layer / "b", "trusted.overlay.opaque") == b"y"
    assert (layer / "b" / "new").read_bytes() == b"n"


def test_aufs_metadata_entries_are_skipped(tmp_path):
    tar = TarBuilder().dir(".wh..wh.plnk").file(".wh..wh.plnk/123", b"x").file("ok", b"1").bytes()
    unpack_bytes(tar, tmp_path / "layer")
    assert os.listdir(tmp_path / "layer") == ["ok"]


def test_later_entries_replace_earlier_ones(tmp_path):
    tar = (
        TarBuilder()
        .file("x", b"file")
        .dir("x")  # file → directory
        .file("x/inner", b"1")
        .dir("y")
        .file("y/inner", b"1")
        .file("y", b"now a file")  # directory (with contents) → file
        .file("z", b"old")
        .file("z", b"new")  # file → file
        .symlink("w", "x")
        .dir("w")  # symlink → real directory, never the symlink's target
        .bytes()
    )
    unpack_bytes(tar, tmp_path / "layer")
    layer = tmp_path / "layer"
    assert (layer / "x" / "inner").read_bytes() == b"1"
    assert (layer / "y").read_bytes() == b"now a file"
    assert (layer / "z").read_bytes() == b"new"
    assert (layer / "w").is_dir() and not (layer / "w").is_symlink()


def test_missing_parent_directories_are_created(tmp_path):
    unpack_bytes(TarBuilder().file("deep/er/file", b"x").bytes(), tmp_path / "layer")
    assert (tmp_path / "layer/deep/er/file").read_bytes() == b"x"
    assert stat.S_IMODE((tmp_path / "layer/deep").stat().st_mode) == 0o755


def test_a_root_entry_sets_the_layer_roots_metadata(tmp_path):
    unpack_bytes(
        TarBuilder().dir("./", mode=0o750, mtime=12345).file("./f", b"x").bytes(), tmp_path / "layer"
    )
    st = (tmp_path / "layer").stat()
    assert (stat.S_IMODE(st.st_mode), st.st_mtime_ns) == (0o750, 12345 * 10**9)


@pytest.mark.parametrize(
    "raw",
    [
        gzip.compress(sample_tar())[:-10],  # truncated gzip
        gzip.compress(bytes(1024)) + b"trailing garbage",
        b"\x28\xb5\x2f\xfd" + b"not zstd at all" * 10,
        lzma.compress(bytes(1024))[:-5],
    ],
    ids=["truncated-gzip", "gzip-trailing-garbage", "corrupt-zstd", "truncated-xz"],
)
def test_corrupt_compressed_data_is_an_invalid_argument(tmp_path, raw):
    with pytest.raises(InvalidArgument, match="corrupt"):
        unpack_bytes(raw, tmp_path / "layer")


def test_not_a_tar_is_an_invalid_argument(tmp_path):
    with pytest.raises(InvalidArgument, match="not a tar"):
        unpack_bytes(b"hello, world" * 100, tmp_path / "layer")


def test_remove_tree_deletes_read_only_dirs_and_devices_without_following_symlinks(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("keep")
    layer = tmp_path / "layer"
    (layer / "ro" / "sub").mkdir(parents=True)
    (layer / "ro" / "sub" / "f").write_text("x")
    os.symlink(outside, layer / "ro" / "to-outside")
    os.symlink(outside / "keep", layer / "file-link")
    os.mkfifo(layer / "pipe")
    if os.geteuid() == 0:
        os.mknod(layer / "whiteout", stat.S_IFCHR, 0)
    os.chmod(layer / "ro" / "sub", 0o555)
    os.chmod(layer / "ro", 0o500)
    remove_tree(layer)
    assert not layer.exists()
    assert (outside / "keep").read_text() == "keep"
    remove_tree(layer)  # missing is fine


def test_remove_tree_copes_with_a_very_deep_tree(tmp_path):
    layer = tmp_path / "layer"
    layer.mkdir()
    fd = os.open(layer, os.O_RDONLY)
    try:
        for _ in range(600):  # deeper than the descriptors remove_tree is willing to hold
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = child
        os.close(os.open("f", os.O_CREAT | os.O_WRONLY, dir_fd=fd))
    finally:
        os.close(fd)
    remove_tree(layer)
    assert not layer.exists()


def test_remove_tree_of_a_symlink_removes_only_the_link(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep").write_text("x")
    os.symlink(target, tmp_path / "link")
    remove_tree(tmp_path / "link")
    assert not (tmp_path / "link").exists()
    assert (target / "keep").exists()


def test_layer_dir_size_counts_content_once_per_inode(tmp_path):
    unpack_bytes(sample_tar(), tmp_path / "layer")
    assert layer_dir_size(tmp_path / "layer") == 4 + 300_004 + len("usr/bin")


def test_deep_trees_and_many_directories_outgrow_the_descriptor_cache_safely(tmp_path):
    deep = "/".join(["d"] * 200)
    builder = TarBuilder().file("src/f", b"shared")
    for index in range(300):  # more directories than the cache holds, revisited out of order
        builder.dir(f"many/{index}", mtime=1_000_000 + index)
    builder.dir(deep, mtime=777).hardlink(f"{deep}/link", "src/f")
    for index in range(0, 300, 7):
        builder.file(f"many/{index}/f", b"%d" % index)
    unpack_bytes(builder.bytes(), tmp_path / "layer")
    layer = tmp_path / "layer"
    assert (layer / deep / "link").stat().st_ino == (layer / "src/f").stat().st_ino
    assert (layer / deep).stat().st_mtime_ns == 777 * 10**9
    assert (layer / "many/7/f").read_bytes() == b"7"
    assert (layer / "many/7").stat().st_mtime_ns == 1_000_007 * 10**9
