"""Issue 10, findings 7 and 8: exec'd background processes, `top`, and logs kept without the server."""

from __future__ import annotations

import os

import pytest

from tests.conftest import BerthCLI
from tests.polling import wait_until

pytestmark = pytest.mark.root


def _top_cmds(berth_cli: BerthCLI, name: str) -> list[str]:
    lines = berth_cli.ok("top", name).splitlines()[1:]
    return [line.split(None, 7)[-1] for line in lines if line.strip()]


def test_a_background_process_of_an_exec_outlives_the_exec(berth_cli: BerthCLI) -> None:
    berth_cli.ok("run", "-d", "--name", "bg", "busybox", "sleep", "3600")
    out = berth_cli.ok("exec", "bg", "sh", "-c", "sleep 1000 & echo started")
    assert out.strip() == "started"
    # Docker leaves it running under the container's init once the exec's shell has exited.
    wait_until(
        lambda: "sleep 1000" in _top_cmds(berth_cli, "bg"),
        timeout=5,
        what="the exec's background sleep in top",
    )
    pids = [
        int(line.split()[1]) for line in berth_cli.ok("top", "bg").splitlines()[1:] if "sleep 1000" in line
    ]
    assert pids and os.path.exists(f"/proc/{pids[0]}")
    berth_cli.ok("rm", "-f", "bg")
    # Removing the container kills it too: no process of the container is left on the host.
    wait_until(
        lambda: not any(os.path.exists(f"/proc/{pid}") for pid in pids),
        timeout=10,
        what="the container's processes to be gone",
    )


