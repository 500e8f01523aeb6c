"""Issue 10 item 2: volume copy-up never writes outside the volume, whatever a co-tenant swaps.

The copy (store/fdcopy.py) runs while another container that mounts the same volume may be
changing it. The deterministic tests put the co-tenant's move at the worst moment through the
walk's test-only hook; the last test races a real second container against a real first start.
Each one checks a canary directory on the host: no file appeared in it and its file kept its bytes.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from engine.errors import Conflict, InvalidArgument
from engine.services.bundle import copy_tree_into
from engine.store import fdcopy, fsops
from tests.polling import wait_until

VICTIM = b"host data, not the image's\n"


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    """A host directory the copy must never touch, holding one file it must never overwrite."""
    directory = tmp_path / "canary"
    directory.mkdir()
    (directory / "victim").write_bytes(VICTIM)
    return directory


def _untouched(canary: Path) -> bool:
    return (
        sorted(p.name for p in canary.iterdir()) == ["victim"] and (canary / "victim").read_bytes() == VICTIM
    )


def _image(tmp_path: Path) -> tuple[Path, Path]:
    """A rootfs with /seed/{top, sub/{a, victim, deep/x}} and an empty volume directory."""
    rootfs = tmp_path / "rootfs"
    (rootfs / "seed" / "sub" / "deep").mkdir(parents=True)
    (rootfs / "seed" / "top").write_text("top")
    (rootfs / "seed" / "sub" / "a").write_text("image a")
    (rootfs / "seed" / "sub" / "victim").write_text("image bytes that must not reach the host")
    (rootfs / "seed" / "sub" / "deep" / "x").write_text("image x")
    volume = tmp_path / "volume"
    volume.mkdir()
    return rootfs, volume


def test_a_directory_swapped_for_a_symlink_after_mkdir_is_refused_not_followed(
    tmp_path: Path, canary: Path
) -> None:
    rootfs, volume = _image(tmp_path)

    def swap(parent_fd: int, name: str, rel: str) -> None:
        # The co-tenant's move: between our mkdir and our open, the new directory becomes a link.
        if rel == "sub":
            os.rmdir(name, dir_fd=parent_fd)
            os.symlink(str(canary), name, dir_fd=parent_fd)

    with pytest.raises(Conflict) as refused:
        fdcopy.copy_into(rootfs, ["seed"], volume, hooks=fdcopy.CopyHooks(after_mkdir=swap))
    message = refused.value.message
    assert "\n" not in message and "'sub'" in message and "symbolic link" in message, message
    assert _untouched(canary)
    assert os.readlink(volume / "sub") == str(canary)  # the co-tenant's link is left as it made it


def test_a_symlink_planted_in_a_new_directory_does_not_redirect_a_file(tmp_path: Path, canary: Path) -> None:
    rootfs, volume = _image(tmp_path)

    def plant(parent_fd: int, name: str, rel: str) -> None:
        if rel == "sub":
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=parent_fd)
            try:
                os.symlink(str(canary / "victim"), "victim", dir_fd=fd)
            finally:
                os.close(fd)

    # The image's sub/victim must not be written through the planted link (O_EXCL | O_NOFOLLOW).
    with pytest.raises(Conflict, match="'sub/victim'"):
        fdcopy.copy_into(rootfs, ["seed"], volume, hooks=fdcopy.CopyHooks(after_mkdir=plant))
    assert _untouched(canary)


def test_a_directory_moved_away_while_it_is_filled_keeps_every_write_in_the_volume(
    tmp_path: Path, canary: Path
) -> None:
    rootfs, volume = _image(tmp_path)

    def move(parent_fd: int, name: str, rel: str) -> None:
        # We already hold sub's descriptor: moving it and leaving a link in its place must not
        # send the rest of sub's files (deep/x, victim) to the link's target.
        if rel == "sub/deep":
            os.rename(volume / "sub", volume / "moved")
            os.symlink(str(canary), volume / "sub")

    assert fdcopy.copy_into(rootfs, ["seed"], volume, hooks=fdcopy.CopyHooks(after_mkdir=move)) is True
    assert _untouched(canary)
    assert (volume / "moved" / "deep" / "x").read_text() == "image x"
    assert (volume / "moved" / "victim").read_text().startswith("image bytes")
    assert (volume / "top").read_text() == "top"


def test_a_mount_point_reached_through_a_symlink_in_the_image_is_not_copied(
    tmp_path: Path, canary: Path
) -> None:
    rootfs, volume = _image(tmp_path)
    (rootfs / "evil").symlink_to(canary)
    assert copy_tree_into(rootfs, "/evil", volume) is False
    assert copy_tree_into(rootfs, "/evil/sub", volume) is False
    assert list(volume.iterdir()) == []


def test_the_copy_keeps_owners_modes_times_links_and_skips_special_files(tmp_path: Path) -> None:
    rootfs, volume = _image(tmp_path)
    seed = rootfs / "seed"
    os.chown(seed, 1000, 1001)
    os.chmod(seed, 0o750)
    os.chown(seed / "sub", 65534, 65534)
    os.chmod(seed / "sub", 0o1777)
    tool = seed / "tool"
    tool.write_text("#!/bin/sh\n")
    os.chown(tool, 1234, 5678)
    os.chmod(tool, 0o4755)  # set-uid survives: chown (which clears it) comes before chmod
    os.utime(tool, ns=(1_000_000_000, 1_500_000_000_000_000_000))
    (seed / "link").symlink_to("/etc/passwd")
    os.lchown(seed / "link", 42, 43)
    os.link(seed / "top", seed / "top-again")
    os.mkfifo(seed / "pipe")

    assert copy_tree_into(rootfs, "/seed", volume) is True

    root = volume.stat()
    assert (root.st_uid, root.st_gid, stat.S_IMODE(root.st_mode)) == (1000, 1001, 0o750)
    sub = (volume / "sub").stat()
    assert (sub.st_uid, stat.S_IMODE(sub.st_mode)) == (65534, 0o1777)
    copied = (volume / "tool").stat()
    assert (copied.st_uid, copied.st_gid, stat.S_IMODE(copied.st_mode)) == (1234, 5678, 0o4755)
    assert copied.st_mtime_ns == 1_500_000_000_000_000_000
    assert os.readlink(volume / "link") == "/etc/passwd"  # a link still, never the host's file
    assert os.lstat(volume / "link").st_uid == 42
    assert (volume / "top-again").read_text() == "top"
    assert not os.path.lexists(volume / "pipe")  # reading a fifo would block the start
    assert (volume / "sub" / "deep" / "x").read_text() == "image x"


def test_a_volume_that_is_not_empty_is_left_alone(tmp_path: Path) -> None:
    rootfs, volume = _image(tmp_path)
    (volume / "mine").write_text("user data")
    assert copy_tree_into(rootfs, "/seed", volume) is False
    assert sorted(p.name for p in volume.iterdir()) == ["mine"]


# -- a real co-tenant ---------------------------------------------------------------------------

DIRS, FILES = 40, 50  # 2,000 files: a copy long enough for the other container to act during it

SWAPPER = """
i=0
while :; do
  for d in /vol/d/s*; do
    if [ -d "$d" ] && [ ! -L "$d" ]; then
      mv "$d" "/vol/moved$i" 2>/dev/null && ln -s {canary} "$d" 2>/dev/null && touch /vol/.swapped
      i=$((i+1))
    fi
  done
