"""The server itself: versions, headers, error shape, peers, and the protocol edge cases."""

from __future__ import annotations

import json
import socket
import subprocess

from tests.api.conftest import ApiServer


def test_ping_advertises_api_and_builder(api: ApiServer) -> None:
    status, headers, body = api.request("GET", "/_ping")
    assert (status, body) == (200, b"OK")
    assert headers["api-version"] == "1.44"
    assert headers["builder-version"] == "1"


def test_version_prefix_accepted_and_bounded(api: ApiServer) -> None:
    assert api.get_json("/v1.24/version")["ApiVersion"] == "1.44"
    assert api.get_json("/v1.44/version")["MinAPIVersion"] == "1.24"
    status, headers, body = api.request("GET", "/v1.12/version")
    assert status == 400 and headers["content-type"] == "application/json"
    assert "too old" in json.loads(body)["message"]
    status, _, body = api.request("GET", "/v1.99/version")
    assert status == 400 and "too new" in json.loads(body)["message"]


def test_unknown_path_is_404_in_docker_shape(api: ApiServer) -> None:
    status, headers, body = api.request("GET", "/v1.44/no/such/thing")
    assert status == 404
    assert headers["content-type"] == "application/json"
    assert set(json.loads(body)) == {"message"}


def test_swarm_answers_503_and_docker_cli_carries_on(api: ApiServer) -> None:
    status, _, body = api.request("GET", "/swarm")
    assert status == 503 and "swarm" in json.loads(body)["message"]
    assert api.docker("version", "--format", "{{.Server.APIVersion}}").stdout.strip() == "1.44"


def test_huge_header_is_refused_not_hung(api: ApiServer) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(api.socket))
        sock.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n")
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 431"), reply[:100]


def test_garbage_request_line_gets_400(api: ApiServer) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(api.socket))
        sock.sendall(b"\x00\x01 nonsense\r\n\r\n")
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 400"), reply[:100]


def test_keep_alive_serves_several_requests_on_one_connection(api: ApiServer) -> None:
    conn = api.connection()
    try:
        for _ in range(3):
            conn.request("GET", "/_ping")
            response = conn.getresponse()
            assert response.read() == b"OK"
    finally:
        conn.close()


def test_socket_mode_is_0660(api: ApiServer) -> None:
    assert api.socket.stat().st_mode & 0o777 == 0o660


def test_every_change_is_recorded_with_the_callers_uid(api: ApiServer) -> None:
    api.docker("volume", "create", "auditvol")
    status, _, _ = api.request("DELETE", "/v1.44/networks/no-such-network")
    assert status == 404
    api.docker("volume", "rm", "auditvol")
    lines = api.berth("events", "--format", "json", "--filter", "type=volume").stdout.splitlines()
    mine = [json.loads(line) for line in lines if "auditvol" in line]
    assert {(e["Action"], e["User"]) for e in mine} >= {("create", "api:0"), ("remove", "api:0")}, mine


UNPRIVILEGED_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"GET /_ping HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
print(s.recv(4096).split(b"\\r\\n")[0].decode())
"""


def _as_nobody(socket_path: str) -> subprocess.CompletedProcess[str]:
    """Run the tiny client as uid/gid 65534 with no supplementary groups."""
    return subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
            UNPRIVILEGED_CLIENT,
            socket_path,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_only_root_and_the_berth_group_may_connect(api: ApiServer) -> None:
    """File modes keep others out; the server checks the caller's credentials as a second lock."""
    run_mode = api.run.stat().st_mode & 0o777
    try:
        api.run.chmod(0o755)
        api.socket.chmod(0o666)  # as if someone loosened the socket by mistake
        reply = _as_nobody(str(api.socket)).stdout.strip()
        assert reply.startswith("HTTP/1.1 403"), reply
        api.socket.chmod(0o660)
        denied = _as_nobody(str(api.socket))
        assert denied.returncode != 0 and "PermissionError" in denied.stderr
    finally:
        api.socket.chmod(0o660)
        api.run.chmod(run_mode)