def test_top_lists_every_process_of_the_container(berth_cli: BerthCLI) -> None:
    berth_cli.ok(
        "run", "-d", "--name", "many", "busybox", "sh", "-c", "sleep 1000 & sleep 1001 & exec sleep 1002"
    )
    out = berth_cli.ok("top", "many").splitlines()
    assert out[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    wait_until(
        lambda: {"sleep 1000", "sleep 1001", "sleep 1002"} <= set(_top_cmds(berth_cli, "many")),
        timeout=20,
        what="all three sleeps in top",
    )
    # The two background sleeps are children of the container's PID 1 (sleep 1002 after exec).
    rows = {line.split(None, 7)[-1]: line.split() for line in berth_cli.ok("top", "many").splitlines()[1:]}
    init_pid = rows["sleep 1002"][1]
    assert rows["sleep 1000"][2] == init_pid and rows["sleep 1001"][2] == init_pid


def test_top_shows_a_zombie_as_defunct(berth_cli: BerthCLI) -> None:
    # `sleep 0` exits at once, and its parent (exec'd into sleep 1000) never reaps it.
    berth_cli.ok("run", "-d", "--name", "zed", "busybox", "sh", "-c", "sleep 0 & exec sleep 1000")
    wait_until(
        lambda: "[sleep] <defunct>" in _top_cmds(berth_cli, "zed"), timeout=20, what="the zombie in top"
    )
    assert "sleep 1000" in _top_cmds(berth_cli, "zed")  # its parent, alive beside it


def test_stop_kills_what_an_exec_left_in_the_background(berth_cli: BerthCLI) -> None:
    berth_cli.ok("run", "-d", "--name", "bg2", "busybox", "sleep", "3600")
    berth_cli.ok("exec", "bg2", "sh", "-c", "sleep 1001 & echo started")
    wait_until(
        lambda: "sleep 1001" in _top_cmds(berth_cli, "bg2"),
        timeout=5,
        what="the exec's background sleep in top",
    )
    pids = [int(line.split()[1]) for line in berth_cli.ok("top", "bg2").splitlines()[1:]]
    berth_cli.ok("stop", "-t", "1", "bg2")
    wait_until(
        lambda: not any(os.path.exists(f"/proc/{pid}") for pid in pids),
        timeout=10,
        what="the container's processes to be gone",
    )


# -- finding 8: logs rotate without the web server -------------------------------------------------


def test_logs_rotate_without_the_web_server(berth_cli: BerthCLI) -> None:
    # 1500 records of about 55 bytes (80 KiB) against max-size 10k: conmon alone would cut the log
    # at its backstop and lose the lines; the log keeper rotates at 10k, and max-file 3 keeps three.
    script = 'i=1000; while [ $i -lt 2500 ]; do echo "line-$i"; i=$((i+1)); usleep 1000; done; echo done'
    berth_cli.ok(
        "run",
        "-d",
        "--name",
        "flood",
        "--log-opt",
        "max-size=10k",
        "--log-opt",
        "max-file=3",
        "busybox",
        "sh",
        "-c",
        f"{script}; exec sleep 1000",
    )
    cid = berth_cli.inspect("flood")["Id"]
    log = berth_cli.root / "containers" / cid / "ctr.log"
    # "done" may already sit in a rotated file: look in all of them.
    wait_until(
        lambda: any(b" done\n" in f.read_bytes() for f in log.parent.glob("ctr.log*")),
        timeout=120,
        what="the last line in the rotated logs",
        ignoring=(FileNotFoundError,),  # the keeper may rename a file between the glob and the read
    )
    # Rotated before any `berth logs` (which also rotates) ran: the keeper did it, no server is up.
    assert (log.parent / "ctr.log.1").exists() and (log.parent / "ctr.log.2").exists()
    assert not (log.parent / "ctr.log.3").exists()
    lines = berth_cli.ok("logs", "flood").split()
    assert lines[-1] == "done"
    numbers = [int(line.removeprefix("line-")) for line in lines[:-1]]
    # The oldest lines went by the rotation policy only: what is left is one unbroken run up to the
    # last line, and at least the two rotated files' worth (2 x 10k of records, about 360 lines).
    assert numbers == list(range(numbers[0], 2500))
    assert len(numbers) >= 2 * 10 * 1024 // 60
    keeper_dir = berth_cli.run_dir / "logkeeper"
    assert (keeper_dir / f"{cid}.json").exists()
    berth_cli.ok("rm", "-f", "flood")
    # The keeper forgets the container and exits once it has nothing left to watch.
    wait_until(
        lambda: not (keeper_dir / f"{cid}.json").exists(),
        timeout=20,
        what="the keeper to forget the container",
    )


# -- house item: a service stop leaves containers running ------------------------------------------


def test_sigterm_to_the_api_server_leaves_a_container_running(berth_cli: BerthCLI) -> None:
    import signal
    import socket
    import subprocess

    sock = berth_cli.run_dir / "api.sock"
    server = berth_cli.popen(
        "serve-api", "--socket", str(sock), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_until(sock.exists, timeout=60, what="the API socket")
        # Started through the server, so conmon is the server's descendant (and, under systemd, in
        # its cgroup): what KillMode=process protects.
        client = socket.socket(socket.AF_UNIX)
        client.connect(str(sock))
        body = b'{"Image": "busybox", "Cmd": ["sleep", "1000"]}'
        client.sendall(
            b"POST /containers/create?name=svc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        assert b" 201 " in client.recv(65536).split(b"\r\n", 1)[0] + b" "
        client.close()
        client = socket.socket(socket.AF_UNIX)
        client.connect(str(sock))
        client.sendall(
            b"POST /containers/svc/start HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        assert b" 204 " in client.recv(65536).split(b"\r\n", 1)[0] + b" "
        client.close()
        pid = berth_cli.inspect("svc")["State"]["Pid"]
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    # The server is gone; the container, its conmon and its init are not.
    state = berth_cli.inspect("svc")["State"]
    assert state["Running"] and state["Pid"] == pid and os.path.exists(f"/proc/{pid}")
    assert berth_cli.ok("exec", "svc", "echo", "alive").strip() == "alive"
