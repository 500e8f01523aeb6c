"""Hijacked streams: attach, exec and resize, driven by the real docker CLI, pexpect and raw sockets."""

from __future__ import annotations

import json
import re
import secrets
import socket
import struct
import subprocess

import pexpect
import pytest

from tests.api.conftest import DOCKER, ApiServer
from tests.polling import wait_until


def _name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def _running(api: ApiServer, *command: str) -> str:
    """A detached busybox container (made by the berth CLI, so these tests do not need API create)."""
    name = _name("ax")
    api.berth("run", "-d", "--name", name, "busybox", *(command or ("sleep", "1000")))
    return name


def _hijack(api: ApiServer, path: str, body: dict | None = None) -> tuple[socket.socket, bytes, bytes]:
    """POST with Upgrade: tcp; returns the socket, the response head and what came in the same read."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(20)
    sock.connect(str(api.socket))
    payload = json.dumps(body or {}).encode()
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: api.moby.localhost\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before the response head: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return sock, head, rest


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def _demux(data: bytes) -> dict[int, bytes]:
    """Split Docker's multiplexed stream into {1: stdout, 2: stderr}; fails on a malformed frame."""
    out = {1: b"", 2: b""}
    while data:
        assert len(data) >= 8, f"truncated frame header: {data!r}"
        stream, size = struct.unpack(">BxxxI", data[:8])
        assert stream in (1, 2), f"bad stream byte in {data[:8]!r}"
        out[stream] += data[8 : 8 + size]
        data = data[8 + size :]
    return out


# --- docker run / start -a (attach before start) -----------------------------------------------


def test_run_rm_prints_the_output_of_a_short_container(api: ApiServer) -> None:
    # The container may exit before the attach stream is read: nothing may be lost.
    name = _name("hi")
    result = api.docker("run", "--rm", "--name", name, "busybox", "echo", "hi")
    assert result.stdout == "hi\n"
    assert api.docker("inspect", name, check=False).returncode != 0  # --rm removed it


def test_run_splits_stdout_and_stderr_and_returns_the_exit_code(api: ApiServer) -> None:
    result = api.docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 4", check=False)
    assert (result.stdout, result.stderr, result.returncode) == ("out\n", "err\n", 4)


def test_run_interactive_reads_piped_stdin_to_its_end(api: ApiServer) -> None:
    # The CLI half-closes at EOF of its stdin; cat must get EOF and its output must still arrive.
    result = api.docker("run", "-i", "--rm", "busybox", "cat", input="data\nmore data\n")
    assert result.stdout == "data\nmore data\n"


def test_attach_before_start_gets_the_101_alone_then_every_frame(api: ApiServer) -> None:
    name = _name("ab")
    status, _, body = api.request(
        "POST",
        f"/containers/create?name={name}",
        {"Image": "busybox", "Cmd": ["sh", "-c", "echo hi; echo ho >&2"]},
    )
    assert status == 201, body
    sock, head, rest = _hijack(api, f"/v1.44/containers/{name}/attach?stream=1&stdout=1&stderr=1")
    with sock:
        assert head.startswith(b"HTTP/1.1 101 UPGRADED"), head
        assert rest == b""
        status, _, body = api.request("POST", f"/containers/{name}/start")
        assert status == 204, body
        streams = _demux(_read_all(sock))  # ends when the container has exited
    assert streams == {1: b"hi\n", 2: b"ho\n"}


def test_start_attach_streams_output_and_exit_code(api: ApiServer) -> None:
    name = _name("sa")
    api.docker("create", "--name", name, "busybox", "sh", "-c", "echo started; echo oops >&2; exit 2")
    result = api.docker("start", "-a", name, check=False)
    assert (result.stdout, result.stderr, result.returncode) == ("started\n", "oops\n", 2)


def test_run_it_gives_a_terminal_with_size_and_exit_code(api: ApiServer) -> None:
    child = pexpect.spawn(
        DOCKER, ["run", "-it", "--rm", "busybox", "sh"], env=api.env, timeout=30, dimensions=(31, 97)
    )
    try:
        child.expect_exact("# ")
        _expect_size(child, 31, 97)  # the CLI resizes right after start
        child.setwinsize(40, 123)  # SIGWINCH → POST /containers/{id}/resize
        _expect_size(child, 40, 123)
        child.sendline("exit 3")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 3


