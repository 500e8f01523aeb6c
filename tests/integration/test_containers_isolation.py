"""Isolation and limits in a default container: memory, pids, CPU, users, paths, /proc, capabilities, fds."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from engine.runtime import cgroups, spec
from tests.polling import wait_until

pytestmark = pytest.mark.root


def _group_file(cid: str, controller: str, name: str) -> Path:
    mode = cgroups.detect_mode()
    if mode == cgroups.V2:
        return cgroups.ROOT / cgroups.PARENT / cid / name
    for directory in cgroups.group_dirs(cid):
        if (directory / name).exists() and controller in directory.parent.parent.name:
            return directory / name
    raise AssertionError(f"no {name} for {cid}")


def test_memory_limit_leads_to_an_oom_kill_reported_as_such(berth_cli) -> None:
    hog = 'x=$(head -c 200m /dev/zero | tr "\\0" a); echo survived'
    proc = berth_cli("run", "--name", "hog", "-m", "16m", "--memory-swap", "16m", "busybox", "sh", "-c", hog)
    assert proc.returncode == 137, (proc.returncode, proc.stdout, proc.stderr)
    assert "survived" not in proc.stdout
    state = berth_cli.inspect("hog")["State"]
    assert (state["OOMKilled"], state["ExitCode"]) == (True, 137)


def test_a_normal_exit_is_not_oom_killed(berth_cli) -> None:
    berth_cli.ok("run", "--name", "fine", "-m", "16m", "busybox", "true")
    assert berth_cli.inspect("fine")["State"]["OOMKilled"] is False


def test_pids_limit_contains_a_fork_bomb(berth_cli) -> None:
    bomb = "bomb() { bomb | bomb & }; bomb 2>/dev/null; sleep 1000"
    cid = berth_cli.ok("run", "-d", "--pids-limit", "20", "busybox", "sh", "-c", bomb).strip()
    assert _group_file(cid, "pids", "pids.max").read_text().strip() == "20"
    # The bomb has reached the limit once the kernel has refused it a fork.
    events = _group_file(cid, "pids", "pids.events")
    wait_until(lambda: int(events.read_text().split()[1]) > 0, timeout=30, what="a fork refused at pids.max")
    assert int(_group_file(cid, "pids", "pids.current").read_text()) <= 20
    started = time.monotonic()
    berth_cli.ok("rm", "-f", cid)
    assert time.monotonic() - started < 30


def test_default_pids_limit_is_set(berth_cli) -> None:
    cid = berth_cli.ok("run", "-d", "busybox", "sleep", "1000").strip()
    assert _group_file(cid, "pids", "pids.max").read_text().strip() == str(spec.DEFAULT_PIDS_LIMIT)


def test_cpus_sets_a_quota_that_throttles(berth_cli) -> None:
    cid = berth_cli.ok("run", "-d", "--cpus", "0.5", "busybox", "sh", "-c", "while :; do :; done").strip()
    if cgroups.detect_mode() == cgroups.V2:
        assert _group_file(cid, "cpu", "cpu.max").read_text().split() == ["50000", "100000"]
    else:
        assert _group_file(cid, "cpu", "cpu.cfs_quota_us").read_text().strip() == "50000"
        assert _group_file(cid, "cpu", "cpu.cfs_period_us").read_text().strip() == "100000"
    cpu_stat = _group_file(cid, "cpu", "cpu.stat")

    def throttled() -> int:
        return int(dict(line.split() for line in cpu_stat.read_text().splitlines())["nr_throttled"])

    wait_until(throttled, timeout=30, what="the busy loop to be throttled")


def test_user_name_is_resolved_from_the_images_passwd(berth_cli) -> None:
    assert berth_cli.ok("run", "--rm", "-u", "nobody", "busybox", "id", "-u") == "65534\n"


def test_unknown_user_is_refused(berth_cli) -> None:
    assert "no-such-user" in berth_cli.fail("run", "--rm", "-u", "no-such-user", "busybox", "true")


@pytest.mark.parametrize("workdir", ["/proc/self", "/proc", "relative/dir", "/a/../b"])
def test_workdir_under_proc_or_unclean_is_refused(berth_cli, workdir: str) -> None:
    error = berth_cli.fail("run", "--rm", "-w", workdir, "busybox", "true")
    # Refused for its working directory, not for any other reason.
    assert "working directory" in error and workdir in error, error
    assert berth_cli.ok("ps", "-aq") == ""


@pytest.mark.parametrize(
    "option", [("-v", "vol:/proc/x"), ("--tmpfs", "/sys/x"), ("--mount", "type=tmpfs,target=/dev/shm2")]
)
def test_mount_destination_under_proc_sys_or_dev_is_refused(berth_cli, option: tuple[str, str]) -> None:
    error = berth_cli.fail("run", "--rm", *option, "busybox", "true")
    assert "/proc" in error or "/sys" in error or "/dev" in error
    assert berth_cli.ok("ps", "-aq") == ""
    assert berth_cli.ok("volume", "ls", "-q") == ""


def test_sensitive_proc_paths_are_masked(berth_cli) -> None:
    present = [p for p in spec.MASKED_PATHS if p.startswith("/proc/") and Path(p).exists()]
    assert "/proc/keys" in present  # at least one to look at on any kernel
    # A masked file is /dev/null bound over it (a character device), a masked directory an empty one.
    script = 'for p in "$@"; do if [ -c $p ]; then echo ok; elif [ -z "$(ls -A $p)" ]; then echo ok; else echo "open $p"; fi; done'
    out = berth_cli.ok("run", "--rm", "busybox", "sh", "-c", script, "sh", *present)
    assert out.split() == ["ok"] * len(present), out


def test_proc_sys_and_sysrq_trigger_are_read_only(berth_cli) -> None:
    proc = berth_cli("run", "--rm", "busybox", "sh", "-c", "echo 1 > /proc/sys/kernel/core_pattern")
    assert proc.returncode != 0 and "Read-only file system" in proc.stderr
    proc = berth_cli("run", "--rm", "busybox", "sh", "-c", "echo h > /proc/sysrq-trigger")
    assert proc.returncode != 0


def test_mount_inside_the_container_fails(berth_cli) -> None:
    proc = berth_cli("run", "--rm", "busybox", "mount", "-t", "tmpfs", "x", "/mnt")
    assert proc.returncode != 0


def test_capabilities_are_podmans_eleven(berth_cli) -> None:
    out = berth_cli.ok("run", "--rm", "busybox", "grep", "CapEff", "/proc/self/status")
    expected = sum(1 << spec.ALL_CAPS.index(cap) for cap in spec.DEFAULT_CAPS)
    assert int(out.split()[1], 16) == expected
    assert len(spec.DEFAULT_CAPS) == 11


def test_cap_drop_removes_a_capability(berth_cli) -> None:
    out = berth_cli.ok("run", "--rm", "--cap-drop", "CHOWN", "busybox", "grep", "CapEff", "/proc/self/status")
    assert not int(out.split()[1], 16) & 1  # CAP_CHOWN is bit 0


def test_the_container_sees_only_fds_0_to_2(berth_cli) -> None:
    # PID 1 (the shell, kept by the `; true`) has what the engine handed over; `ls` runs as a child.
    out = berth_cli.ok("run", "--rm", "busybox", "sh", "-c", "ls /proc/1/fd; true")
    assert sorted(out.split()) == ["0", "1", "2"]


def test_no_new_privileges_is_on_by_default(berth_cli) -> None:
    out = berth_cli.ok("run", "--rm", "busybox", "grep", "NoNewPrivs", "/proc/self/status")
    assert out.split()[1] == "1"
