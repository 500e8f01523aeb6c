"""`berth stop a b c` and the other multi-container lifecycle commands act on all containers at once
(services/bulk.each), as docker does: each name is printed as it finishes, each failure is one error
line naming its container, and the exit status is 1 if any failed. Real runc + conmon, one CLI process
per command as a user types it.
"""

from __future__ import annotations

import time
from datetime import datetime

import pytest

pytestmark = pytest.mark.root

GRACE = 3


def test_stop_of_three_containers_that_ignore_sigterm_takes_one_grace_period(berth_cli) -> None:
    names = ["deaf1", "deaf2", "deaf3"]
    for name in names:
        # sleep as PID 1 has no handler for SIGTERM, so each stop waits out its whole grace period.
        berth_cli.ok("run", "-d", "--network", "none", "--name", name, "busybox", "sleep", "1000")
    started = time.monotonic()
    proc = berth_cli("stop", "-t", str(GRACE), *names)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.splitlines()) == names
    # One after another takes at least 3 × 3 s; together, one grace period plus the CLI's start-up
    # (about 4 s here; under 3 × GRACE on any load). The lower bound proves the grace period was
    # really waited out (the stops were not trivial).
    assert GRACE <= elapsed < 3 * GRACE, (elapsed, proc.stderr)
    # The three SIGKILLs follow one shared grace period (3 s apart if sequential), whatever the load.
    kills = [
        datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
        for line in proc.stderr.splitlines()
        if "resorting to SIGKILL" in line
    ]
    assert len(kills) == 3 and (max(kills) - min(kills)).total_seconds() < 1, proc.stderr
    for name in names:
        state = berth_cli.inspect(name)["State"]
        assert (state["Status"], state["ExitCode"]) == ("exited", 137), name


def test_a_missing_name_among_good_ones_is_one_error_line_and_exit_1(berth_cli) -> None:
    berth_cli.ok("run", "-d", "--network", "none", "--name", "good", "busybox", "sleep", "1000")
    proc = berth_cli("stop", "-t", "0", "good", "nosuch")
    assert proc.returncode == 1, proc.stderr
    # The good one is stopped and printed as typed; the missing one does not hold it back.
    assert proc.stdout == "good\n"
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "nosuch" in errors[0], proc.stderr
    assert berth_cli.inspect("good")["State"]["Status"] == "exited"


def test_rm_force_of_several_removes_them_all_and_prints_each(berth_cli) -> None:
    names = ["gone1", "gone2"]
    for name in names:
        berth_cli.ok("run", "-d", "--network", "none", "--name", name, "busybox", "sleep", "1000")
    assert sorted(berth_cli.ok("rm", "-f", *names).splitlines()) == names
    assert berth_cli.ok("ps", "-aq") == ""
