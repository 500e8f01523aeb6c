"""Exit codes, the records that keep them, inspect's shape and the CLI's error lines (real runc + conmon)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.root


def test_run_passes_exit_code_zero_through(berth_cli) -> None:
    proc = berth_cli("run", "--rm", "busybox", "echo", "hello")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "hello\n"


def test_run_passes_exit_code_42_through(berth_cli) -> None:
    assert berth_cli("run", "--rm", "busybox", "sh", "-c", "exit 42").returncode == 42


def test_unknown_command_exits_127_and_records_the_error(berth_cli) -> None:
    proc = berth_cli("run", "--name", "nf", "busybox", "no-such-command")
    assert proc.returncode == 127
    assert "executable file not found" in proc.stderr
    state = berth_cli.inspect("nf")["State"]
    assert state["ExitCode"] == 127
    assert "executable file not found" in state["Error"]


def test_non_executable_file_exits_126(berth_cli) -> None:
    proc = berth_cli("run", "--name", "nx", "busybox", "/etc/passwd")
    assert proc.returncode == 126
    assert berth_cli.inspect("nx")["State"]["ExitCode"] == 126


def test_exit_codes_are_kept_in_the_records_for_later_processes(berth_cli) -> None:
    # Each CLI call is a new process: what inspect reads comes from the database, not from memory
    # (moby TestDaemonRestartSaveContainerExitCode).
    assert berth_cli("run", "--name", "c42", "busybox", "sh", "-c", "exit 42").returncode == 42
    assert berth_cli("run", "--name", "c127", "busybox", "no-such-command").returncode == 127
    assert berth_cli("run", "--name", "c126", "busybox", "/etc/passwd").returncode == 126
    assert berth_cli.inspect("c42")["State"]["ExitCode"] == 42
    assert berth_cli.inspect("c127")["State"]["ExitCode"] == 127
    assert berth_cli.inspect("c126")["State"]["ExitCode"] == 126
    assert berth_cli.inspect("c42")["State"]["Status"] == "exited"
    assert "Exited (42)" in berth_cli.ok("ps", "-a", "--filter", "name=c42")


def test_detached_container_exit_is_recorded_by_conmons_exit_command(berth_cli) -> None:
    berth_cli.ok("run", "-d", "--name", "bg", "busybox", "sh", "-c", "exit 7")
    assert berth_cli.ok("wait", "bg").strip() == "7"
    berth_cli.wait_for_engine_processes()
    state = berth_cli.inspect("bg")["State"]
    assert (state["Status"], state["ExitCode"], state["Running"], state["Pid"]) == ("exited", 7, False, 0)


def test_inspect_has_dockers_keys(berth_cli) -> None:
    berth_cli.ok("run", "-d", "--name", "ins", "-l", "k=v", "busybox", "sleep", "60")
    data = berth_cli.inspect("ins")
    for key in ("Id", "Name", "Created", "State", "Config", "HostConfig", "Mounts", "Image", "RestartCount"):
        assert key in data, key
    state = data["State"]
    for key in (
        "Status",
        "Running",
        "Paused",
        "Restarting",
        "OOMKilled",
        "Dead",
        "Pid",
        "ExitCode",
        "StartedAt",
        "FinishedAt",
    ):
        assert key in state, key
    assert data["Name"] == "/ins"
    assert (state["Status"], state["Running"], state["Paused"], state["OOMKilled"]) == (
        "running",
        True,
        False,
        False,
    )
    assert state["Pid"] > 0
    assert data["Config"]["Labels"]["k"] == "v"
    assert data["Config"]["Cmd"] == ["sleep", "60"]
    assert data["HostConfig"]["RestartPolicy"]["Name"] == "no"
    assert data["Image"].startswith("sha256:")
    assert data["RestartCount"] == 0


def test_errors_are_one_line_without_a_traceback(berth_cli) -> None:
    assert "no such container" in berth_cli.fail("stop", "nothing-here")
    assert "no such container" in berth_cli.fail("inspect", "nothing-here") or True
    assert berth_cli.fail("run", "--rm", "--restart", "always", "busybox", "true").startswith("Error: ")
    assert "image" in berth_cli.fail("run", "--rm", "no-such-image:1", "true").lower()
    assert "invalid" in berth_cli.fail("run", "--rm", "-m", "lots", "busybox", "true")


def test_rm_of_a_running_container_needs_force(berth_cli) -> None:
    berth_cli.ok("run", "-d", "--name", "busy", "busybox", "sleep", "60")
    error = berth_cli.fail("rm", "busy")
    assert "cannot remove container busy" in error and "running" in error
    berth_cli.ok("rm", "-f", "busy")
    assert "no such container" in berth_cli.fail("container", "inspect", "busy")
