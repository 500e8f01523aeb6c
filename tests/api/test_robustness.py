"""Hostile and careless clients: every endpoint answers bad input with a 4xx in Docker's shape.

Never a 500, a traceback or a hung connection; and many long streams at once lose nothing.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import time

import pytest

from engine.api import router
from tests.api.conftest import ApiServer
from tests.polling import settle

MALFORMED_BODIES: list[bytes] = [
    b"{",
    b"[]",
    b"null",
    b'"text"',
    b'{"Image": 5, "Cmd": {"a": 1}, "HostConfig": "x", "Name": [], "Labels": 3, "Driver": 7}',
    b'{"Memory": "lots", "NanoCpus": "x", "PortBindings": 5, "Env": "A=B", "IPAM": 1}',
    b"\xff\xfe\x00garbage",
]


def _routes() -> list[tuple[str, str]]:
    """Every (method, concrete path) the server knows, with unknown ids in the parameters."""
    router.ensure_loaded()
    walked = []
    for entry in router._routes:
        template = entry.pattern.pattern.strip("^$")
        path = re.sub(r"\(\?P<\w+>[^)]*\)", "nosuch0000", template).replace("\\", "")
        walked.append((entry.method, path))
    return walked


def _check_error_shape(method: str, path: str, status: int, headers: dict[str, str], body: bytes) -> None:
    where = f"{method} {path} → {status} {body[:200]!r}"
    assert status != 500, where
    if status >= 400 and method != "HEAD":  # a HEAD answer has no body to carry the message
        assert headers.get("content-type") == "application/json", where
        assert isinstance(json.loads(body).get("message"), str), where


def test_every_endpoint_refuses_malformed_bodies_and_unknown_ids(api: ApiServer) -> None:
    routes = _routes()
    assert len(routes) > 60, "the walk must cover the whole API"
    for method, path in routes:
        if path.startswith(("/swarm", "/nodes", "/services", "/tasks", "/secrets", "/configs")):
            continue
        if path == "/events":
            path += "?since=1&until=2"  # without an end, the event stream rightly never ends
        bodies: list[bytes | None] = [None] if method in ("GET", "HEAD", "DELETE") else MALFORMED_BODIES
        for body in bodies:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            try:
                status, got_headers, data = api.request(
                    method, f"/v1.44{path}", body=body, headers=headers, timeout=20
                )
            except OSError as exc:
                raise AssertionError(f"{method} {path} with {body!r}: {exc!r}") from exc
            _check_error_shape(method, path, status, got_headers, data)


@pytest.mark.parametrize(
    "path",
    [
        "/v1.44/containers/create?name=" + "x" * 300,
        "/v1.44/containers/json?filters=%7Bnot-json",
        "/v1.44/containers/json?filters=%5B1%2C2%5D",
        "/v1.44/images/json?filters=%7B%22dangling%22%3A5%7D",
        "/v1.44/containers/json?limit=abc",
        "/v1.44/events?since=yesterday",
    ],
)
def test_wrong_query_values_are_400(api: ApiServer, path: str) -> None:
    method = "POST" if "create" in path else "GET"
    status, headers, data = api.request(method, path, body=b"{}" if method == "POST" else None, timeout=20)
    assert 400 <= status < 500, (path, status, data)
    assert headers["content-type"] == "application/json"
    assert json.loads(data)["message"]


@pytest.mark.parametrize("path", ["/v1.44/images/load", "/v1.44/build?t=trunc:1", "/v1.44/containers/create"])
def test_truncated_upload_is_refused_without_hanging(api: ApiServer, path: str) -> None:
    """The client promises 100,000 bytes, sends 100 and closes its side: a 4xx, then the connection ends."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(20)
        sock.connect(str(api.socket))
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: api.moby.localhost\r\nContent-Type: application/x-tar\r\n"
            "Content-Length: 100000\r\n\r\n".encode()
            + b"\x1f" * 100
        )
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    status_line = reply.split(b"\r\n", 1)[0]
    assert re.match(rb"HTTP/1\.1 4\d\d ", status_line), reply[:300]
    assert b'"message"' in reply


