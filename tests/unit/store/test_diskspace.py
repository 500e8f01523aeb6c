"""The free-space reserve, zero runs written as holes, and the raw forms of a full disk."""

from __future__ import annotations

import errno
import io
import os
import sqlite3
import tarfile
from pathlib import Path

import pytest

from engine.errors import DiskFull, UnsafeArchive
from engine.store import layers
from engine.store.blobs import BlobStore
from engine.store.diskspace import GiB, Reserve, default_reserve, full_disk_error

MiB = 1 << 20


def tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def test_the_default_reserve_is_a_gibibyte_or_five_percent() -> None:
    assert default_reserve(10 * GiB) == GiB
    assert default_reserve(100 * GiB) == 5 * GiB


def test_a_reserve_larger_than_the_free_space_refuses_the_first_write(tmp_path: Path) -> None:
    reserve = Reserve(tmp_path, 1 << 62)
    with pytest.raises(DiskFull, match=r"not enough disk space under .*: .* free, .* reserved"):
        reserve.written(1)


def test_a_reserve_checks_only_every_few_mebibytes(tmp_path: Path) -> None:
    reserve = Reserve(tmp_path, 0, every=4 * MiB)
    reserve.written(1)  # the first write checks
    reserve._reserve = 1 << 62  # noqa: SLF001 — the disk "fills" after the first check
    reserve.written(MiB)  # not yet due
    with pytest.raises(DiskFull):
        reserve.written(3 * MiB)


def test_zero_runs_are_written_as_holes_with_the_full_size(tmp_path: Path) -> None:
    data = os.urandom(100_000) + bytes(5 * MiB) + b"x" + bytes(3 * MiB)
    (tmp_path / "out").mkdir()
    layers.unpack(io.BytesIO(tar_of({"mixed": data, "zeros": bytes(7 * MiB)})), tmp_path / "out")
    assert (tmp_path / "out" / "mixed").read_bytes() == data
    assert (tmp_path / "out" / "zeros").read_bytes() == bytes(7 * MiB)
    assert allocated(tmp_path / "out" / "zeros") == 0  # a trailing hole: the size came from ftruncate
    assert allocated(tmp_path / "out" / "mixed") < MiB


def test_an_unpack_under_the_reserve_raises_disk_full(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    with pytest.raises(DiskFull):
        layers.unpack(
            io.BytesIO(tar_of({"f": b"data"})), tmp_path / "out", reserve=Reserve(tmp_path, 1 << 62)
        )


def test_a_blob_writer_under_the_reserve_removes_its_temp_file(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs", reserve=Reserve(tmp_path, 1 << 62))
    with pytest.raises(DiskFull):
        store.put_bytes(b"data")
    assert os.listdir(tmp_path / "blobs" / "sha256") == []


def test_enospc_and_a_full_database_are_disk_full(tmp_path: Path) -> None:
    assert isinstance(full_disk_error(OSError(errno.ENOSPC, "No space left on device"), tmp_path), DiskFull)
    try:
        try:
            raise sqlite3.OperationalError("database or disk is full")
        except sqlite3.OperationalError as inner:
            raise RuntimeError("wrapped, as django.db does") from inner
    except RuntimeError as outer:
        assert isinstance(full_disk_error(outer, tmp_path), DiskFull)
    assert full_disk_error(OSError(errno.EACCES, "Permission denied"), tmp_path) is None
    # A vague "disk I/O error" is a full disk only when the disk is nearly full.
    assert full_disk_error(sqlite3.OperationalError("disk I/O error"), tmp_path) is None


def test_a_member_whose_header_declares_more_than_the_cap_is_refused_before_writing(tmp_path: Path) -> None:
    info = tarfile.TarInfo("huge")
    info.size = 2 * MiB
    header = info.tobuf(tarfile.PAX_FORMAT)
    (tmp_path / "out").mkdir()
    with pytest.raises(UnsafeArchive, match="declares 2097152 bytes"):
        layers.unpack(
            io.BytesIO(header + bytes(2 * MiB + 1024)), tmp_path / "out", limits=layers.Limits(max_bytes=MiB)
        )
    assert os.listdir(tmp_path / "out") == []
