"""Health checks run by the engine's monitor process, through the CLI, with no web server running.

Each container creates /tmp/ok when it starts and its check tests for that file, so a test makes a
healthy container fail by removing the file with `berth exec`.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import BerthCLI, _processes_with
from tests.polling import settle, wait_until

pytestmark = pytest.mark.root

# The container's init handles SIGTERM, so a restart (stop + start) does not wait out a grace period.
MAIN = "trap 'exit 0' TERM; touch /tmp/ok; while :; do sleep 0.1; done"
CHECK = ["--health-cmd", "test -e /tmp/ok", "--health-interval", "1s", "--health-retries", "2"]


def _health(berth_cli: BerthCLI, name: str) -> dict:  # type: ignore[type-arg]
    return berth_cli.inspect(name)["State"].get("Health") or {}


def _status_becomes(berth_cli: BerthCLI, name: str, status: str, *, timeout: float = 20) -> dict:  # type: ignore[type-arg]
    return wait_until(
        lambda: (h := _health(berth_cli, name)).get("Status") == status and h,
        timeout=timeout,
        interval=0.2,
        what=f"{name} to become {status}",
    )


def _monitors(berth_cli: BerthCLI) -> list[int]:
    return [
        pid
        for pid in _processes_with(b"monitor\0" + str(berth_cli.run_dir).encode(), where="cmdline")
        if b"berth\0monitor" in open(f"/proc/{pid}/cmdline", "rb").read()
    ]


def _health_events(berth_cli: BerthCLI, name: str) -> list[str]:
    out = berth_cli.ok("events", "--filter", "action=health_status", "--format", "json")
    return [
        e["Actor"]["Attributes"]["status"]
        for e in map(json.loads, out.splitlines())
        if e["Actor"]["Attributes"]["name"] == name
    ]


def test_a_failing_check_turns_the_container_unhealthy_with_no_server(berth_cli: BerthCLI) -> None:
    berth_cli.ok("run", "-d", "--name", "hc", *CHECK, "busybox", "sh", "-c", MAIN)
    healthy = _status_becomes(berth_cli, "hc", "healthy")
    assert healthy["FailingStreak"] == 0
    assert healthy["Log"][-1]["ExitCode"] == 0
    # One supervisor runs the checks: no server is up, and there is exactly one monitor.
    assert len(_monitors(berth_cli)) == 1
    assert "(healthy)" in berth_cli.ok("ps", "--filter", "name=hc")

    berth_cli.ok("exec", "hc", "rm", "/tmp/ok")
    unhealthy = _status_becomes(berth_cli, "hc", "unhealthy")
    # Unhealthy only after --health-retries consecutive failures, each one in the log.
    assert unhealthy["FailingStreak"] >= 2
    assert [entry["ExitCode"] for entry in unhealthy["Log"][-2:]] == [1, 1]
    assert len(unhealthy["Log"]) <= 5
    start, end = (
        datetime.fromisoformat(unhealthy["Log"][-1][k].replace("Z", "+00:00")) for k in ("Start", "End")
    )
    assert start <= end

    hc_id = berth_cli.inspect("hc")["Id"]
    assert berth_cli.ok("ps", "-q", "--no-trunc", "--filter", "health=unhealthy").split() == [hc_id]
    assert berth_cli.ok("ps", "-q", "--filter", "health=healthy").split() == []
    assert "(unhealthy)" in berth_cli.ok("ps", "--filter", "name=hc")
    # An event per change of status, not per check.
    assert _health_events(berth_cli, "hc") == ["healthy", "unhealthy"]

    berth_cli.ok("exec", "hc", "touch", "/tmp/ok")
    _status_becomes(berth_cli, "hc", "healthy")
    assert _health_events(berth_cli, "hc") == ["healthy", "unhealthy", "healthy"]


def test_an_images_healthcheck_from_its_dockerfile_turns_unhealthy_after_its_retries(
    berth_cli: BerthCLI, tmp_path: Path
) -> None:
    # The check comes from the image alone: no --health-* flag at run.
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\n"
        "HEALTHCHECK --interval=1s --timeout=5s --retries=3 CMD test -e /tmp/ok\n"
        f'CMD ["sh", "-c", "{MAIN}"]\n'
    )
    berth_cli.ok("build", "-q", "-t", "hc-image:1", str(tmp_path))
    try:
        berth_cli.ok("run", "-d", "--name", "hci", "hc-image:1")
        _status_becomes(berth_cli, "hci", "healthy")
        assert berth_cli.inspect("hci")["Config"]["Healthcheck"]["Retries"] == 3

        berth_cli.ok("exec", "hci", "rm", "/tmp/ok")
        unhealthy = _status_becomes(berth_cli, "hci", "unhealthy")
        # Three failures in a row, not fewer, made it unhealthy.
        assert unhealthy["FailingStreak"] >= 3
        assert [entry["ExitCode"] for entry in unhealthy["Log"][-3:]] == [1, 1, 1]
        assert berth_cli.ok("ps", "-q", "--filter", "health=unhealthy").split() == [
            berth_cli.inspect("hci")["Id"][:12]
        ]
        assert _health_events(berth_cli, "hci") == ["healthy", "unhealthy"]
    finally:
        berth_cli("rm", "-f", "hci")
        berth_cli("rmi", "hc-image:1")


def test_health_on_failure_restart_restarts_the_container(berth_cli: BerthCLI) -> None:
    berth_cli.ok(
        "run", "-d", "--name", "hr", *CHECK, "--health-on-failure", "restart", "busybox", "sh", "-c", MAIN
    )
    _status_becomes(berth_cli, "hr", "healthy")
    before = berth_cli.inspect("hr")["State"]["StartedAt"]

    berth_cli.ok("exec", "hr", "rm", "/tmp/ok")
    wait_until(
        lambda: berth_cli.inspect("hr")["State"]["StartedAt"] != before,
        timeout=30,
        interval=0.2,
        what="the unhealthy container to be restarted",
    )
    state = berth_cli.inspect("hr")["State"]
    assert state["Running"]
    # The restarted container creates /tmp/ok again and is healthy again.
    _status_becomes(berth_cli, "hr", "healthy")
    assert "unhealthy" in _health_events(berth_cli, "hr")
    out = berth_cli.ok("events", "--filter", "action=restart", "--format", "json")
    assert [
        e
        for e in map(json.loads, out.splitlines())
        if e["Actor"]["Attributes"]["name"] == "hr" and e["User"] == "engine"
    ]


def test_health_on_failure_kill_kills_the_container(berth_cli: BerthCLI) -> None:
    berth_cli.ok(
        "run", "-d", "--name", "hk", *CHECK, "--health-on-failure", "kill", "--restart", "always",
        "busybox", "sh", "-c", MAIN,
    )  # fmt: skip
    _status_becomes(berth_cli, "hk", "healthy")
    berth_cli.ok("exec", "hk", "rm", "/tmp/ok")
    state = wait_until(
        lambda: (s := berth_cli.inspect("hk")["State"])["Status"] == "exited" and s,
        timeout=30,
        interval=0.2,
        what="the unhealthy container to be killed",
    )
    # An explicit kill: the restart policy does not bring it back; the last health is kept.
    assert state["ExitCode"] == 137
    assert state["Health"]["Status"] == "unhealthy"
    assert not settle(lambda: berth_cli.inspect("hk")["State"]["Running"], timeout=2)


def test_a_check_that_exceeds_its_timeout_fails_like_docker(berth_cli: BerthCLI) -> None:
    berth_cli.ok(
        "run", "-d", "--name", "ht", "--health-cmd", "echo begun; sleep 30", "--health-timeout", "1s",
        "--health-interval", "1s", "--health-retries", "1", "busybox", "sh", "-c", MAIN,
    )  # fmt: skip
    unhealthy = _status_becomes(berth_cli, "ht", "unhealthy")
    entry = unhealthy["Log"][-1]
    assert entry["ExitCode"] == -1
    assert entry["Output"] == "Health check exceeded timeout (1s): begun\n"
    start, end = (datetime.fromisoformat(entry[k].replace("Z", "+00:00")) for k in ("Start", "End"))
    # The timeout is enforced: the check was killed after about a second, not after its 30 s.
    assert (end - start).total_seconds() < 5
    # ...and its process is gone from the container (the next check may be running its own).
    assert len([line for line in berth_cli.ok("top", "ht").splitlines() if "sleep 30" in line]) <= 1


def test_the_monitor_exits_once_no_container_needs_it(berth_cli: BerthCLI) -> None:
    berth_cli.ok("run", "-d", "--name", "hm", *CHECK, "busybox", "sh", "-c", MAIN)
    wait_until(lambda: _monitors(berth_cli), timeout=20, what="the monitor to start")
    # A container without a check does not keep it.
    berth_cli.ok("run", "-d", "--name", "plain", "busybox", "sleep", "1000")
    berth_cli.ok("rm", "-f", "hm")
    wait_until(lambda: not _monitors(berth_cli), timeout=15, what="the monitor to exit")
    berth_cli.ok("rm", "-f", "plain")


def test_a_slow_check_does_not_delay_another_containers_checks(berth_cli: BerthCLI) -> None:
    berth_cli.ok(
        "run", "-d", "--name", "slow", "--health-cmd", "sleep 8", "--health-timeout", "20s",
        "--health-interval", "1s", "busybox", "sh", "-c", MAIN,
    )  # fmt: skip
    berth_cli.ok("run", "-d", "--name", "fast", *CHECK, "busybox", "sh", "-c", MAIN)
    _status_becomes(berth_cli, "fast", "healthy", timeout=6)
    # The slow container's first check is still running: no result yet, and only one check at once.
    assert _health(berth_cli, "slow")["Status"] == "starting"
    assert len([line for line in berth_cli.ok("top", "slow").splitlines() if "sleep 8" in line]) == 1


def test_a_server_keeps_the_monitor_up_and_checks_outlive_it(berth_cli: BerthCLI) -> None:
    import signal
    import subprocess

    sock = berth_cli.run_dir / "api.sock"
    server = berth_cli.popen(
        "serve-api", "--socket", str(sock), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        # With no container at all the monitor runs while the server is up (alerts are evaluated there).
        wait_until(lambda: _monitors(berth_cli), timeout=60, what="the server to start the monitor")
        berth_cli.ok("run", "-d", "--name", "hs", *CHECK, "busybox", "sh", "-c", MAIN)
        _status_becomes(berth_cli, "hs", "healthy")
        monitor = _monitors(berth_cli)
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    # The server is gone; the same monitor keeps checking the container.
    berth_cli.ok("exec", "hs", "rm", "/tmp/ok")
    _status_becomes(berth_cli, "hs", "unhealthy")
    assert _monitors(berth_cli) == monitor
    berth_cli.ok("rm", "-f", "hs")
    wait_until(lambda: not _monitors(berth_cli), timeout=15, what="the monitor to exit")