done
"""


def test_a_co_tenant_swapping_directories_during_the_first_start_cannot_reach_the_host(
    berth_cli, tmp_path: Path, canary: Path
) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Dockerfile").write_text(
        "FROM busybox\n"
        f"RUN for d in $(seq 1 {DIRS}); do mkdir -p /seed/d/s$d; "
        f"for f in $(seq 1 {FILES}); do echo $d-$f > /seed/d/s$d/victim$f; done; done\n"
    )
    berth_cli.ok("build", "-q", "-t", "manyfiles:1", str(tmp_path / "ctx"), timeout=300)
    # B mounts the volume where busybox has nothing, so its own start copies nothing into it and
    # the volume is still empty for A; B then swaps every directory of A's copy it sees appear.
    berth_cli.ok("volume", "create", "shared")
    berth_cli.ok(
        "run", "-d", "--name", "swapper", "-v", "shared:/vol", "busybox", "sh", "-c",
        SWAPPER.format(canary=canary),
    )  # fmt: skip
    wait_until(
        lambda: berth_cli.inspect("swapper")["State"]["Running"], timeout=30, what="the swapper to run"
    )
    proc = berth_cli("run", "--name", "victim", "-v", "shared:/seed", "manyfiles:1", "true", timeout=120)
    # Either the copy went through (every write inside the volume) or it was refused in one line.
    if proc.returncode != 0:
        errors = [line for line in proc.stderr.splitlines() if line.startswith("Error: ")]
        assert len(errors) == 1 and "copy-up" in errors[0], proc.stderr
    assert _untouched(canary)
    berth_cli.ok("rm", "-f", "swapper", "victim")


def test_nocopy_leaves_a_new_volume_empty_and_copy_up_fills_it_otherwise(berth_cli) -> None:  # type: ignore[no-untyped-def]
    # busybox has /var/spool and /var/www: a volume mounted on /var gets them unless nocopy is asked.
    berth_cli.ok("run", "--rm", "-v", "plain:/var", "busybox", "true")
    berth_cli.ok("run", "--rm", "-v", "skipped:/var:nocopy", "busybox", "true")
    berth_cli.ok(
        "run", "--rm", "--mount", "type=volume,source=skipped2,target=/var,volume-nocopy", "busybox", "true"
    )

    def listing(volume: str) -> list[str]:
        return berth_cli.ok("run", "--rm", "-v", f"{volume}:/look", "busybox", "ls", "-A", "/look").split()

    assert "spool" in listing("plain")
    assert listing("skipped") == []
    assert listing("skipped2") == []


def test_an_image_directory_deeper_than_the_limit_is_refused_in_one_line(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    deep = rootfs / "seed"
    deep.mkdir(parents=True)
    fd = os.open(deep, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(fdcopy.MAX_DEPTH + 5):  # by descriptor: the path would pass PATH_MAX
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
    finally:
        os.close(fd)
    volume = tmp_path / "volume"
    volume.mkdir()
    with pytest.raises(InvalidArgument, match=f"deeper than {fdcopy.MAX_DEPTH} levels"):
        copy_tree_into(rootfs, "/seed", volume)


def test_the_shared_no_follow_walk_names_a_symlink_and_a_file_apart(tmp_path: Path, canary: Path) -> None:
    # services/volumes.py's browser and the copy use this one walk (store/fsops.open_beneath).
    (tmp_path / "top" / "real").mkdir(parents=True)
    (tmp_path / "top" / "link").symlink_to(canary)
    (tmp_path / "top" / "file").write_text("x")
    root = fsops.open_dir(tmp_path / "top")
    try:
        for name, code in (("link", errno.ELOOP), ("file", errno.ENOTDIR), ("gone", errno.ENOENT)):
            with pytest.raises(OSError) as blocked:
                fsops.open_beneath(root, [name, "below"])
            assert blocked.value.errno == code and blocked.value.filename == name
        os.close(fsops.open_beneath(root, ["real"]))
    finally:
        os.close(root)
