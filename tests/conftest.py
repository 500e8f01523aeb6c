"""Shared fixtures: a private engine root per test, the root requirement, and the leak guard."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

IN_CI = bool(os.environ.get("CI"))
# Importing dashboard.asgi in tests must not start the server's background monitor thread.
os.environ.setdefault("BERTH_MONITOR", "0")


def require(condition: bool, reason: str) -> None:
    """Skip loudly on a laptop; fail under CI, where a suite that skips itself cannot fail."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required for this test under CI: {reason}")
    pytest.skip(f"SKIPPED (not CI): {reason}")


def require_root() -> None:
    require(os.geteuid() == 0, "must run as root")
    for tool in ("runc", "conmon"):
        require(shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin") is not None, f"{tool} is not installed")


@pytest.fixture
def berth_dirs() -> Iterator[tuple[Path, Path]]:
    """Short, private BERTH_ROOT and BERTH_RUN (unix socket paths must stay under 108 bytes)."""
    root = Path(tempfile.mkdtemp(prefix="bt-", dir="/tmp"))
    run = Path(tempfile.mkdtemp(prefix="bt-", dir="/run" if os.access("/run", os.W_OK) else "/tmp"))
    yield root, run
    unmount_under(root)
    unmount_under(run)
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(run, ignore_errors=True)


@pytest.fixture
def engine(berth_dirs: tuple[Path, Path], settings, db) -> Path:  # type: ignore[no-untyped-def]
    """An empty engine: its own root and run directories and an empty database."""
    root, run = berth_dirs
    settings.BERTH_ROOT = root
    settings.BERTH_RUN = run
    return root


@pytest.fixture
def engine_tx(berth_dirs: tuple[Path, Path], settings, transactional_db) -> Path:  # type: ignore[no-untyped-def]
    """Like `engine`, but committed: conmon's exit command, a separate process, sees the rows.

    The test database is a file (dashboard/settings.py sets TEST NAME for SQLite), and no transaction
    stays open across the test, so the exit command does not wait on our write lock.
    """
    root, run = berth_dirs
    settings.BERTH_ROOT = root
    settings.BERTH_RUN = run
    return root


def unmount_under(path: Path) -> None:
    prefix = str(path) + "/"
    with open("/proc/self/mountinfo") as f:
        targets = [line.split()[4] for line in f if line.split()[4].startswith(prefix)]
    for target in sorted(targets, key=len, reverse=True):
        subprocess.run(["umount", "-l", target], check=False, capture_output=True)


def _mounts() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {
            line.split()[4]
            for line in f
            if "overlay" in line or "/bt-" in line or "berth" in line or "tmpfs" in line.split(" - ")[-1][:6]
        }


def _links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=False).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line}


def _netns() -> set[str]:
    names: set[str] = set()
    for directory in (Path("/run/netns"), Path("/var/run/netns")):
        if directory.is_dir():
            names |= {p.name for p in directory.iterdir()}
    return names


def _conmons() -> set[int]:
    out = subprocess.run(["pgrep", "-x", "conmon"], capture_output=True, text=True, check=False).stdout
    return {int(p) for p in out.split()}


def _nft() -> str:
    if not shutil.which("nft", path="/usr/sbin:/usr/bin:/sbin"):
        return ""
    return subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True, check=False).stdout


def snapshot() -> dict[str, object]:
    return {"mounts": _mounts(), "links": _links(), "netns": _netns(), "conmon": _conmons(), "nft": _nft()}


@pytest.fixture
def leak_guard() -> Iterator[None]:
    """Fail the test if it left a mount, link, netns, conmon process or nft rule behind."""
    if os.geteuid() != 0:
        yield
        return
    before = snapshot()
    yield
    after = snapshot()
    leaks = []
    for key in ("mounts", "links", "netns", "conmon"):
        new = after[key] - before[key]  # type: ignore[operator]
        if new:
            leaks.append(f"{key}: {sorted(new)}")
    if after["nft"] != before["nft"]:
        leaks.append("nft ruleset changed")
    if leaks:
        pytest.fail("test leaked: " + "; ".join(leaks))
