"""What users read and type: logs, ps, top, stats, exec, and `run -it` in a real pseudo-terminal."""

from __future__ import annotations

import json
import time

import pexpect
import pytest

from tests.polling import wait_until

pytestmark = pytest.mark.root


# -- logs ------------------------------------------------------------------------------------------


def test_logs_keep_stdout_and_stderr_apart(berth_cli) -> None:
    berth_cli.ok("run", "--name", "streams", "busybox", "sh", "-c", "echo out; echo err >&2; echo out2")
    proc = berth_cli("logs", "streams")
    assert (proc.stdout, proc.stderr) == ("out\nout2\n", "err\n")


def test_run_keeps_stdout_and_stderr_apart(berth_cli) -> None:
    proc = berth_cli("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert (proc.stdout, proc.stderr) == ("out\n", "err\n")


def test_logs_tail_and_timestamps(berth_cli) -> None:
    berth_cli.ok("run", "--name", "many", "busybox", "sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done")
    assert berth_cli.ok("logs", "--tail", "2", "many") == "line4\nline5\n"
    stamped = berth_cli.ok("logs", "-t", "--tail", "1", "many")
    stamp, text = stamped.rstrip("\n").split(" ", 1)
    assert text == "line5"
    assert stamp.endswith("Z") and "T" in stamp


def test_logs_since_and_until(berth_cli) -> None:
    berth_cli.ok("run", "-d", "--name", "slow", "busybox", "sh", "-c", "echo early; sleep 2; echo late")
    assert berth_cli.ok("wait", "slow").strip() == "0"
    stamped = berth_cli.ok("logs", "-t", "slow").splitlines()
    late_time = stamped[1].split(" ", 1)[0]
    assert berth_cli.ok("logs", "--since", late_time, "slow") == "late\n"
    assert berth_cli.ok("logs", "--until", late_time, "slow") == "early\n"
    assert berth_cli.ok("logs", "--since", "1h", "slow") == "early\nlate\n"


def test_logs_follow_ends_when_the_container_exits(berth_cli) -> None:
    berth_cli.ok("run", "-d", "--name", "fol", "busybox", "sh", "-c", "echo a; sleep 1; echo b")
    proc = berth_cli("logs", "-f", "fol", timeout=60)
    assert proc.stdout == "a\nb\n"


def test_logs_survive_a_stop_and_go_with_rm(berth_cli) -> None:
    berth_cli.ok("run", "-d", "--name", "lg", "busybox", "sh", "-c", "echo kept; sleep 1000")
    wait_until(lambda: berth_cli.ok("logs", "lg") == "kept\n", what="the line in the log")
    berth_cli.ok("stop", "-t", "0", "lg")
    assert berth_cli.ok("logs", "lg") == "kept\n"
    cid = berth_cli.inspect("lg")["Id"]
    berth_cli.ok("rm", "lg")
    assert not (berth_cli.root / "containers" / cid).exists()


# -- ps, top, stats ----------------------------------------------------------------------------------


def test_ps_filters(berth_cli) -> None:
    up = berth_cli.ok("run", "-d", "--name", "web-1", "-l", "tier=front", "busybox", "sleep", "1000").strip()
    done = berth_cli.ok("create", "--name", "job-1", "-l", "tier=back", "busybox", "true").strip()

    def ids(*args: str) -> set[str]:
        return set(berth_cli.ok("ps", "-q", "--no-trunc", *args).split())

    assert ids() == {up}
    assert ids("-a") == {up, done}
    assert ids("--filter", "status=created") == {done}
    assert ids("--filter", "status=running") == {up}
    assert ids("-a", "--filter", "name=job") == {done}
    assert ids("-a", "--filter", "label=tier=front") == {up}
    assert ids("-a", "--filter", "label=tier") == {up, done}
    assert ids("-a", "--filter", "ancestor=busybox") == {up, done}
    assert ids("-a", "--filter", f"id={done[:8]}") == {done}
    assert ids("-a", "-n", "1") == {done}


def test_ps_format_json_prints_one_object_per_line(berth_cli) -> None:
    berth_cli.ok("run", "-d", "--name", "js", "busybox", "sleep", "1000")
    rows = [json.loads(line) for line in berth_cli.ok("ps", "--format", "json").splitlines()]
    assert len(rows) == 1
    assert rows[0]["Names"] == "js" and rows[0]["State"] == "running" and rows[0]["Status"].startswith("Up")


def test_top_lists_the_process(berth_cli) -> None:
    berth_cli.ok("run", "-d", "--name", "tp", "busybox", "sleep", "1000")
    out = berth_cli.ok("top", "tp").splitlines()
    assert out[0].split()[:3] == ["UID", "PID", "PPID"]
    assert any(line.endswith("sleep 1000") for line in out[1:])


def test_top_of_a_stopped_container_is_refused(berth_cli) -> None:
    berth_cli.ok("create", "--name", "tp2", "busybox", "true")
    assert "not running" in berth_cli.fail("top", "tp2")


def test_stats_no_stream_prints_a_row(berth_cli) -> None:
    berth_cli.ok("run", "-d", "--name", "st", "-m", "64m", "busybox", "sleep", "1000")
    lines = berth_cli.ok("stats", "--no-stream", "st").splitlines()
    assert lines[0].startswith("CONTAINER ID") and "MEM USAGE / LIMIT" in lines[0]
    assert len(lines) == 2 and "st" in lines[1].split()
    assert "64MiB" in lines[1]  # the limit, read from the container's memory cgroup
    assert lines[1].split()[-1] == "1"  # one process


# -- exec -----------------------------------------------------------------------------------------


def test_exec_passes_the_exit_code_through(berth_cli) -> None:
    berth_cli.ok("run", "-d", "--name", "ex", "busybox", "sleep", "1000")
    assert berth_cli("exec", "ex", "sh", "-c", "exit 9").returncode == 9
    assert berth_cli("exec", "ex", "true").returncode == 0


def test_exec_env_user_and_workdir(berth_cli) -> None:
    berth_cli.ok("run", "-d", "--name", "ex2", "busybox", "sleep", "1000")
    out = berth_cli.ok(
        "exec",
        "-e",
        "GREETING=hi",
        "-u",
        "nobody",
        "-w",
        "/tmp",
        "ex2",
        "sh",
        "-c",
        'echo "$GREETING $(id -u) $PWD"',
    )
    assert out == "hi 65534 /tmp\n"


def test_exec_with_stdin(berth_cli) -> None:
    berth_cli.ok("run", "-d", "--name", "ex3", "busybox", "sleep", "1000")
    assert berth_cli("exec", "-i", "ex3", "cat", input="piped\n").stdout == "piped\n"


def test_exec_into_a_stopped_container_is_refused(berth_cli) -> None:
    berth_cli.ok("create", "--name", "cold", "busybox", "true")
    assert "not running" in berth_cli.fail("exec", "cold", "true")


def test_exec_into_a_paused_container_is_refused(berth_cli) -> None:
    berth_cli.ok("run", "-d", "--name", "nap", "busybox", "sleep", "1000")
    berth_cli.ok("pause", "nap")
    error = berth_cli.fail("exec", "nap", "true")
    assert "paused" in error and "unpause" in error


def test_exec_workdir_under_proc_is_refused(berth_cli) -> None:
    berth_cli.ok("run", "-d", "--name", "ex4", "busybox", "sleep", "1000")
    error = berth_cli.fail("exec", "-w", "/proc/1", "ex4", "true")
    # Refused for its working directory (CVE-2024-21626), not for any other reason.
    assert "working directory /proc/1 is under /proc" in error, error


def test_exec_tty(berth_cli) -> None:
    berth_cli.ok("run", "-d", "--name", "ex5", "busybox", "sleep", "1000")
    child = pexpect.spawn(
        berth_cli.argv[0], [*berth_cli.argv[1:], "exec", "-it", "ex5", "sh"], env=berth_cli.env, timeout=30
    )
    try:
        child.setwinsize(24, 80)
        child.expect(r"[#$] ")
        child.sendline("tty; echo $((6*7))")
        child.expect("/dev/pts/")
        child.expect("42")
        child.sendline("exit 4")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 4


def test_stop_of_a_container_with_a_detached_exec_does_not_hang(berth_cli) -> None:
    berth_cli.ok("run", "-d", "--name", "ex6", "busybox", "sleep", "1000")
    berth_cli.ok("exec", "-d", "ex6", "sleep", "1000")
    started = time.monotonic()
    berth_cli.ok("stop", "-t", "0", "ex6")
    berth_cli.ok("rm", "ex6")
    assert time.monotonic() - started < 20


# -- run -it ----------------------------------------------------------------------------------------


def test_run_it_is_an_interactive_shell_in_a_pseudo_terminal(berth_cli) -> None:
    child = pexpect.spawn(
        berth_cli.argv[0],
        [*berth_cli.argv[1:], "run", "-it", "--rm", "busybox", "sh"],
        env=berth_cli.env,
        timeout=30,
    )
    try:
        child.setwinsize(24, 80)
        child.expect(r"[#$] ")
        child.sendline("echo $((6*7))")
        child.expect("42")
        child.expect(r"[#$] ")
        # A window change reaches the container's terminal (SIGWINCH → conmon's ctl FIFO).
        child.setwinsize(33, 111)

        def new_size_seen() -> bool:
            child.sendline("stty size")
            child.expect(r"\r\n(\d+) (\d+)\r\n")
            return child.match.groups() == (b"33", b"111")

        wait_until(new_size_seen, interval=0.1, what="the new window size inside the container")
        child.sendline("exit 3")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 3


WRITER = "i=0; while [ $i -lt 30000 ]; do echo line-$i; i=$((i+1)); done"


def test_run_attached_prints_every_line_of_a_long_output(berth_cli) -> None:
    out = berth_cli.ok("run", "--rm", "busybox", "sh", "-c", WRITER)
    assert out.count("\n") == 30000 and out.endswith("line-29999\n")


def test_logs_follow_of_a_stopped_container_prints_everything(berth_cli) -> None:
    berth_cli.ok("run", "--name", "long", "busybox", "sh", "-c", WRITER)
    assert berth_cli.ok("logs", "-f", "long").count("\n") == 30000
    assert berth_cli.ok("logs", "-f", "--tail", "1000", "long").count("\n") == 1000


def test_logs_follow_drains_a_container_that_exits_while_followed(berth_cli) -> None:
    berth_cli.ok("run", "-d", "--name", "longer", "busybox", "sh", "-c", f"sleep 1; {WRITER}")
    out = berth_cli.ok("logs", "-f", "longer")
    assert out.count("\n") == 30000 and out.endswith("line-29999\n")
