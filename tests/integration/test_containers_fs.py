"""The container's filesystem: its own layer, tmpfs, volumes, its /etc files, diff, and in-use conflicts."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.root


def test_data_in_the_container_layer_survives_stop_and_start(berth_cli) -> None:
    script = "cat /keep 2>/dev/null; echo data > /keep"
    berth_cli.ok("create", "--name", "keep", "busybox", "sh", "-c", script)
    assert berth_cli.ok("start", "-a", "keep") == ""
    assert berth_cli.ok("start", "-a", "keep") == "data\n"


def test_tmpfs_is_empty_at_every_start(berth_cli) -> None:
    script = "ls -A /scratch; touch /scratch/left-over"
    berth_cli.ok("create", "--name", "tmp", "--tmpfs", "/scratch", "busybox", "sh", "-c", script)
    assert berth_cli.ok("start", "-a", "tmp") == ""
    assert berth_cli.ok("start", "-a", "tmp") == ""


def test_mount_tmpfs_option_gives_a_tmpfs(berth_cli) -> None:
    out = berth_cli.ok(
        "run", "--rm", "--mount", "type=tmpfs,target=/t", "busybox", "sh", "-c", "grep ' /t ' /proc/mounts"
    )
    assert out.split()[2] == "tmpfs"


def test_named_volume_data_survives_the_container(berth_cli) -> None:
    berth_cli.ok("run", "--rm", "-v", "keepvol:/data", "busybox", "sh", "-c", "echo hi > /data/f")
    assert "keepvol" in berth_cli.ok("volume", "ls", "-q").split()
    assert berth_cli.ok("run", "--rm", "-v", "keepvol:/data", "busybox", "cat", "/data/f") == "hi\n"


def test_anonymous_volume_goes_with_rm_v(berth_cli) -> None:
    berth_cli.ok("create", "--name", "anon", "-v", "/data", "busybox", "true")
    name = berth_cli.inspect("anon")["Mounts"][0]["Name"]
    assert name in berth_cli.ok("volume", "ls", "-q").split()
    berth_cli.ok("rm", "-v", "anon")
    assert name not in berth_cli.ok("volume", "ls", "-q").split()


def test_anonymous_volume_stays_after_rm_without_v(berth_cli) -> None:
    berth_cli.ok("create", "--name", "anon2", "-v", "/data", "busybox", "true")
    name = berth_cli.inspect("anon2")["Mounts"][0]["Name"]
    berth_cli.ok("rm", "anon2")
    assert name in berth_cli.ok("volume", "ls", "-q").split()


def test_host_bind_mount_read_only(berth_cli) -> None:
    source = berth_cli.root.parent / f"{berth_cli.root.name}-bind"
    source.mkdir()
    try:
        (source / "f").write_text("from host\n")
        out = berth_cli(
            "run", "--rm", "-v", f"{source}:/host:ro", "busybox", "sh", "-c", "cat /host/f; touch /host/g"
        )
        assert out.stdout == "from host\n"
        assert out.returncode != 0 and "Read-only file system" in out.stderr
        assert not (source / "g").exists()
    finally:
        (source / "f").unlink()
        source.rmdir()


def test_rmi_of_an_image_used_by_a_container_names_the_container(berth_cli) -> None:
    berth_cli.ok("create", "--name", "holder", "busybox", "true")
    error = berth_cli.fail("rmi", "busybox")
    assert "holder" in error
    image_id = berth_cli.inspect("holder")["Image"]
    assert "holder" in berth_cli.fail("rmi", image_id)


def test_volume_rm_of_a_used_volume_names_the_container(berth_cli) -> None:
    berth_cli.ok("create", "--name", "voluser", "-v", "busyvol:/d", "busybox", "true")
    error = berth_cli.fail("volume", "rm", "busyvol")
    assert "in use" in error and "voluser" in error
    berth_cli.ok("rm", "voluser")
    berth_cli.ok("volume", "rm", "busyvol")


def test_etc_files_are_bind_mounts_from_the_engine_dir(berth_cli) -> None:
    cid = berth_cli.ok("create", "--name", "etc", "-h", "boxname", "busybox", "cat", "/proc/self/mountinfo")
    cid = cid.strip()
    mountinfo = berth_cli.ok("start", "-a", "etc")
    roots = {line.split()[4]: line.split()[3] for line in mountinfo.splitlines()}
    for name in ("hostname", "hosts", "resolv.conf"):
        # The mount's root names the file in the engine's per-container directory.
        assert roots[f"/etc/{name}"].endswith(f"/containers/{cid}/userdata/{name}"), roots.get(f"/etc/{name}")
    assert berth_cli.ok("run", "--rm", "-h", "boxname", "busybox", "cat", "/etc/hostname") == "boxname\n"
    # Nothing was written through the image's rootfs: the container layer does not have them.
    changed = berth_cli.ok("diff", "etc")
    for name in ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf"):
        assert name not in changed


def test_diff_shows_added_changed_and_deleted(berth_cli) -> None:
    script = "touch /added; echo x >> /etc/passwd; rm /bin/ls"
    berth_cli.ok("run", "--name", "dd", "busybox", "sh", "-c", script)
    lines = set(berth_cli.ok("diff", "dd").splitlines())
    assert {"A /added", "C /etc/passwd", "D /bin/ls"} <= lines, lines
    assert "C /etc" in lines


def test_read_only_rootfs_refuses_writes(berth_cli) -> None:
    proc = berth_cli("run", "--rm", "--read-only", "busybox", "touch", "/x")
    assert proc.returncode != 0 and "Read-only file system" in proc.stderr


def test_an_empty_volume_gets_the_images_files_once(berth_cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Docker's copy-up: a new volume mounted where the image has files starts with those files.
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\nRUN mkdir -p /seed/sub && echo hi > /seed/hello && ln -s hello /seed/link "
        "&& chown 65534:65534 /seed/sub\n"
    )
    berth_cli.ok("build", "-q", "-t", "seeded:1", str(tmp_path))
    out = berth_cli.ok(
        "run", "--rm", "-v", "seedvol:/seed", "seeded:1", "sh", "-c", "cat /seed/hello; ls -ln /seed"
    )
    assert out.startswith("hi")
    assert "link -> hello" in out  # copied as a link, not followed
    assert " 65534 " in out  # owners kept
    # Once filled it is the user's: a later container does not copy again over what they changed.
    berth_cli.ok("run", "--rm", "-v", "seedvol:/seed", "seeded:1", "sh", "-c", "rm /seed/hello")
    out = berth_cli.ok("run", "--rm", "-v", "seedvol:/seed", "seeded:1", "ls", "/seed")
    assert "hello" not in out.split()
