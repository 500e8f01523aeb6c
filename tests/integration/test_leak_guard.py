"""The leak guard itself: it must see a mount of ours, and only ours."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.conftest import TMP_PREFIX, require_root, snapshot


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
