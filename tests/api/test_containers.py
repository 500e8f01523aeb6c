"""Container endpoints through the real docker CLI, and raw HTTP for the protocol details and errors.

Container starts cost time, so each test that starts one checks several things about it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import struct
import threading
import time
import urllib.request

from tests.api.conftest import ApiServer
from tests.polling import wait_until

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z ")


def _name(prefix: str = "c") -> str:
    return f"{prefix}{secrets.token_hex(3)}"


def _status(api: ApiServer, name: str) -> str:
    return api.docker("inspect", "-f", "{{.State.Status}}", name).stdout.strip()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_threads(api: ApiServer) -> int:
    """How many threads the API server runs (found through the socket's peer credentials)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(api.socket))
        pid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[0]
    return len(os.listdir(f"/proc/{pid}/task")) - 1  # less the one serving this probe, if still alive


def _message(body: bytes) -> str:
    data = json.loads(body)
    assert set(data) == {"message"}, data  # Docker's error shape, nothing else
    return str(data["message"])


# -- records and the basic lifecycle ---------------------------------------------------------------


def test_create_start_ps_inspect_stop_rm(api: ApiServer) -> None:
    name = _name()
    cid = api.docker("create", "--name", name, "-l", "team=blue", "busybox", "sleep", "300").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    assert _status(api, name) == "created"
    listed = api.docker("ps", "-a", "--filter", f"name={name}", "--format", "{{.Names}}|{{.Status}}").stdout
    assert listed.strip() == f"{name}|Created"
    assert name not in api.docker("ps", "--format", "{{.Names}}").stdout  # not running: only with -a

    api.docker("start", name)
    assert _status(api, name) == "running"
    shown = api.docker(
        "inspect",
        "-f",
        '{{.Name}} {{.State.Running}} {{.Config.Image}} {{index .Config.Labels "team"}}',
        name,
    ).stdout.split()
    assert shown == [f"/{name}", "true", "busybox", "blue"]
    assert int(api.docker("inspect", "-f", "{{.State.Pid}}", name).stdout) > 0
    running = api.docker(
        "ps", "--filter", "label=team=blue", "--format", "{{.ID}} {{.Status}} {{.Command}}"
    ).stdout
    assert running.startswith(cid[:12] + " Up ")
    assert '"sleep 300"' in running

    # The raw list shape, as docker-py and compose read it.
    [entry] = api.get_json(f'/v1.44/containers/json?filters={{"name":["^/{name}$"]}}')
    assert entry["Id"] == cid and entry["Names"] == [f"/{name}"]
    assert entry["State"] == "running" and entry["HostConfig"]["NetworkMode"] == "bridge"
    assert isinstance(entry["Created"], int) and entry["ImageID"].startswith("sha256:")
    assert "bridge" in entry["NetworkSettings"]["Networks"]

    api.docker("start", name)  # already running: Docker answers 304 and the CLI carries on
    api.docker("stop", "-t", "1", name)
    assert _status(api, name) == "exited"
    exited = api.docker("ps", "-a", "--filter", "status=exited", "--format", "{{.Names}} {{.Status}}").stdout
    assert re.search(rf"^{name} Exited \(\d+\) .* ago$", exited, re.M), exited
    status, _, _ = api.request("POST", f"/v1.44/containers/{name}/stop")
    assert status == 304  # already stopped
    api.docker("stop", name)  # and the CLI treats that as success

    api.docker("rm", name)
    assert name not in api.docker("ps", "-a", "--format", "{{.Names}}").stdout


def test_signals_pause_rename_restart_and_wait(api: ApiServer) -> None:
    name, renamed = _name(), _name()
    script = 'trap "exit 7" USR1; while :; do sleep 0.1; done'
    api.docker("run", "-d", "--name", name, "busybox", "sh", "-c", script)
    api.docker("pause", name)
    assert api.docker("inspect", "-f", "{{.State.Status}} {{.State.Paused}}", name).stdout.split() == [
        "paused",
        "true",
    ]
    assert "(Paused)" in api.docker("ps", "--filter", f"name={name}", "--format", "{{.Status}}").stdout
    api.docker("unpause", name)
    api.docker("rename", name, renamed)
    assert _status(api, renamed) == "running"
    assert api.docker("inspect", name, check=False).returncode != 0

    first_start = api.docker("inspect", "-f", "{{.State.StartedAt}}", renamed).stdout
    api.docker("restart", "-t", "1", renamed)
    assert _status(api, renamed) == "running"
    assert api.docker("inspect", "-f", "{{.State.StartedAt}}", renamed).stdout != first_start

    api.docker("kill", "-s", "USR1", renamed)
    assert api.docker("wait", renamed).stdout.strip() == "7"  # the trap's exit code
    assert api.docker("inspect", "-f", "{{.State.ExitCode}}", renamed).stdout.strip() == "7"
    failed = api.docker("kill", renamed, check=False)
    assert failed.returncode != 0 and "not running" in failed.stderr
    status, _, body = api.request("POST", f"/v1.44/containers/{renamed}/kill")
    assert status == 409, body
    api.docker("rm", "-f", renamed)
    assert api.docker("ps", "-aq", "--filter", f"name={renamed}").stdout.strip() == ""


def test_create_carries_the_cli_options_into_inspect(api: ApiServer) -> None:
    name = _name()
    api.docker(
        "create",
        "--name",
        name,
        "-v",
        "/anon",
        "--tmpfs",
        "/scratch:size=1m",
        "-p",
        "127.0.0.1::80",
        "--restart",
        "on-failure:2",
        "-m",
        "32m",
        "--cpus",
        "0.5",
        "-e",
        "GREETING=hi",
        "-w",
        "/tmp",
        "--entrypoint",
        "/bin/sh",
        "busybox",
        "-c",
        "true",
    )
    template = (
        "{{range .Mounts}}{{.Type}}:{{.Destination}} {{end}}|{{.HostConfig.RestartPolicy.Name}}"
        ":{{.HostConfig.RestartPolicy.MaximumRetryCount}}|{{.HostConfig.Memory}}|{{.HostConfig.NanoCpus}}"
        "|{{.Config.WorkingDir}}|{{json .Config.Entrypoint}}|{{json .Config.Cmd}}|{{json .HostConfig.PortBindings}}"
    )
    mounts, restart, memory, cpus, workdir, entrypoint, cmd, ports = (
        api.docker("inspect", "-f", template, name).stdout.strip().split("|")
    )
    assert sorted(mounts.split()) == ["tmpfs:/scratch", "volume:/anon"]
    assert (restart, memory, cpus, workdir) == ("on-failure:2", str(32 << 20), "500000000", "/tmp")
    assert (json.loads(entrypoint), json.loads(cmd)) == (["/bin/sh"], ["-c", "true"])
    assert json.loads(ports)["80/tcp"][0]["HostIp"] == "127.0.0.1"
    env = api.docker("inspect", "-f", "{{json .Config.Env}}", name).stdout
    assert "GREETING=hi" in json.loads(env)
    # docker-py's run() and compose read logs back only from drivers they know.
    assert api.docker("inspect", "-f", "{{.HostConfig.LogConfig.Type}}", name).stdout.strip() == "json-file"


def test_prune_removes_stopped_containers_matching_filters(api: ApiServer) -> None:
    keep, labelled = _name(), _name()
    api.docker("create", "--name", keep, "busybox", "true")
    labelled_id = api.docker(
        "create", "--name", labelled, "-l", "prune=yes", "busybox", "true"
    ).stdout.strip()
    status, _, body = api.request("POST", '/v1.44/containers/prune?filters={"label":["prune=yes"]}')
    assert status == 200, body
    report = json.loads(body)
    assert report["ContainersDeleted"] == [labelled_id]
    assert isinstance(report["SpaceReclaimed"], int)
    # Containers younger than an hour are kept by until=1h.
    api.docker("container", "prune", "-f", "--filter", "until=1h")
    assert keep in api.docker("ps", "-a", "--format", "{{.Names}}").stdout
    api.docker("container", "prune", "-f")
    assert api.docker("ps", "-aq").stdout.strip() == ""
    status, _, body = api.request("POST", '/v1.44/containers/prune?filters={"colour":["red"]}')
    assert status == 400 and "colour" in _message(body)


# -- logs, top, diff, stats ---------------------------------------------------------------------------


def test_logs_follow_tail_since_timestamps_and_separate_streams(api: ApiServer) -> None:
    name = _name()
    script = "echo out1; echo err1 >&2; sleep 1; echo out2"
    api.docker("run", "-d", "--name", name, "busybox", "sh", "-c", script)
    followed = api.docker("logs", "-f", name, timeout=30)  # must end by itself when the container exits
    assert followed.stdout.split() == ["out1", "out2"]
    assert followed.stderr.split() == ["err1"]  # the multiplexed frames keep stderr apart
    assert _status(api, name) == "exited"

    assert api.docker("logs", "--tail", "1", name).stdout == "out2\n"
    stamped = api.docker("logs", "-t", name).stdout.splitlines()
    assert len(stamped) == 2 and all(TIMESTAMP.match(line) for line in stamped), stamped
    future = str(int(time.time()) + 3600)
    later = api.docker("logs", "--since", future, name)
    assert later.stdout == "" and later.stderr == ""
    earlier = api.docker("logs", "--until", "2000-01-01T00:00:00Z", name)
    assert earlier.stdout == ""

    status, headers, body = api.request("GET", f"/v1.44/containers/{name}/logs?stdout=1")
    assert status == 200 and headers["content-type"] == "application/vnd.docker.multiplexed-stream"
    assert body == b"\x01\x00\x00\x00\x00\x00\x00\x05out1\n\x01\x00\x00\x00\x00\x00\x00\x05out2\n"
    status, _, body = api.request("GET", f"/v1.44/containers/{name}/logs")
    assert status == 400 and "stream" in _message(body)

    # With a TTY there is one stream and no frame headers.
    tty = _name()
    api.docker("run", "-d", "-t", "--name", tty, "busybox", "echo", "on-a-tty")
    assert api.docker("wait", tty).stdout.strip() == "0"
    status, headers, body = api.request("GET", f"/v1.44/containers/{tty}/logs?stdout=1&stderr=1")
    assert status == 200 and headers["content-type"] == "application/vnd.docker.raw-stream"
    assert body.startswith(b"on-a-tty"), body


def test_top_diff_and_stats_of_a_running_container(api: ApiServer) -> None:
    name = _name()
    script = "echo x > /added; rm /etc/group; exec sleep 300"
    api.docker("run", "-d", "--name", name, "-m", "64m", "busybox", "sh", "-c", script)
    wait_until(
        lambda: "sleep 300" in api.docker("top", name).stdout, timeout=15, what="top to show the sleep"
    )
    top = api.docker("top", name).stdout.splitlines()
    assert top[0].split()[:3] == ["UID", "PID", "PPID"]

    changes = api.docker("diff", name).stdout.splitlines()
    assert "A /added" in changes and "D /etc/group" in changes and "C /etc" in changes

    line = api.docker(
        "stats", "--no-stream", "--format", "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.PIDs}}", name
    )
    shown_name, cpu, memory, pids = line.stdout.strip().split("|")
    assert shown_name == name
    assert re.fullmatch(r"\d+\.\d\d%", cpu), cpu
    used, limit = (part.strip() for part in memory.split("/"))
    assert limit == "64MiB"  # the container's own limit, not the host's
    assert re.fullmatch(r"[\d.]+(B|KiB|MiB)", used) and not used.startswith("0B"), used
    assert int(pids) >= 1

    status, _, body = api.request("GET", f"/v1.44/containers/{name}/stats?stream=false&one-shot=true")
    sample = json.loads(body)
    assert status == 200 and sample["name"] == f"/{name}"
    assert sample["memory_stats"]["limit"] == 64 << 20 and sample["pids_stats"]["current"] >= 1

    # A streamed stats request yields an object each second until the client hangs up.
    conn = api.connection(timeout=10)
    conn.request("GET", f"/v1.44/containers/{name}/stats")
    response = conn.getresponse()
    first, second = json.loads(response.readline()), json.loads(response.readline())
    assert (
        second["precpu_stats"]["cpu_usage"]["total_usage"] == first["cpu_stats"]["cpu_usage"]["total_usage"]
    )
    status, _, body = api.request("GET", f"/v1.44/containers/{name}/top?ps_args=aux")
    assert status == 400 and "ps_args" in _message(body)

    # Followers (logs -f, wait) of a running container end when their client hangs up.
    baseline = _server_threads(api)
    clients = []
    for path in ("logs?follow=1&stdout=1&stderr=1", "wait", "stats"):
        client = api.connection(timeout=10)
        client.request(method="POST" if path == "wait" else "GET", url=f"/v1.44/containers/{name}/{path}")
        assert client.getresponse().status == 200
        clients.append(client)
    assert _server_threads(api) >= baseline + 3
    for client in clients:
        client.close()
    wait_until(
        lambda: _server_threads(api) <= baseline,
        timeout=15,
        what="the server threads of closed streams to end",
    )

    # ... and stats ends by itself once the container stops.
    api.docker("kill", name)
    rest = response.read()  # the connection's 10 s timeout fails the test if the stream stays open
    conn.close()
    assert rest.count(b"\n") <= 3


# -- run, wait and the published port --------------------------------------------------------------------


def test_wait_next_exit_answers_headers_before_the_container_starts(api: ApiServer) -> None:
    name = _name()
    api.docker("create", "--name", name, "busybox", "sh", "-c", "exit 3")
    conn = api.connection(timeout=30)
    conn.request("POST", f"/v1.44/containers/{name}/wait?condition=next-exit")
    response = conn.getresponse()  # returns at the headers: the container has not even started
    assert response.status == 200
    result: dict[str, object] = {}
    reader = threading.Thread(target=lambda: result.update(json.loads(response.read())))
    reader.start()
    time.sleep(0.3)
    assert not result  # next-exit of a created container waits for a run, not for "not running now"
    api.docker("start", name)
    reader.join(timeout=20)
    conn.close()
    assert result == {"StatusCode": 3, "Error": None}
    # not-running of an exited container answers at once.
    status, _, body = api.request("POST", f"/v1.44/containers/{name}/wait")
    assert (status, json.loads(body)["StatusCode"]) == (200, 3)
    status, _, body = api.request("POST", f"/v1.44/containers/{name}/wait?condition=sometime")
    assert status == 400 and "condition" in _message(body)


def test_run_rm_prints_output_and_leaves_nothing(api: ApiServer) -> None:
    # A non-interactive `docker run` attaches, waits (condition=removed) and starts.
    result = api.docker("run", "--rm", "busybox", "echo", "hi", timeout=60)
    assert result.stdout == "hi\n"
    wait_until(
        lambda: api.docker("ps", "-aq").stdout.strip() == "", timeout=15, what="the --rm container to go"
    )
    # Without --rm it waits for the next exit, and the exit code and stderr reach the caller.
    failed = api.docker("run", "busybox", "sh", "-c", "echo oops >&2; exit 5", check=False, timeout=60)
    assert (failed.returncode, failed.stdout, failed.stderr) == (5, "", "oops\n")
    # A command that cannot be run: the CLI reads the start error's words to exit 127, as with Docker.
    missing = api.docker("run", "-d", "busybox", "/no/such/program", check=False, timeout=60)
    assert missing.returncode == 127, missing.stderr


def test_run_detached_publishes_a_port_on_loopback(api: ApiServer) -> None:
    port = _free_port()
    name = _name()
    script = "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 80 -h /www"
    api.docker("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c", script)
    ports = api.docker("ps", "--filter", f"name={name}", "--format", "{{.Ports}}").stdout.strip()
    assert ports == f"127.0.0.1:{port}->80/tcp"
    answer: list[bytes] = []

    def fetch() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as reply:
                answer.append(reply.read())
                return True
        except OSError:
            return False

    wait_until(fetch, timeout=15, what="httpd to answer on the published port")
    assert answer[-1] == b"hello\n"
    api.docker("rm", "-f", name)


# -- errors in Docker's shape ------------------------------------------------------------------------------


def test_unknown_container_is_404_and_the_cli_says_no_such_object(api: ApiServer) -> None:
    status, headers, body = api.request("GET", "/v1.44/containers/nope/json")
    assert status == 404 and headers["content-type"] == "application/json"
    assert _message(body) == "No such container: nope"
    failed = api.docker("inspect", "nope", check=False)
    assert failed.returncode == 1 and "No such object: nope" in failed.stderr
    for method, path in (
        ("POST", "/containers/nope/start"),
        ("POST", "/containers/nope/wait"),
        ("GET", "/containers/nope/logs?stdout=1"),
        ("GET", "/containers/nope/stats?stream=false"),
        ("DELETE", "/containers/nope"),
    ):
        status, _, body = api.request(method, "/v1.44" + path)
        assert status == 404 and _message(body) == "No such container: nope", (method, path)


def test_create_refuses_bad_bodies_in_docker_shape(api: ApiServer) -> None:
    for body, field in (
        ({"Image": "busybox", "Cmd": 5}, "Cmd"),
        ({"Image": "busybox", "HostConfig": {"Memory": "x"}}, "HostConfig.Memory"),
        ({"Image": "busybox", "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": 80}]}}}, "HostPort"),
    ):
        status, _, data = api.request("POST", "/v1.44/containers/create", body)
        assert status == 400 and field in _message(data), data
    status, _, data = api.request(
        "POST", "/v1.44/containers/create", b"{not json", {"Content-Type": "application/json"}
    )
    assert status == 400 and _message(data)
    status, _, data = api.request("POST", "/v1.44/containers/create", {"Image": "busybox:nope"})
    assert status == 404 and _message(data) == "No such image: busybox:nope"
    # On that 404 the CLI pulls, then creates again (here the pull fails: nothing listens on port 1).
    missing = api.docker("create", "127.0.0.1:1/busybox:nope", check=False, timeout=60)
    assert missing.returncode != 0
    assert "Unable to find image '127.0.0.1:1/busybox:nope' locally" in missing.stderr

    name = _name()
    status, _, data = api.request("POST", f"/v1.44/containers/create?name={name}", {"Image": "busybox"})
    assert status == 201 and json.loads(data)["Warnings"] == []
    status, _, data = api.request("POST", f"/v1.44/containers/create?name={name}", {"Image": "busybox"})
    assert status == 409 and name in _message(data)
    status, _, data = api.request("POST", "/v1.44/containers/create?name=bad%20name", {"Image": "busybox"})
    assert status == 400

    status, _, data = api.request("GET", '/v1.44/containers/json?filters={"colour":["red"]}')
    assert status == 400 and "colour" in _message(data)
    status, _, data = api.request("DELETE", f"/v1.44/containers/{name}?link=1")
    assert status == 400
    status, _, data = api.request("POST", f"/v1.44/containers/{name}/rename")
    assert status == 400 and "name" in _message(data)
    status, _, data = api.request("POST", f"/v1.44/containers/{name}/kill?signal=NOPE")
    assert status == 400 and "NOPE" in _message(data)
