"""Pages miss no event between their render and their socket (issue 9's live state), and a user's
change made in another process closes their open sockets (SECURITY.md web checklist 3).

The page's HTML carries the newest event id of its render; the events socket opened with ?after=
replays what came since. The server's monitor follows the events table and closes the sockets of a
user whose deactivation, role or password change it sees, whichever process recorded it.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from dashboard.consumers.events import REPLAY_LIMIT
from dashboard.monitor import Monitor
from engine import events
from engine.models import Event
from engine.services import users as user_service

ORIGIN = (b"origin", b"http://127.0.0.1:8000")
GOOD = "a-perfectly-fine-passw0rd"


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def socket(client: Client, path: str = "/ws/events/") -> WebsocketCommunicator:
    from dashboard.asgi import application

    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    return WebsocketCommunicator(
        application, path, headers=[(b"host", b"127.0.0.1:8000"), ORIGIN, (b"cookie", cookie)]
    )


def quiet_monitor() -> Monitor:
    """A monitor from the newest event on, with its maintenance (health monitor, sampler) not due."""
    monitor = Monitor()
    monitor._last_maintain = time.monotonic()
    return monitor


def cursor_of_page(client: Client, url: str = "/containers/") -> int:
    html = client.get(url).content.decode()
    found = re.findall(r'<script[^>]*/js/live\.js"[^>]*data-live-after="(\d+)"', html)
    assert len(found) == 1, "the page must carry its events cursor on live.js's tag, once"
    return int(found[0])


@pytest.mark.django_db(transaction=True)
def test_an_event_written_after_the_render_reaches_a_socket_opened_later(users: dict[str, Any]) -> None:
    client = signed_in(users["admin"])
    before = events.record("volume", "create", object_id="v0", object_name="v0")
    after = cursor_of_page(client)
    assert after == before.pk  # the newest event when the page was read
    user_service.create("dora", GOOD, role="viewer")  # a real service writes its event in the gap

    async def first_frame() -> dict[str, Any]:
        ws = socket(client, f"/ws/events/?after={after}")
        connected, _ = await ws.connect()
        assert connected
        frame = await ws.receive_json_from(timeout=5)
        await ws.disconnect()
        return frame

    frame = async_to_sync(first_frame)()
    # Without the replay the socket would wait for the next event and the page would stay stale.
    assert (frame["type"], frame["object_type"], frame["action"], frame["object_name"]) == (
        "event",
        "user",
        "create",
        "dora",
    )
    assert frame["id"] > after


@pytest.mark.django_db(transaction=True)
def test_an_event_both_replayed_and_published_is_sent_once(users: dict[str, Any]) -> None:
    client = signed_in(users["admin"])
    monitor = quiet_monitor()
    after = monitor.last_event_id
    first = events.record("volume", "create", object_id="v1", object_name="v1")

    async def scenario() -> list[int]:
        ws = socket(client, f"/ws/events/?after={after}")
        assert (await ws.connect())[0]
        seen = [(await ws.receive_json_from(timeout=5))["id"]]
        await sync_to_async(monitor.step)()  # the monitor publishes the same event to the group
        second = await sync_to_async(events.record)("volume", "remove", object_id="v1", object_name="v1")
        await sync_to_async(monitor.step)()
        seen.append((await ws.receive_json_from(timeout=5))["id"])
        assert second.pk == seen[-1]
        assert await ws.receive_nothing(timeout=0.3)
        await ws.disconnect()
        return seen

    # The first event once (replay), then the next one live: a duplicate would come second.
    assert async_to_sync(scenario)() == [first.pk, first.pk + 1]


@pytest.mark.django_db(transaction=True)
def test_more_missed_events_than_the_replay_holds_ask_the_page_to_resync(users: dict[str, Any]) -> None:
    client = signed_in(users["admin"])
    after = cursor_of_page(client)
    Event.objects.bulk_create(
        Event(actor="cli:test", object_type="volume", action="create", object_name=f"v{i}")
        for i in range(REPLAY_LIMIT + 1)
    )
    newest = Event.objects.order_by("-id").first().pk

    async def frames() -> list[dict[str, Any]]:
        ws = socket(client, f"/ws/events/?after={after}")
        assert (await ws.connect())[0]
        got = [await ws.receive_json_from(timeout=5) for _ in range(REPLAY_LIMIT + 1)]
        await ws.disconnect()
        return got

    got = async_to_sync(frames)()
    assert got[0] == {"type": "resync", "newest": newest}  # the page fetches every live part again
    replayed = [frame["id"] for frame in got[1:]]
    assert replayed == list(range(newest - REPLAY_LIMIT + 1, newest + 1))  # the newest, in order


@pytest.mark.django_db(transaction=True)
def test_a_bad_cursor_gets_one_error_frame_and_close_4400(users: dict[str, Any]) -> None:
    client = signed_in(users["admin"])

    async def answer() -> tuple[dict[str, Any], int]:
        ws = socket(client, "/ws/events/?after=12x")
        assert (await ws.connect())[0]
        frame = await ws.receive_json_from(timeout=5)
        closed = await ws.receive_output(timeout=5)
        return frame, int(closed["code"])

    frame, code = async_to_sync(answer)()
    assert frame == {"type": "error", "message": "after must be an event id (a whole number), not '12x'"}
    assert code == 4400


async def _close_code_after(client: Client, change: Any, monitor: Monitor) -> int | None:
    """Open the events socket, run `change` then one monitor step (both sync); the close code or None."""
    ws = socket(client)
    assert (await ws.connect())[0]
    await sync_to_async(change)()
    await sync_to_async(monitor.step)()
    while True:
        if await ws.receive_nothing(timeout=1.5):
            await ws.disconnect()  # raises if the consumer crashed meanwhile
            return None
        output = await ws.receive_output(timeout=1)
        if output["type"] == "websocket.close":
            await ws.disconnect()  # raises if the consumer crashed meanwhile
            return int(output["code"])


def _recorded_elsewhere(action: str, user: Any) -> Any:
    """What the CLI's `berth user …` leaves for this server: the event row, and no in-process send."""
    return lambda: events.record("user", action, object_id=str(user.pk), object_name=user.username)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("action", ["deactivate", "role", "passwd"])
def test_the_monitor_closes_the_sockets_of_a_user_changed_by_another_process(
    users: dict[str, Any], action: str
) -> None:
    viewer = users["viewer"]
    code = async_to_sync(_close_code_after)(
        signed_in(viewer), _recorded_elsewhere(action, viewer), quiet_monitor()
    )
    assert code == 4401


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("action", ["activate", "create"])
def test_the_monitor_leaves_sockets_open_for_changes_that_take_nothing_away(
    users: dict[str, Any], action: str
) -> None:
    viewer = users["viewer"]
    code = async_to_sync(_close_code_after)(
        signed_in(viewer), _recorded_elsewhere(action, viewer), quiet_monitor()
    )
    assert code is None


@pytest.mark.django_db(transaction=True)
def test_a_second_close_from_the_monitor_after_the_in_process_one_is_harmless(users: dict[str, Any]) -> None:
    # The web process closes the sockets itself, then its monitor sees the event and closes them again.
    viewer = users["viewer"]
    code = async_to_sync(_close_code_after)(
        signed_in(viewer), lambda: user_service.set_active("viewer", False), quiet_monitor()
    )
    assert code == 4401
