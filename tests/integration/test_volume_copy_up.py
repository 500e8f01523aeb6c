"""Copy-up of image files into an empty volume never follows a link out of the image (A20)."""

from __future__ import annotations

import os
from pathlib import Path

from engine.services.bundle import copy_tree_into


def _rootfs(tmp_path: Path) -> Path:
    rootfs = tmp_path / "rootfs"
    (rootfs / "data").mkdir(parents=True)
    (rootfs / "data" / "file").write_text("image content")
    return rootfs


def test_a_mount_point_that_is_a_symlink_in_the_image_is_not_copied(tmp_path: Path) -> None:
    rootfs = _rootfs(tmp_path)
    (rootfs / "evil").symlink_to("/etc")
    target = tmp_path / "volume"
    target.mkdir()
    assert copy_tree_into(rootfs, "/evil", target) is False
    assert list(target.iterdir()) == []  # nothing of the host's /etc came in


def test_links_are_copied_as_links_and_a_fifo_does_not_block(tmp_path: Path) -> None:
    rootfs = _rootfs(tmp_path)
    (rootfs / "data" / "passwd").symlink_to("/etc/passwd")
    os.mkfifo(rootfs / "data" / "pipe")
    target = tmp_path / "volume"
    target.mkdir()
    assert copy_tree_into(rootfs, "/data", target) is True
    assert (target / "file").read_text() == "image content"
    assert os.readlink(target / "passwd") == "/etc/passwd"  # still a link, not the host's file
    assert not (target / "pipe").exists()


def test_a_volume_with_content_is_left_alone(tmp_path: Path) -> None:
    rootfs = _rootfs(tmp_path)
    target = tmp_path / "volume"
    target.mkdir()
    (target / "mine").write_text("user data")
    assert copy_tree_into(rootfs, "/data", target) is False
    assert sorted(p.name for p in target.iterdir()) == ["mine"]