def test_run_it_detaches_with_ctrl_p_ctrl_q_and_leaves_it_running(api: ApiServer) -> None:
    name = _name("dt")
    child = pexpect.spawn(DOCKER, ["run", "-it", "--name", name, "busybox", "sh"], env=api.env, timeout=30)
    try:
        child.expect_exact("# ")
        child.send("\x10\x11")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    # The shell still runs: its terminal was not hung up when the client left.
    assert api.docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true"
    assert api.docker("exec", name, "echo", "alive").stdout == "alive\n"


def _expect_size(child: pexpect.spawn, rows: int, cols: int, timeout: float = 10) -> None:
    """`stty size` shows rows and cols (asked again while a resize may still be on its way)."""
    seen: list[str] = []

    def size_is_right() -> bool:
        child.sendline("stty size")
        child.expect(r"\r\n(\d+ \d+)\r\n")
        seen.append(child.match.group(1).decode())
        return seen[-1] == f"{rows} {cols}"

    try:
        wait_until(size_is_right, timeout=timeout, interval=0.1, what=f"the terminal size {rows} {cols}")
    except AssertionError:
        raise AssertionError(f"terminal size is {seen[-1:]}, expected {rows} {cols}") from None


# --- docker attach --------------------------------------------------------------------------------


def test_attach_to_a_running_container_shows_new_output(api: ApiServer) -> None:
    name = _running(api, "sh", "-c", "i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.2; done")
    wait_until(lambda: "tick3" in api.berth("logs", name).stdout, timeout=20, interval=0.1, what="tick3")
    proc = subprocess.Popen(
        [DOCKER, "attach", "--no-stdin", "--sig-proxy=false", name],
        env=api.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().decode()
        second = proc.stdout.readline().decode()
    finally:
        proc.kill()  # the CLI keeps running on SIGTERM while attached
        proc.wait(timeout=10)
    # Only what comes after the attach, and in order: no replay of tick0.
    numbers = [int(m) for m in re.findall(r"tick(\d+)", first + second)]
    assert len(numbers) == 2 and numbers[0] >= 3 and numbers[1] == numbers[0] + 1, (first, second)


def test_attach_to_a_running_terminal_takes_input_and_detaches(api: ApiServer) -> None:
    name = _name("at")
    api.docker("run", "-dit", "--name", name, "busybox", "sh")
    child = pexpect.spawn(DOCKER, ["attach", name], env=api.env, timeout=30, dimensions=(22, 77))
    try:
        child.sendline("echo sum=$((40+2))")
        child.expect_exact("sum=42")
        _expect_size(child, 22, 77)  # docker attach resizes the terminal too
        child.send("\x10\x11")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    # `docker attach` reports the detach as "read escape sequence" (exit 1, the CLI's own choice).
    assert b"read escape sequence" in child.before
    assert api.docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true"


def test_attach_with_logs_replays_history_multiplexed(api: ApiServer) -> None:
    name = _running(api, "sh", "-c", "echo hello; echo warn >&2; sleep 1000")
    wait_until(
        lambda: "warn" in (logs := api.berth("logs", name)).stderr + logs.stdout,
        timeout=20,
        interval=0.1,
        what="the line on stderr",
    )
    sock, head, rest = _hijack(api, f"/v1.44/containers/{name}/attach?logs=1&stream=0&stdout=1&stderr=1")
    with sock:
        assert head.startswith(b"HTTP/1.1 101"), head
        assert b"multiplexed-stream" in head
        streams = _demux(rest + _read_all(sock))
    assert streams == {1: b"hello\n", 2: b"warn\n"}


def test_attach_and_resize_of_unknown_container_are_404(api: ApiServer) -> None:
    status, _, body = api.request("POST", "/containers/nosuchthing/attach?stream=1&stdout=1")
    assert status == 404 and "message" in json.loads(body)
    status, _, body = api.request("POST", "/containers/nosuchthing/resize?h=10&w=10")
    assert status == 404 and "message" in json.loads(body)


def test_resize_validates_its_arguments(api: ApiServer) -> None:
    name = _running(api)
    status, _, body = api.request("POST", f"/containers/{name}/resize?h=abc&w=10")
    assert status == 400 and "'h'" in json.loads(body)["message"]
    status, _, body = api.request("POST", f"/containers/{name}/attach?stream=1&detachKeys=ctrl-%3F%3F")
    assert status == 400 and "detach keys" in json.loads(body)["message"]


# --- exec -----------------------------------------------------------------------------------------


def test_exec_prints_output_and_propagates_exit_codes(api: ApiServer) -> None:
    name = _running(api)
    assert api.docker("exec", name, "echo", "x").stdout == "x\n"
    result = api.docker("exec", name, "sh", "-c", "echo o; echo e >&2; exit 5", check=False)
    assert (result.stdout, result.stderr, result.returncode) == ("o\n", "e\n", 5)
    missing = api.docker("exec", name, "no-such-command", check=False)
    assert missing.returncode == 127 and "no-such-command" in missing.stdout + missing.stderr


def test_exec_interactive_passes_stdin_until_eof(api: ApiServer) -> None:
    name = _running(api)
    result = api.docker("exec", "-i", name, "sh", "-c", "cat; echo done", input="abc\ndef\n")
    assert result.stdout == "abc\ndef\ndone\n"


def test_exec_it_has_a_terminal_with_size_and_exit_code(api: ApiServer) -> None:
    name = _running(api)
    child = pexpect.spawn(DOCKER, ["exec", "-it", name, "sh"], env=api.env, timeout=30, dimensions=(27, 88))
    try:
        child.expect_exact("# ")
        _expect_size(child, 27, 88)  # ConsoleSize of the create/start request
        child.setwinsize(35, 111)  # POST /exec/{id}/resize
        _expect_size(child, 35, 111)
        child.sendline("tty")
        child.expect(r"/dev/pts/\d+")
        child.sendline("exit 3")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 3


def test_exec_upgrade_answer_arrives_alone_then_frames(api: ApiServer) -> None:
    name = _running(api)
    status, _, body = api.request(
        "POST", f"/containers/{name}/exec", {"Cmd": ["sh", "-c", "echo x"], "AttachStdout": True}
    )
    assert status == 201, body
    exec_id = json.loads(body)["Id"]
    assert json.loads(api.request("GET", f"/exec/{exec_id}/json")[2])["Running"] is False
    sock, head, rest = _hijack(api, f"/v1.44/exec/{exec_id}/start", {"Detach": False, "Tty": False})
    with sock:
        assert head.startswith(b"HTTP/1.1 101 UPGRADED"), head
        # docker-py drops output that shares a read with the 101: it must come in its own write.
        assert rest == b"", rest
        data = _read_all(sock)
    assert data == b"\x01\x00\x00\x00\x00\x00\x00\x02x\n"
    info = json.loads(api.request("GET", f"/exec/{exec_id}/json")[2])
    assert info["ExitCode"] == 0 and info["Running"] is False and info["Pid"] > 0
    assert info["ProcessConfig"] == {
        "tty": False,
        "entrypoint": "sh",
        "arguments": ["-c", "echo x"],
        "privileged": False,
        "user": "",
    }
    status, _, body = api.request("POST", f"/exec/{exec_id}/start", {"Detach": True})
    assert status == 409 and "already run" in json.loads(body)["message"]


def test_exec_framing_follows_the_start_requests_tty(api: ApiServer) -> None:
    name = _running(api)
    status, _, body = api.request(
        "POST", f"/containers/{name}/exec", {"Cmd": ["echo", "raw"], "AttachStdout": True, "Tty": True}
    )
    exec_id = json.loads(body)["Id"]
    sock, head, rest = _hijack(api, f"/exec/{exec_id}/start", {"Tty": False})
    with sock:
        assert b"101" in head.split(b"\r\n")[0]
        streams = _demux(rest + _read_all(sock))
    assert streams[1] == b"raw\r\n"  # a terminal's bytes, framed because the start said Tty false


def test_exec_detached_runs_and_records_its_exit(api: ApiServer) -> None:
    name = _running(api)
    status, _, body = api.request("POST", f"/containers/{name}/exec", {"Cmd": ["sh", "-c", "exit 6"]})
    exec_id = json.loads(body)["Id"]
    status, _, body = api.request("POST", f"/exec/{exec_id}/start", {"Detach": True})
    assert status == 200, body
    info = wait_until(
        lambda: (
            (seen := json.loads(api.request("GET", f"/exec/{exec_id}/json")[2]))["ExitCode"] is not None
            and seen
        ),
        timeout=20,
        what="the exec's exit code",
    )
    assert info["ExitCode"] == 6 and info["Running"] is False


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"Cmd": []}, 400, "No exec command"),
        ({"Cmd": "echo"}, 201, ""),
        ({"Cmd": ["true"], "Tty": "yes"}, 400, "Tty must be a boolean"),
        ({"Cmd": ["true"], "Env": [1]}, 400, "Env must be a list"),
        ({"Cmd": ["true"], "WorkingDir": "relative"}, 400, "absolute path"),
        ({"Cmd": ["true"], "Privileged": True}, 403, "privileged"),
        ({"Cmd": ["true"], "DetachKeys": "ctrl-??"}, 400, "detach keys"),
    ],
)
def test_exec_create_checks_its_body(api: ApiServer, body: dict, status: int, words: str) -> None:
    name = _running(api)
    got, _, data = api.request("POST", f"/containers/{name}/exec", body)
    assert got == status, data
    if words:
        assert words in json.loads(data)["message"]


