"""The containers' websockets through Channels' WebsocketCommunicator and the real ASGI application.

Logs, terminal and stats against a real busybox container (root, runc, conmon), and the gate: origin,
login, role and the single-use terminal token are all checked before the socket is accepted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from dashboard.terminals import manager
from engine.models import Container
from tests.conftest import _conmons, require_root
from tests.integration.test_dashboard_containers import fake_image, make_records, remove_all_containers
from tests.polling import wait_until

ORIGIN = b"http://127.0.0.1:8000"
# A line with HTML, a colour, a clipboard-writing OSC 52 and a cursor query, all in one.
HOSTILE = r"<b>bold?</b> \033[31mred\033[0m \033]52;c;ZXZpbA==\007 \033[6n<script>x</script>"


def session_cookie(user: Any) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


@pytest.fixture
def cookies(users: dict[str, Any]) -> dict[str, bytes]:
    """A signed-in session cookie per role (made outside the event loop: it writes the DB)."""
    return {name: session_cookie(user) for name, user in users.items()}


def communicator(
    path: str, cookie: bytes | None = None, origin: bytes | None = ORIGIN
) -> WebsocketCommunicator:
    from dashboard.asgi import application

    headers = [(b"host", b"127.0.0.1:8000")]
    if origin is not None:
        headers.append((b"origin", origin))
    if cookie is not None:
        headers.append((b"cookie", cookie))
    return WebsocketCommunicator(application, path, headers=headers)


def run(coroutine_function: Callable[..., Any], *args: Any) -> Any:
    return async_to_sync(coroutine_function)(*args)


@pytest.fixture
def box(engine_tx: Any) -> Iterator[Container]:
    """A running busybox that wrote a few lines (one of them hostile) and sleeps."""
    require_root()
    from engine.services import bundle, containers, imagetransfer, lifecycle
    from engine.services.options import ContainerOptions

    before = _conmons()
    imagetransfer.seed_busybox()
    script = f"echo first line; echo to stderr >&2; printf '{HOSTILE}\\n'; sleep 300"
    container = containers.create(
        ContainerOptions(image="busybox", name="wsbox", command=("sh", "-c", script))
    )
    lifecycle.start(container.id)
    log = bundle.paths(container.id).log
    wait_until(lambda: log.exists() and log.read_bytes().count(b"\n") >= 3, what="the script's three lines")
    yield container
    remove_all_containers(engine_tx, before)


async def connect(comm: WebsocketCommunicator) -> tuple[bool, int | None]:
    connected, code = await comm.connect(timeout=10)
    return connected, code


async def read_lines(comm: WebsocketCommunicator, want: int, timeout: float = 10) -> list[list[Any]]:
    lines: list[list[Any]] = []
    deadline = time.monotonic() + timeout
    while len(lines) < want and time.monotonic() < deadline:
        frame = json.loads(await comm.receive_from(timeout=timeout))
        if frame["type"] == "lines":
            lines.extend(frame["lines"])
    return lines


async def read_output(
    comm: WebsocketCommunicator, until: bytes, timeout: float = 10
) -> tuple[bytes, list[dict]]:
    """Collect binary output until `until` appears; return it and any JSON frames seen."""
    out = b""
    frames: list[dict] = []
    deadline = time.monotonic() + timeout
    while until not in out and time.monotonic() < deadline:
        message = await comm.receive_output(timeout=timeout)
        if message["type"] == "websocket.close":
            frames.append({"type": "closed", "code": message.get("code")})
            break
        if message.get("bytes") is not None:
            out += message["bytes"]
        elif message.get("text") is not None:
            frames.append(json.loads(message["text"]))
    return out, frames


async def read_json(comm: WebsocketCommunicator, timeout: float = 10) -> dict:
    """The next JSON frame, skipping terminal output (a prompt may still be on its way)."""
    while True:
        message = await comm.receive_output(timeout=timeout)
        if message.get("text") is not None:
            return json.loads(message["text"])
        if message["type"] == "websocket.close":
            return {"type": "closed", "code": message.get("code")}


# ---------- the gate ----------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["logs", "stats", "terminal"])
def test_anonymous_sockets_are_refused(users: dict[str, Any], cookies: dict[str, bytes], kind: str) -> None:
    (row,) = make_records(1, image=fake_image())

    async def scenario() -> None:
        comm = communicator(f"/ws/containers/{row.id}/{kind}/")
        assert await connect(comm) == (False, 4401)

    run(scenario)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "origin",
    [None, b"null", b"https://evil.example", b"http://127.0.0.1.evil.example", b"http://localhost.evil"],
)
def test_sockets_with_a_missing_null_or_foreign_origin_are_refused(
    users: dict[str, Any], cookies: dict[str, bytes], origin: Any
) -> None:
    (row,) = make_records(1, image=fake_image())

    async def scenario() -> None:
        comm = communicator(f"/ws/containers/{row.id}/logs/", cookies["admin"], origin=origin)
        connected, _ = await connect(comm)
        assert not connected

    run(scenario)


@pytest.mark.django_db(transaction=True)
def test_an_unknown_container_is_refused_with_4404(users: dict[str, Any], cookies: dict[str, bytes]) -> None:
    async def scenario() -> None:
        comm = communicator("/ws/containers/nosuchcontainer/logs/", cookies["viewer"])
        assert await connect(comm) == (False, 4404)

    run(scenario)


@pytest.mark.django_db(transaction=True)
def test_a_viewer_cannot_open_a_terminal_even_with_a_token(
    users: dict[str, Any], cookies: dict[str, bytes]
) -> None:
    (row,) = make_records(1, image=fake_image())
    token = manager.issue(user_id=users["viewer"].pk, container_id=row.id, command=("/bin/sh",))

    async def scenario() -> None:
        comm = communicator(f"/ws/containers/{row.id}/terminal/?token={token}", cookies["viewer"])
        assert await connect(comm) == (False, 4403)

    run(scenario)
    # The role is checked before the token: a viewer's refused attempt does not even spend it.
    assert manager.redeem(token, user_id=users["viewer"].pk, container_id=row.id)


@pytest.mark.django_db(transaction=True)
def test_a_terminal_without_a_token_is_refused(users: dict[str, Any], cookies: dict[str, bytes]) -> None:
    (row,) = make_records(1, image=fake_image())

    async def scenario() -> None:
        comm = communicator(f"/ws/containers/{row.id}/terminal/", cookies["operator"])
        assert await connect(comm) == (False, 4403)

    run(scenario)


# ---------- logs ----------


@pytest.mark.root
def test_log_lines_arrive_with_streams_and_whitelisted_colours(
    users: dict[str, Any], cookies: dict[str, bytes], box: Container
) -> None:
    async def scenario() -> list[list[Any]]:
        comm = communicator(f"/ws/containers/{box.id}/logs/?tail=100", cookies["viewer"])
        assert (await connect(comm))[0]
        lines = await read_lines(comm, 3)
        await comm.disconnect()
        return lines

    lines = run(scenario)
    by_text = {json.dumps(text): (stream, text) for _, stream, text in lines}
    assert by_text[json.dumps("first line")][0] == "stdout"
    assert by_text[json.dumps("to stderr")][0] == "stderr"
    (hostile,) = [text for _, _, text in lines if isinstance(text, list)]
    # HTML stays literal text for the client's textContent; the colour is a class; OSC 52 and the
    # cursor query are gone.
    assert hostile == [["<b>bold?</b> ", ""], ["red", "ansi-f1"], ["  <script>x</script>", ""]]


@pytest.mark.root
def test_new_log_lines_follow_live(users: dict[str, Any], cookies: dict[str, bytes], box: Container) -> None:
    from engine.services import execs

    def write_from_inside() -> None:
        # PID 1's stdout is the log pipe: an exec can write a "new" line through it.
        execs.run_attached(box.id, execs.ExecRequest(command=("sh", "-c", "echo live line > /proc/1/fd/1")))

    async def scenario() -> list[list[Any]]:
        comm = communicator(f"/ws/containers/{box.id}/logs/?tail=0", cookies["viewer"])
        assert (await connect(comm))[0]
        await sync_to_async(write_from_inside)()
        lines = await read_lines(comm, 1)
        await comm.disconnect()
        return lines

    lines = run(scenario)
    assert [text for _, _, text in lines] == ["live line"]


# ---------- terminal ----------


def _token(client: Client, container: Container) -> str:
    response = client.post(f"/containers/{container.id}/terminal/token/", {"command": "/bin/sh"})
    assert response.status_code == 200, response.content
    return response.json()["token"]


@pytest.mark.root
def test_terminal_round_trip_resize_and_exit(
    users: dict[str, Any], cookies: dict[str, bytes], box: Container
) -> None:
    client = Client()
    client.force_login(users["operator"])
    token = _token(client, box)

    async def scenario() -> None:
        comm = communicator(f"/ws/containers/{box.id}/terminal/?token={token}", cookies["operator"])
        assert (await connect(comm))[0]
        assert (await read_json(comm))["type"] == "ready"
        await comm.send_to(text_data=json.dumps({"type": "stdin", "data": "echo $((6*7))\r"}))
        out, _ = await read_output(comm, b"42\r\n")
        assert b"42\r\n" in out
        await comm.send_to(text_data=json.dumps({"type": "resize", "rows": 33, "cols": 101}))
        await comm.send_to(text_data=json.dumps({"type": "stdin", "data": "stty size\r"}))
        out, _ = await read_output(comm, b"33 101")
        assert b"33 101" in out
        await comm.send_to(text_data=json.dumps({"type": "resize", "rows": 70000, "cols": 0}))
        frame = await read_json(comm)
        assert frame["type"] == "error" and "65535" in frame["message"]
        await comm.send_to(text_data=json.dumps({"type": "stdin", "data": "exit 3\r"}))
        _, frames = await read_output(comm, b"\x00never", timeout=10)
        assert {"type": "exit", "code": 3} in frames
        assert frames[-1] == {"type": "closed", "code": 1000}

    run(scenario)
    assert manager.sessions(user_id=users["operator"].pk) == []


@pytest.mark.root
def test_terminal_token_is_refused_on_second_use(
    users: dict[str, Any], cookies: dict[str, bytes], box: Container
) -> None:
    client = Client()
    client.force_login(users["operator"])
    token = _token(client, box)

    async def scenario() -> None:
        first = communicator(f"/ws/containers/{box.id}/terminal/?token={token}", cookies["operator"])
        assert (await connect(first))[0]
        await first.disconnect()
        second = communicator(f"/ws/containers/{box.id}/terminal/?token={token}", cookies["operator"])
        assert await connect(second) == (False, 4403)

    run(scenario)


@pytest.mark.root
def test_terminal_token_is_refused_for_another_user(
    users: dict[str, Any], cookies: dict[str, bytes], box: Container
) -> None:
    client = Client()
    client.force_login(users["operator"])
    token = _token(client, box)

    async def scenario() -> None:
        comm = communicator(f"/ws/containers/{box.id}/terminal/?token={token}", cookies["admin"])
        assert await connect(comm) == (False, 4403)

    run(scenario)


@pytest.mark.root
def test_terminal_refuses_oversized_frames(
    users: dict[str, Any], cookies: dict[str, bytes], box: Container
) -> None:
    client = Client()
    client.force_login(users["operator"])
    token = _token(client, box)

    async def scenario() -> None:
        comm = communicator(f"/ws/containers/{box.id}/terminal/?token={token}", cookies["operator"])
        assert (await connect(comm))[0]
        assert (await read_json(comm))["type"] == "ready"
        await comm.send_to(text_data=json.dumps({"type": "stdin", "data": "x" * 70_000}))
        _, frames = await read_output(comm, b"\x00never")
        assert {"type": "closed", "code": 1009} in frames

    run(scenario)


# ---------- stats ----------


@pytest.mark.root
def test_stats_arrive_once_a_second_with_rates(
    users: dict[str, Any], cookies: dict[str, bytes], box: Container
) -> None:
    async def scenario() -> list[dict]:
        comm = communicator(f"/ws/containers/{box.id}/stats/", cookies["viewer"])
        assert (await connect(comm))[0]
        frames = [json.loads(await comm.receive_from(timeout=5)) for _ in range(2)]
        await comm.disconnect()
        return frames

    first, second = run(scenario)
    assert first["type"] == second["type"] == "stats"
    assert first["memory"] > 0 and first["memory_limit"] > 0
    assert first["cpu_percent"] is None and second["cpu_percent"] is not None
    assert 0.8 < second["time"] - first["time"] < 2
