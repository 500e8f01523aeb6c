"""Walk every URL and websocket route as an anonymous user and as a viewer.

Nobody anonymous gets past login anywhere (except the login page itself), and a viewer can change
nothing: every POST is refused before it reaches the engine, and the terminal socket is refused.
The routes are enumerated from the resolver, so a new page is checked without editing this test.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from dashboard import policy
from dashboard.routing import websocket_urlpatterns
from engine.models import Event
from engine.services import containers, system, volumes
from engine.services.options import ContainerOptions

PUBLIC = {"login", "logout", "admin/login", "favicon"}  # favicon: a redirect to a static file
# Pages every signed-in user may POST to because they change only that user's own account; an empty
# form is a 400 there, not a refusal.
SELF_SERVICE = {"account_password"}
ORIGIN = (b"origin", b"http://127.0.0.1")


def _patterns(resolver: URLResolver, prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            if "admin" in str(entry.pattern):
                continue  # Django's admin has its own staff gate, checked below
            yield from _patterns(entry, prefix + str(entry.pattern))
        else:
            yield prefix + str(entry.pattern), entry


def _value(name: str, conv: str, objects: dict[str, str]) -> str:
    value = "x"
    for kind, ident in objects.items():
        if kind in name:
            value = ident
    if conv == "uuid" or name == "job_id":
        value = objects.get("job", str(uuid.uuid4()))
    if conv == "int":
        value = "1"
    return value


def _fill(route: str, objects: dict[str, str]) -> str:
    """Replace <conv:name> parts (and regex groups) with a real object's id where the name says which kind."""
    route = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: _value(m.group(1), "", objects), route)
    out = ""
    rest = route
    while "<" in rest:
        head, _, tail = rest.partition("<")
        spec, _, rest = tail.partition(">")
        conv, _, name = spec.rpartition(":")
        out += head + _value(name, conv, objects)
    return "/" + (out + rest).lstrip("^").rstrip("$").lstrip("/")


@pytest.fixture
def world(engine):  # type: ignore[no-untyped-def]
    image = system.seed()
    volume = volumes.create("walkvol")
    container = containers.create(ContainerOptions(image="busybox", name="walkc", command=("true",)))
    policy.ensure_groups()
    users = get_user_model()
    viewer = users.objects.create_user("walker", password="a-long-password-1")
    viewer.groups.add(Group.objects.get(name="viewers"))
    objects = {
        "image": image.id.removeprefix("sha256:"),
        "volume": volume.name,
        "name": volume.name,
        "ref": container.id,
        "container": container.id,
        "action": "stop",  # a real action, so the refusal is the permission check and not a 400
    }
    return {"objects": objects, "viewer": viewer}


def _urls(objects: dict[str, str]) -> list[tuple[str, str]]:
    urls = []
    for route, pattern in _patterns(get_resolver()):
        name = pattern.name or route
        if name in PUBLIC or route.startswith("admin/login"):
            continue
        urls.append((name, _fill(route, objects)))
    return urls


def test_every_page_sends_an_anonymous_visitor_to_login(world) -> None:  # type: ignore[no-untyped-def]
    client = Client()
    for name, url in _urls(world["objects"]):
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            # Anything but a redirect to login (or a refusal) would leak a page or run an action.
            assert response.status_code in (302, 403, 405), (
                f"{method.upper()} {url} ({name}): {response.status_code}"
            )
            if response.status_code == 302:
                assert response["Location"].startswith("/login/"), (
                    f"{url} redirects to {response['Location']}"
                )


def test_a_viewer_can_change_nothing(world) -> None:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(world["viewer"])
    before = Event.objects.filter(result="ok").count()
    for name, url in _urls(world["objects"]):
        response = client.post(url)
        if name in SELF_SERVICE:
            assert response.status_code == 400, f"POST {url} ({name}) with no form: {response.status_code}"
            continue
        assert response.status_code in (403, 404, 405), (
            f"POST {url} ({name}) as a viewer: {response.status_code}"
        )
    # No refused request reached the engine: nothing succeeded; the refusals are logged as errors.
    assert Event.objects.filter(result="ok").count() == before
    assert Event.objects.filter(result="error", actor="walker").exists()


def test_a_viewer_cannot_open_the_admin(world) -> None:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(world["viewer"])
    response = client.get("/admin/")
    assert response.status_code == 302 and "login" in response["Location"]


async def _connect(path: str, user=None, origin=ORIGIN):  # type: ignore[no-untyped-def]
    from dashboard.asgi import application

    headers = [origin] if origin else []
    communicator = WebsocketCommunicator(application, path, headers=headers)
    if user is not None:
        # AuthMiddlewareStack reads the session cookie; log in through a real session.
        client = Client()
        await _force_login(client, user)
        cookie = client.cookies["sessionid"].value
        communicator.scope["headers"].append((b"cookie", f"sessionid={cookie}".encode()))
    connected, code = await communicator.connect()
    await communicator.disconnect()
    return connected, code


async def _force_login(client: Client, user) -> None:  # type: ignore[no-untyped-def]
    await sync_to_async(client.force_login)(user)


def _socket_paths(objects: dict[str, str]) -> list[str]:
    return [_fill(str(p.pattern), objects) for p in websocket_urlpatterns]


@pytest.mark.django_db(transaction=True)
def test_every_socket_refuses_an_anonymous_visitor(world) -> None:  # type: ignore[no-untyped-def]
    for path in _socket_paths(world["objects"]):
        connected, _ = async_to_sync(_connect)(path)
        assert not connected, f"{path} accepted an anonymous socket"


@pytest.mark.django_db(transaction=True)
def test_every_socket_refuses_a_foreign_origin(world) -> None:  # type: ignore[no-untyped-def]
    origins = (
        (b"origin", b"https://evil.example"),
        (b"origin", b"null"),
        (b"origin", b"http://127.0.0.1.evil.example"),
        None,
    )
    for origin in origins:
        for path in _socket_paths(world["objects"]):
            connected, _ = async_to_sync(_connect)(path, world["viewer"], origin=origin)
            assert not connected, f"{path} accepted origin {origin}"


@pytest.mark.django_db(transaction=True)
def test_a_viewer_may_follow_events_but_not_open_a_terminal(world) -> None:  # type: ignore[no-untyped-def]
    # The control case: the same viewer and origin are accepted where reading is allowed.
    connected, _ = async_to_sync(_connect)("/ws/events/", world["viewer"])
    assert connected
    terminal = next(p for p in _socket_paths(world["objects"]) if "terminal" in p)
    connected, _ = async_to_sync(_connect)(terminal, world["viewer"])
    assert not connected