def test_exec_in_stopped_or_unknown_container_and_unknown_exec(api: ApiServer) -> None:
    name = _name("st")
    api.berth("create", "--name", name, "busybox", "true")
    status, _, body = api.request("POST", f"/containers/{name}/exec", {"Cmd": ["true"]})
    assert status == 409 and "not running" in json.loads(body)["message"]
    status, _, _ = api.request("POST", "/containers/nosuchthing/exec", {"Cmd": ["true"]})
    assert status == 404
    for method, path in (
        ("GET", "/exec/nosuch/json"),
        ("POST", "/exec/nosuch/start"),
        ("POST", "/exec/nosuch/resize?h=1&w=1"),
    ):
        status, _, body = api.request(method, path, {} if method == "POST" else None)
        assert status == 404 and "No such exec instance" in json.loads(body)["message"], (path, body)


def test_docker_py_exec_run_demuxes_and_half_closes(api: ApiServer) -> None:
    docker = pytest.importorskip("docker")
    name = _running(api)
    client = docker.DockerClient(base_url=api.docker_host, version="1.44")
    try:
        container = client.containers.get(name)
        code, (out, err) = container.exec_run(["sh", "-c", "echo a; echo b >&2; exit 3"], demux=True)
        assert (code, out, err) == (3, b"a\n", b"b\n")
        exec_id = client.api.exec_create(name, ["sh", "-c", "cat; echo end"], stdin=True)["Id"]
        sock = client.api.exec_start(exec_id, socket=True)
        raw = sock._sock
        raw.settimeout(20)
        raw.sendall(b"piped\n")
        raw.shutdown(socket.SHUT_WR)  # what docker-py users do at the end of their input
        streams = _demux(_read_all(raw))
        raw.close()
        assert streams[1] == b"piped\nend\n"
        assert client.api.exec_inspect(exec_id)["ExitCode"] == 0
    finally:
        client.close()


def test_detach_matcher_holds_a_prefix_and_finds_the_sequence_across_reads() -> None:
    from engine.api.hijack import DetachMatcher, parse_detach_keys

    matcher = DetachMatcher(parse_detach_keys("ctrl-p,ctrl-q"))
    assert matcher.feed(b"ls\x10") == b"ls"  # ctrl-p held: it may start the sequence
    assert matcher.feed(b"x\x10") == b"\x10x"  # not the sequence: passed on after all
    assert matcher.feed(b"\x10\x11rest") == b"\x10" and matcher.detached
    assert parse_detach_keys("a,ctrl-@,ctrl-_") == b"a\x00\x1f"
    with pytest.raises(Exception, match="invalid detach keys"):
        parse_detach_keys("ctrl-pp")
