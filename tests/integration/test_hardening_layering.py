"""Issue 10, the house kept in order: a cgroup the engine cannot remove is reported, not ignored.

Teardown used to wrap the cgroup removal in `except OSError`, which never fired (the runtime module
raises RuntimeFailure and answers "still busy" with False), so a leaked cgroup went unreported.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.models import Event
from engine.runtime import cgroups
from engine.services import bundle
from tests.conftest import require_root
from tests.polling import wait_until


@pytest.fixture
def busy_cgroup() -> Iterator[str]:
    """A container ID whose `berth/<id>` group in the pids hierarchy holds a live process."""
    require_root()
    hierarchy = cgroups.ROOT / "pids"
    if not hierarchy.is_dir():
        pytest.skip("needs a cgroup v1 pids hierarchy (this host's mode: " + cgroups.detect_mode() + ")")
    container_id = "leak" + secrets.token_hex(8)
    parent = hierarchy / cgroups.PARENT
    made_parent = not parent.exists()
    group = parent / container_id
    group.mkdir(parents=True)
    sleeper = subprocess.Popen(["sleep", "300"])
    try:
        (group / "cgroup.procs").write_text(str(sleeper.pid))
        yield container_id
    finally:
        sleeper.kill()
        sleeper.wait()
        wait_until(lambda: not (group / "cgroup.procs").read_text().strip(), what="the group to empty")
        _rmdir(group)
        if made_parent:
            _rmdir(parent)


def _rmdir(path: Path) -> None:
    try:
        os.rmdir(path)
    except OSError as exc:
        # Another test's container may use the parent meanwhile; anything else is a real failure.
        if exc.errno not in (errno.ENOENT, errno.EBUSY, errno.ENOTEMPTY):
            raise


def test_teardown_reports_a_cgroup_it_cannot_remove(
    engine: Path, busy_cgroup: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="engine.services.bundle"):
        bundle.teardown(busy_cgroup)
    # The group is still there (it has a process) and both the log and the event log say so.
    assert any(d.name == busy_cgroup for d in cgroups.group_dirs(busy_cgroup))
    assert [r.getMessage() for r in caplog.records] == [
        f"container {busy_cgroup[:12]}: cgroup left behind: it still has processes"
    ]
    event = Event.objects.get(object_id=busy_cgroup, action="cleanup")
    assert event.result == "error"
    assert event.message == f"cgroup /berth/{busy_cgroup} left behind: it still has processes"


def test_teardown_of_a_removable_cgroup_reports_nothing(
    engine: Path, caplog: pytest.LogCaptureFixture
) -> None:
    require_root()
    container_id = "leak" + secrets.token_hex(8)
    with caplog.at_level(logging.WARNING, logger="engine.services.bundle"):
        bundle.teardown(container_id)
    assert not caplog.records
    assert not Event.objects.filter(object_id=container_id).exists()
    assert not cgroups.group_dirs(container_id)