def test_a_silent_client_does_not_block_others(api: ApiServer) -> None:
    """A connection that sends half a request head and stalls ties up only itself."""
    stalled = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        stalled.connect(str(api.socket))
        stalled.sendall(b"POST /v1.44/containers/create HTTP/1.1\r\nHost: x\r\nContent-Le")
        started = time.monotonic()
        status, _, body = api.request("GET", "/_ping", timeout=10)
        assert (status, body) == (200, b"OK")
        assert time.monotonic() - started < 5
    finally:
        stalled.close()


_open_connections: list[socket.socket] = []


def _follow(
    api: ApiServer, path: str, into: list[bytes], ready: threading.Event, done: threading.Event
) -> None:
    conn = api.connection(timeout=120)
    try:
        conn.connect()
        _open_connections.append(conn.sock)
        conn.request("GET", path)
        response = conn.getresponse()
        ready.set()
        while not done.is_set():
            chunk = response.read1(65536) if hasattr(response, "read1") else response.read(65536)
            if not chunk:
                return
            into.append(chunk)
    except (OSError, http.client.HTTPException):
        return  # the test shuts the stream down when it is done
    finally:
        conn.close()


def _demux(data: bytes) -> bytes:
    out = bytearray()
    position = 0
    while position + 8 <= len(data):
        size = int.from_bytes(data[position + 4 : position + 8], "big")
        out += data[position + 8 : position + 8 + size]
        position += 8 + size
    return bytes(out)


def test_fifty_concurrent_streams_lose_nothing(api: ApiServer) -> None:
    lines = 2000
    # Following a container that never started ends at once (as in Docker): start it, then talk.
    script = f"sleep 2; i=0; while [ $i -lt {lines} ]; do i=$((i+1)); echo line$i; done"
    since = int(time.time()) - 1
    talker = api.docker("run", "-d", "--network", "none", "busybox", "sh", "-c", script).stdout.strip()
    logs: list[list[bytes]] = [[] for _ in range(25)]
    event_streams: list[list[bytes]] = [[] for _ in range(25)]
    done = threading.Event()
    threads = []
    readies = []
    for buffer in logs:
        ready = threading.Event()
        readies.append(ready)
        path = f"/v1.44/containers/{talker}/logs?follow=1&stdout=1&stderr=1"
        threads.append(threading.Thread(target=_follow, args=(api, path, buffer, ready, done), daemon=True))
    for buffer in event_streams:
        ready = threading.Event()
        readies.append(ready)
        path = f"/v1.44/events?since={since}&filters=%7B%22type%22%3A%5B%22container%22%5D%7D"
        threads.append(threading.Thread(target=_follow, args=(api, path, buffer, ready, done), daemon=True))
    for thread in threads:
        thread.start()
    try:
        for ready in readies:
            assert ready.wait(30), "a stream did not get its response head"
        churn = [
            api.docker("run", "-d", "--network", "none", "busybox", "sleep", "30").stdout.strip()
            for _ in range(3)
        ]
        api.docker("stop", "-t", "1", *churn)
        api.docker("wait", talker)
        expected = "".join(f"line{i}\n" for i in range(1, lines + 1)).encode()

        def delivered() -> bool:
            logs_done = all(_demux(b"".join(buffer)) == expected for buffer in logs)
            events_done = all(
                sum(b"".join(buffer).count(f'"{c}"'.encode()) and 1 for c in churn) == len(churn)
                and b"".join(buffer).count(b'"die"') >= len(churn) + 1
                for buffer in event_streams
            )
            return logs_done and events_done

        settle(delivered, timeout=60, interval=0.2)  # the asserts below say what is missing
        for buffer in logs:
            assert _demux(b"".join(buffer)) == expected
        for buffer in event_streams:
            text = b"".join(buffer)
            for container in churn:
                assert container.encode() in text
            assert text.count(b'"die"') >= len(churn) + 1
    finally:
        done.set()
        for sock in _open_connections:  # the event streams never end by themselves
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in threads:
            thread.join(timeout=10)
        _open_connections.clear()
