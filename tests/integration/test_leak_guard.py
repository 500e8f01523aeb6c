"""The leak guard itself: it must see a mount of ours, and only ours."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.conftest import NET_PREFIX, REPO, TMP_PREFIX, require_root, snapshot


def _mount_tmpfs(target: Path) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "none", str(target)], check=True)


def test_the_guard_sees_a_mount_under_one_of_our_roots_and_ignores_others() -> None:
    require_root()
    ours = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir="/tmp"))
    theirs = Path(tempfile.mkdtemp(prefix="someone-else-", dir="/tmp"))
    try:
        before = snapshot()
        _mount_tmpfs(ours)
        _mount_tmpfs(theirs)
        new = snapshot()["mounts"] - before["mounts"]  # type: ignore[operator]
        # A leak of ours fails the test; another run's mounts on the same machine must not.
        assert str(ours) in new
        assert str(theirs) not in new
    finally:
        for target in (ours, theirs):
            subprocess.run(["umount", str(target)], check=False)
            shutil.rmtree(target, ignore_errors=True)


def _net_objects(prefix: str) -> tuple[str, list[list[str]], list[list[str]]]:
    """Make a netns, a veth pair and an nft table named with `prefix`; return them and their undo."""
    netns = f"{prefix}n"
    make = [
        ["ip", "netns", "add", netns],
        ["ip", "link", "add", f"{prefix}a", "type", "veth", "peer", "name", f"{prefix}b"],
        ["nft", "add", "table", "inet", prefix],
        ["nft", "add", "chain", "inet", prefix, "input", "{ type filter hook input priority 0; }"],
    ]
    undo = [
        ["nft", "delete", "table", "inet", prefix],
        ["ip", "link", "delete", f"{prefix}a"],
        ["ip", "netns", "delete", netns],
    ]
    return netns, make, undo


def test_the_guard_ignores_network_objects_that_are_not_ours_and_sees_ours() -> None:
    # Docker, Podman, a real Berth or another test run make netns, veths and nft tables on the same
    # host: the suite must hold beside them, and still see the same kinds of objects of its own.
    require_root()
    tag = secrets.token_hex(3)
    theirs_prefix, ours_prefix = f"fgn{tag}", f"{NET_PREFIX}{tag}"
    _, make_theirs, undo_theirs = _net_objects(theirs_prefix)
    ours_netns, make_ours, undo_ours = _net_objects(ours_prefix)
    try:
        before = snapshot()
        for argv in make_theirs:
            subprocess.run(argv, check=True, capture_output=True)
        assert snapshot() == before, "a foreign netns, veth pair or nft table was counted"
        for argv in make_ours:
            subprocess.run(argv, check=True, capture_output=True)
        after = snapshot()
        assert after["links"] - before["links"] == {f"{ours_prefix}a", f"{ours_prefix}b"}  # type: ignore[operator]
        assert after["netns"] - before["netns"] == {ours_netns}  # type: ignore[operator]
        assert after["nft"] != before["nft"] and f"table inet {ours_prefix}" in str(after["nft"])
        assert theirs_prefix not in str(after)
    finally:
        for argv in (*undo_ours, *undo_theirs):
            subprocess.run(argv, check=False, capture_output=True)


_PROBE = """
import subprocess


def test_probe(leak_guard, engine):
    # What an engine leaves when it forgets a container: its rootfs mount and its runc state.
    merged = engine / "containers" / "probe" / "merged"
    merged.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "none", str(merged)], check=True)
    from django.conf import settings

    (settings.BERTH_RUN / "runc" / "probe").mkdir(parents=True)
"""


def test_a_leak_in_the_engines_own_directories_still_fails_the_guard(tmp_path: Path) -> None:
    # `berth_dirs` unmounts and deletes the engine's directories before the guard looks; what it
    # finds there must be reported, not silently cleaned away.
    require_root()
    probe = tmp_path / "test_probe_leak.py"
    probe.write_text(_PROBE)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "tests.conftest",
            "-c",
            str(REPO / "pytest.ini"),
            str(probe),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "test leaked: engine: " in proc.stdout, proc.stdout[-3000:]
    assert "/containers/probe/merged" in proc.stdout and "runc container probe" in proc.stdout
