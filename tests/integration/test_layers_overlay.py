"""Unpacked layers through a real overlayfs mount: whiteouts, opaque directories, long stacks."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from engine.store.layers import remove_tree, unpack
from engine.store.overlay import is_mounted, mount_overlay, option_limit, unmount


def require_root() -> None:
    if os.geteuid() == 0:
        return
    message = "NEEDS ROOT — overlay mounts and whiteout devices were not tested"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def layer_tar(*entries: tuple[str, bytes | None]) -> bytes:
    """Entries are (name, data); data None makes a directory."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_600_000_000
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                archive.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def unpack_into(path: Path, data: bytes) -> Path:
    path.mkdir(parents=True)
    unpack(io.BytesIO(data), path)
    return path


@pytest.fixture
def workdir(tmp_path):
    require_root()
    yield tmp_path
    # Safety net only: each test unmounts in its own finally.
    for target in tmp_path.glob("**/merged"):
        unmount(target)


def test_whiteouts_and_opaque_directories_hide_lower_files_through_overlayfs(workdir):
    lower = unpack_into(
        workdir / "l0",
        layer_tar(("a", None), ("a/x", b"x"), ("a/y", b"y"), ("b", None), ("b/z", b"z")),
    )
    upper_layer = unpack_into(
        workdir / "l1",
        layer_tar(("a", None), ("a/.wh.x", b""), ("b", None), ("b/.wh..wh..opq", b""), ("b/new", b"new")),
    )
    upper, work, merged = workdir / "upper", workdir / "work", workdir / "merged"
    for path in (upper, work, merged):
        path.mkdir()
    mount_overlay([upper_layer, lower], upper=upper, work=work, target=merged)
    try:
        assert is_mounted(merged)
        assert not (merged / "a" / "x").exists()  # whited out by .wh.x
        assert (merged / "a" / "y").read_bytes() == b"y"  # its sibling stays
        assert not (merged / "b" / "z").exists()  # hidden by the opaque marker
        assert (merged / "b" / "new").read_bytes() == b"new"
        assert sorted(os.listdir(merged / "b")) == ["new"]
        # No whiteout file names ever reach the container's view.
        assert not any(name.startswith(".wh.") for _, _, files in os.walk(merged) for name in files)
    finally:
        unmount(merged)
    assert not is_mounted(merged)
    remove_tree(upper_layer)  # whiteout devices and opaque dirs are removable
    assert not upper_layer.exists()


def test_a_stack_too_long_for_one_page_of_options_still_mounts(workdir):
    long_name = "layer-" + "f" * 90
    lowers = []
    for index in range(120):
        lowers.append(
            unpack_into(
                workdir / "layers" / f"{index:03d}-{long_name}", layer_tar((f"f{index}", b"%d" % index))
            )
        )
    assert sum(len(str(p)) + 1 for p in lowers) > option_limit()  # absolute paths cannot fit
    upper, work, merged = workdir / "upper", workdir / "work", workdir / "merged"
    for path in (upper, work, merged):
        path.mkdir()
    cwd = os.getcwd()
    mount_overlay(list(reversed(lowers)), upper=upper, work=work, target=merged)
    try:
        assert os.getcwd() == cwd  # the chdir happened in a helper thread with its own fs_struct
        assert (merged / "f0").read_bytes() == b"0"
        assert (merged / "f119").read_bytes() == b"119"
        assert len(os.listdir(merged)) == 120
        assert not list(work.parent.glob(".ovl-*"))  # the short-link directory is gone
    finally:
        unmount(merged)


def test_unmount_detaches_a_busy_mount_and_ignores_a_missing_one(workdir):
    lower = unpack_into(workdir / "l0", layer_tar(("f", b"data")))
    upper, work, merged = workdir / "upper", workdir / "work", workdir / "merged"
    for path in (upper, work, merged):
        path.mkdir()
    mount_overlay([lower], upper=upper, work=work, target=merged)
    handle = None
    try:
        handle = open(merged / "f", "rb")  # an open file makes a plain umount EBUSY
        unmount(merged)
        assert not is_mounted(merged)
    finally:
        if handle is not None:
            handle.close()
        unmount(merged)
    unmount(merged)  # not mounted any more: fine
    unmount(workdir / "does-not-exist")
