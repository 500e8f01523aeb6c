"""Users and roles: the service both front ends share, the CLI's `berth user …`, and the Users pages."""

from __future__ import annotations

import io
import sys
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from dashboard import policy
from engine.cli.main import main
from engine.errors import AlreadyExists, InvalidArgument, InvalidState
from engine.models import Event
from engine.services import users as user_service
from tests.integration.conftest import USER_PASSWORD

GOOD = "a-perfectly-fine-passw0rd"


def _events(action: str, name: str) -> list[Event]:
    return list(Event.objects.filter(object_type="user", action=action, object_name=name))


@pytest.mark.django_db
def test_create_gives_the_role_and_records_an_event_without_the_password(users: dict[str, Any]) -> None:
    made = user_service.create("dora", GOOD, role="operator")
    assert policy.role_of(get_user_model().objects.get(pk=made.pk)) == "operator"
    (event,) = _events("create", "dora")
    assert event.attributes == {"role": "operator"} and GOOD not in str(event.attributes) + event.message


@pytest.mark.django_db
def test_create_refuses_weak_passwords_taken_names_and_unknown_roles(users: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument, match="too short"):
        user_service.create("erin", "short", role="viewer")
    with pytest.raises(AlreadyExists):
        user_service.create("viewer", GOOD, role="viewer")
    with pytest.raises(InvalidArgument, match="role must be one of"):
        user_service.create("erin", GOOD, role="root")
    assert not get_user_model().objects.filter(username="erin").exists()


@pytest.mark.django_db
def test_set_role_replaces_the_group_and_a_demoted_superuser_loses_the_flag(users: dict[str, Any]) -> None:
    user_service.create("fred", GOOD, role="admin")
    user_service.set_role("admin", "viewer")  # fred is still an admin, so this is allowed
    admin = get_user_model().objects.get(username="admin")
    assert not admin.is_superuser and policy.role_of(admin) == "viewer"
    assert _events("role", "admin")[0].attributes == {"from": "admin", "to": "viewer"}


@pytest.mark.django_db
def test_the_last_active_admin_can_be_neither_demoted_nor_deactivated(users: dict[str, Any]) -> None:
    # Otherwise nobody could manage users from the dashboard any more.
    with pytest.raises(InvalidState, match="last active admin"):
        user_service.set_role("admin", "operator")
    with pytest.raises(InvalidState, match="last active admin"):
        user_service.set_active("admin", False)


@pytest.mark.django_db
def test_cli_user_commands_share_the_service(users: dict[str, Any], monkeypatch: Any, capsys: Any) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(GOOD + "\n"))
    assert main(["user", "create", "gina", "--role", "operator", "--password-stdin"]) == 0
    assert main(["user", "set-role", "gina", "admin"]) == 0
    assert main(["user", "deactivate", "gina"]) == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    assert main(["user", "passwd", "gina", "--password-stdin"]) == 1
    assert main(["user", "ls"]) == 0
    out, err = capsys.readouterr()
    assert "gina is now an admin" in out and "Deactivated gina" in out
    assert err.strip().endswith(
        "password: This password is too short. It must contain at least 12 characters."
    )
    assert "gina       admin      deactivated" in out
    assert {e.actor for e in Event.objects.filter(object_name="gina", object_type="user")} == {
        user_service.events.default_actor()
    }


@pytest.mark.django_db
def test_only_admins_reach_the_users_pages(users: dict[str, Any]) -> None:
    for role in ("viewer", "operator"):
        client = Client()
        client.force_login(users[role])
        assert client.get("/users/").status_code == 403
        assert client.post("/users/viewer/role/", {"role": "admin"}).status_code == 403
    assert policy.role_of(get_user_model().objects.get(username="viewer")) == "viewer"
    client = Client()
    client.force_login(users["admin"])
    assert b"operator" in client.get("/users/").content


@pytest.mark.django_db
def test_own_password_change_shows_one_error_per_field_and_keeps_the_session(users: dict[str, Any]) -> None:
    client = Client()
    client.force_login(users["viewer"])
    response = client.post(
        "/account/password/", {"old_password": "nope", "new_password1": "1234", "new_password2": "1234"}
    )
    assert response.status_code == 400
    form = response.context["form"]
    assert len(form.errors["old_password"]) == 1 and len(form.errors["new_password1"]) == 1
    assert (
        "new_password2" not in form.errors
    )  # Django puts every complaint there; we keep one, on the typed field
    response = client.post(
        "/account/password/",
        {"old_password": USER_PASSWORD, "new_password1": GOOD, "new_password2": GOOD},
    )
    assert response.status_code == 302
    assert client.get("/containers/").status_code == 200  # still signed in
    (event,) = _events("passwd", "viewer")
    assert event.actor == "viewer" and event.attributes == {"reset": False}


async def _revoked_when(user: Any, change: Any) -> int:
    """Open the user's events socket, make `change` (sync), return the socket's close code."""
    from asgiref.sync import sync_to_async
    from channels.testing import WebsocketCommunicator

    from dashboard.asgi import application

    client = Client()
    await sync_to_async(client.force_login)(user)
    headers = [
        (b"origin", b"http://127.0.0.1"),
        (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
    ]
    socket = WebsocketCommunicator(application, "/ws/events/", headers=headers)
    connected, _ = await socket.connect()
    assert connected
    await sync_to_async(change)()
    while True:  # skip the event frames the change itself produced
        output = await socket.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            return int(output["code"])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "change",
    [
        lambda: user_service.set_active("viewer", False),
        lambda: user_service.set_role("viewer", "operator"),
        lambda: user_service.set_password("viewer", GOOD),
    ],
    ids=["deactivate", "set-role", "passwd"],
)
def test_a_users_open_sockets_close_when_their_account_changes(users: dict[str, Any], change: Any) -> None:
    from asgiref.sync import async_to_sync

    # Channels authenticates a socket only when it connects (SECURITY.md web checklist 3).
    assert async_to_sync(_revoked_when)(users["viewer"], change) == 4401
