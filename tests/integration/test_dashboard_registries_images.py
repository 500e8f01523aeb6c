"""The registries page, the Run form's pull offer, Export and Commit through Django's test client:
who may do what, what is shown (never a password), and what is recorded. The flows themselves, against
a real registry and real containers, are in tests/e2e/test_registries_images.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine import conf
from engine.models import Event
from engine.registry.auth import Credentials, CredentialStore
from tests.integration.test_dashboard_containers import client_for, make_records, run_form

SECRET = "never-shown-s3cret"


def store_login(server: str, username: str) -> None:
    CredentialStore(conf.root() / "auth.json").put(server, Credentials(username, SECRET))


@pytest.mark.django_db
def test_the_list_shows_registries_and_users_but_never_a_password(
    users: dict[str, Any], engine: Path
) -> None:
    store_login("registry.example.com:5000", "alice")
    body = client_for(users["viewer"]).get("/registries/").content.decode()
    assert "registry.example.com:5000" in body and "alice" in body
    assert SECRET not in body
    assert "Log in to a registry" not in body  # viewers only look


@pytest.mark.django_db
def test_viewers_and_operators_may_not_log_in_or_out(users: dict[str, Any], engine: Path) -> None:
    store_login("registry.example.com", "alice")
    for role in ("viewer", "operator"):
        client = client_for(users[role])
        login = client.post("/registries/login/", {"server": "127.0.0.1:1", "username": "u", "password": "p"})
        assert login.status_code == 403
        assert client.post("/registries/logout/", {"server": "registry.example.com"}).status_code == 403
    assert CredentialStore(conf.root() / "auth.json").get("registry.example.com") is not None


@pytest.mark.django_db
def test_a_failed_login_stores_nothing_and_is_an_error_event(users: dict[str, Any], engine: Path) -> None:
    response = client_for(users["admin"]).post(
        "/registries/login/", {"server": "127.0.0.1:1", "username": "bob", "password": SECRET}
    )
    assert response.status_code == 400
    assert response.context["form"].errors["password"]
    assert SECRET not in response.content.decode()  # the password field is not filled in again
    assert not (conf.root() / "auth.json").exists()
    event = Event.objects.get(object_type="registry", action="login")
    assert (event.result, event.object_name, event.actor) == ("error", "127.0.0.1:1", "admin")
    assert SECRET not in event.message + str(event.attributes)


@pytest.mark.django_db
def test_an_admin_logs_out_and_the_table_and_count_refresh(users: dict[str, Any], engine: Path) -> None:
    store_login("registry.example.com", "alice")
    client = client_for(users["admin"])
    response = client.post("/registries/logout/", {"server": "registry.example.com"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 204 and "registries-changed" in response["HX-Trigger"]
    table = client.get("/registries/", HTTP_HX_REQUEST="true").content.decode()
    assert 'id="registry-count" hx-swap-oob="true">0<' in table
    event = Event.objects.get(object_type="registry", action="logout")
    assert (event.result, event.actor) == ("ok", "admin")


@pytest.mark.django_db
def test_the_run_form_offers_to_pull_a_missing_image(users: dict[str, Any], engine: Path) -> None:
    response = run_form(client_for(users["operator"]), image="registry.example.com/app:1")
    assert response.status_code == 400
    body = response.content.decode()
    assert "Pull and run" in body and "registry.example.com/app:1" in body


@pytest.mark.django_db
def test_export_is_for_operators_and_names_an_existing_image(users: dict[str, Any], engine: Path) -> None:
    missing = "ab" * 32
    assert client_for(users["viewer"]).get(f"/images/{missing}/export/").status_code == 403
    assert client_for(users["operator"]).get(f"/images/{missing}/export/").status_code == 404


@pytest.mark.django_db
def test_commit_is_for_operators(users: dict[str, Any], engine: Path) -> None:
    (row,) = make_records(1, prefix="commit")
    assert client_for(users["viewer"]).get(f"/containers/{row.name}/commit/").status_code == 403
    body = client_for(users["operator"]).get(f"/containers/{row.name}/commit/").content.decode()
    assert "Repository and tag" in body and row.name in body
    bad = client_for(users["operator"]).post(f"/containers/{row.name}/commit/", {"reference": "Not Valid"})
    assert bad.status_code == 400 and bad.context["form"].errors["reference"]
