"""Stop, kill, pause, restart policies, races and faults of the container lifecycle (real runc + conmon).

Every command is a separate CLI process, as a user types it: what one process starts another stops,
and nothing is remembered in memory between calls.
"""

from __future__ import annotations

import io
import os
import signal
import tarfile
import time
from pathlib import Path

import pytest

from tests.polling import wait_until

pytestmark = pytest.mark.root


def _state(cli, ref: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    return cli.inspect(ref)["State"]


def _wait_ready(cli, ref: str) -> None:  # type: ignore[no-untyped-def]
    """Wait for the script's `echo ready`, printed once its trap is installed."""
    wait_until(lambda: "ready" in cli.ok("logs", ref), timeout=30, what=f"{ref} to install its trap")


# -- stop ------------------------------------------------------------------------------------------


def test_stop_kills_a_container_that_ignores_sigterm_at_the_timeout(berth_cli) -> None:
    # sleep as PID 1 has no handler for SIGTERM, and the kernel drops it for a namespace's init.
    berth_cli.ok("run", "-d", "--name", "deaf", "busybox", "sleep", "1000")
    started = time.monotonic()
    proc = berth_cli("stop", "-t", "1", "deaf")
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert elapsed >= 1.0
    assert "resorting to SIGKILL" in proc.stderr
    state = _state(berth_cli, "deaf")
    assert (state["Status"], state["ExitCode"]) == ("exited", 137)


def test_stop_with_zero_timeout_is_immediate(berth_cli) -> None:
    berth_cli.ok("run", "-d", "--name", "now", "--stop-timeout", "60", "busybox", "sleep", "1000")
    started = time.monotonic()
    berth_cli.ok("stop", "-t", "0", "now")
    # Far below the 60 s the container asks for; the rest is the CLI's own start-up.
    assert time.monotonic() - started < 10
    assert _state(berth_cli, "now")["ExitCode"] == 137


def test_stop_sends_a_custom_stop_signal(berth_cli) -> None:
    script = 'trap "echo got-usr1; exit 5" USR1; echo ready; while true; do sleep 0.1; done'
    berth_cli.ok("run", "-d", "--name", "trap", "--stop-signal", "USR1", "busybox", "sh", "-c", script)
    _wait_ready(berth_cli, "trap")
    berth_cli.ok("stop", "-t", "20", "trap")
    assert _state(berth_cli, "trap")["ExitCode"] == 5
    assert "got-usr1" in berth_cli.ok("logs", "trap")


def test_stop_honours_the_images_stopsignal(berth_cli) -> None:
    path = berth_cli.root.parent / f"{berth_cli.root.name}-rootfs.tar"
    path.write_bytes(_busybox_rootfs_tar())
    try:
        berth_cli.ok("import", "-c", "STOPSIGNAL SIGUSR2", str(path), "stopsig:1")
    finally:
        path.unlink()
    script = 'trap "exit 12" USR2; echo ready; while true; do sleep 0.1; done'
    berth_cli.ok("run", "-d", "--name", "imgsig", "stopsig:1", "/bin/sh", "-c", script)
    assert berth_cli.inspect("imgsig")["Config"]["StopSignal"] == "SIGUSR2"
    _wait_ready(berth_cli, "imgsig")
    berth_cli.ok("stop", "-t", "20", "imgsig")
    assert _state(berth_cli, "imgsig")["ExitCode"] == 12


def _busybox_rootfs_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("bin", "tmp", "etc"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        tar.add("/bin/busybox", "bin/busybox")
        for applet in ("sh", "sleep", "true"):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
    return buf.getvalue()


def test_stop_of_a_paused_container_works(berth_cli) -> None:
    script = 'trap "exit 0" TERM; echo ready; while true; do sleep 0.1; done'
    berth_cli.ok("run", "-d", "--name", "frozen", "busybox", "sh", "-c", script)
    _wait_ready(berth_cli, "frozen")
    berth_cli.ok("pause", "frozen")
    assert _state(berth_cli, "frozen")["Status"] == "paused"
    berth_cli.ok("stop", "-t", "20", "frozen")
    state = _state(berth_cli, "frozen")
    assert (state["Status"], state["ExitCode"], state["Paused"]) == ("exited", 0, False)


def test_kill_of_a_paused_container_works(berth_cli) -> None:
    berth_cli.ok("run", "-d", "--name", "pk", "busybox", "sleep", "1000")
    berth_cli.ok("pause", "pk")
    assert "paused" in berth_cli.fail("kill", "-s", "TERM", "pk")
    berth_cli.ok("kill", "pk")
    assert _state(berth_cli, "pk")["ExitCode"] == 137


def test_kill_concurrent_with_a_long_stop_acts_at_once(berth_cli) -> None:
    # podman "kill - concurrent stop": stop must not hold the lock while it waits out the timeout.
    berth_cli.ok("run", "-d", "--name", "race", "busybox", "sleep", "1000")
    stopper = berth_cli.popen("stop", "-t", "60", "race", stdout=-1, stderr=-1)
    try:
        time.sleep(2.5)  # the stop signal has been sent and stop is waiting
        started = time.monotonic()
        berth_cli.ok("kill", "race")
        assert time.monotonic() - started < 15
        out, err = stopper.communicate(timeout=20)
    finally:
        if stopper.poll() is None:
            stopper.kill()
            stopper.wait()
    assert stopper.returncode == 0, err
    assert "Traceback" not in err
    state = _state(berth_cli, "race")
    assert (state["Status"], state["ExitCode"]) == ("exited", 137)


def test_a_container_started_by_one_process_is_stopped_by_another(berth_cli) -> None:
    container_id = berth_cli.ok("run", "-d", "busybox", "sleep", "1000").strip()
    assert berth_cli.ok("ps", "-q", "--no-trunc").split() == [container_id]
    berth_cli.ok("stop", "-t", "1", container_id[:12])
    assert berth_cli.ok("ps", "-q").strip() == ""
    assert _state(berth_cli, container_id)["Status"] == "exited"


def test_a_container_killed_from_outside_is_reported_exited(berth_cli) -> None:
    berth_cli.ok("run", "-d", "--name", "victim", "busybox", "sleep", "1000")
    pid = _state(berth_cli, "victim")["Pid"]
    os.kill(pid, signal.SIGKILL)  # the container's init, started by this test's engine
    state = wait_until(
        lambda: (s := _state(berth_cli, "victim"))["Status"] == "exited" and s, timeout=30, what="exit"
    )
    assert state["ExitCode"] == 137
    assert state["Running"] is False and state["Pid"] == 0
    berth_cli.ok("rm", "victim")


def test_rm_force_still_works_after_conmon_was_killed(berth_cli) -> None:
    # podman "rm after killed conmon".
    cid = berth_cli.ok("run", "-d", "busybox", "sleep", "1000").strip()
    conmon_pid = int((berth_cli.run_dir / "containers" / cid / "conmon.pid").read_text())
    assert Path(f"/proc/{conmon_pid}/comm").read_text().strip() == "conmon"
    os.kill(conmon_pid, signal.SIGKILL)
    berth_cli.ok("rm", "-f", cid)
    assert "no such container" in berth_cli.fail("container", "inspect", cid)
    # No process is left: the killed init's zombie (orphaned to PID 1 with conmon gone) is reaped
    # by PID 1, which takes a moment on these hosts.
    wait_until(lambda: not _processes_of(cid), timeout=15, what="the container's processes to go")


def _processes_of(container_id: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if container_id.encode() in Path(f"/proc/{entry}/cgroup").read_bytes():
                    found.append(int(entry))
            except OSError:
                continue
    return found


def test_rm_racing_run_rm_ends_consistent(berth_cli) -> None:
    # podman "rm <-> run --rm race": whichever removes first, the other neither fails loudly nor leaks.
    runner = berth_cli.popen("run", "--rm", "--name", "rr", "busybox", "sleep", "30", stdout=-1, stderr=-1)
    try:
        wait_until(
            lambda: "rr" in berth_cli("ps", "--filter", "name=rr").stdout, timeout=30, what="rr running"
        )
        berth_cli.ok("rm", "-f", "rr")
        out, err = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert "Traceback" not in err
    assert runner.returncode in (137, 0), err
    berth_cli.wait_for_engine_processes()
    assert berth_cli.ok("ps", "-aq") == ""


def test_rm_racing_detached_run_rm_exits(berth_cli) -> None:
    for n in range(3):
        cid = berth_cli.ok("run", "--rm", "-d", "busybox", "sh", "-c", "sleep 0.3").strip()
        time.sleep(0.2 * n)
        proc = berth_cli("rm", "-f", cid)
        # Either rm removed it, or the exit command had already: "no such container", never a crash.
        assert proc.returncode == 0 or "no such container" in proc.stderr, proc.stderr
    berth_cli.wait_for_engine_processes()
    assert berth_cli.ok("ps", "-aq") == ""


def test_rename_and_wait(berth_cli) -> None:
    berth_cli.ok("run", "-d", "--name", "old", "busybox", "sh", "-c", "sleep 1; exit 3")
    berth_cli.ok("rename", "old", "new")
    assert berth_cli.inspect("new")["Name"] == "/new"
    assert "no such container" in berth_cli.fail("container", "inspect", "old")
    assert berth_cli.ok("wait", "new").strip() == "3"


def test_rename_to_a_name_in_use_is_a_conflict(berth_cli) -> None:
    berth_cli.ok("create", "--name", "one", "busybox", "true")
    berth_cli.ok("create", "--name", "two", "busybox", "true")
    assert "already in use" in berth_cli.fail("rename", "one", "two")


def test_restart_restarts_a_running_container(berth_cli) -> None:
    berth_cli.ok("run", "-d", "--name", "rs", "busybox", "sleep", "1000")
    first = _state(berth_cli, "rs")["Pid"]
    berth_cli.ok("restart", "-t", "0", "rs")
    state = _state(berth_cli, "rs")
    assert state["Status"] == "running" and state["Pid"] != first


# -- restart policies ------------------------------------------------------------------------------


def test_on_failure_policy_stops_after_the_maximum_retries(berth_cli) -> None:
    berth_cli.ok("run", "-d", "--name", "flaky", "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 3")

    def settled():  # type: ignore[no-untyped-def]
        data = berth_cli.inspect("flaky")
        return data["State"]["Status"] == "exited" and data["RestartCount"] == 2 and data

    data = wait_until(settled, timeout=60, what="two restarts")
    berth_cli.wait_for_engine_processes()
    data = berth_cli.inspect("flaky")
    assert (data["RestartCount"], data["State"]["Status"], data["State"]["ExitCode"]) == (2, "exited", 3)


def test_always_policy_restarts_after_an_exit(berth_cli) -> None:
    berth_cli.ok("run", "-d", "--name", "phoenix", "--restart", "always", "busybox", "sh", "-c", "sleep 0.3")
    wait_until(lambda: berth_cli.inspect("phoenix")["RestartCount"] >= 1, timeout=60, what="a restart")
    berth_cli.ok("stop", "-t", "1", "phoenix")
    berth_cli.wait_for_engine_processes()
    count = berth_cli.inspect("phoenix")["RestartCount"]
    time.sleep(1.5)
    data = berth_cli.inspect("phoenix")
    # An explicit stop ends it for good: no further restarts.
    assert data["State"]["Status"] == "exited" and data["RestartCount"] == count


@pytest.mark.parametrize("verb", ["stop", "kill"])
def test_explicit_stop_or_kill_never_triggers_the_policy(berth_cli, verb: str) -> None:
    berth_cli.ok("run", "-d", "--name", "stay", "--restart", "always", "busybox", "sleep", "1000")
    berth_cli.ok(verb, *(["-t", "0"] if verb == "stop" else []), "stay")
    berth_cli.wait_for_engine_processes()
    time.sleep(1)
    data = berth_cli.inspect("stay")
    assert (data["State"]["Status"], data["RestartCount"]) == ("exited", 0)


def test_rm_together_with_a_restart_policy_is_rejected(berth_cli) -> None:
    error = berth_cli.fail("run", "--rm", "--restart", "on-failure", "busybox", "true")
    assert "--restart" in error and "--rm" in error
    assert berth_cli.ok("ps", "-aq") == ""
