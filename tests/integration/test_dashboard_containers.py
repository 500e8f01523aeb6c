"""The containers pages through Django's test client: list, run form, detail tabs, actions, permissions.

Two kinds of tests: list and permission tests run on container *records* made directly through the ORM
(`make_records`, which bench/dashboard.py reuses for the 1,000-row timing), and flow tests run real
containers (root, runc, conmon) created through the Run form.

Over 400 lines because it covers every containers view and each role's refusals in one place.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from dashboard import terminals
from engine.models import Container, ContainerState, Image
from tests.conftest import _conmons, _processes_with, require_root, settle_conmons
from tests.polling import wait_until

HX = {"HTTP_HX_REQUEST": "true"}
XSS = "<img src=x onerror=alert(1)>"


# ---------- helpers shared with bench/dashboard.py ----------


def fake_image() -> Image:
    """An image record with no layers: enough for container records that never run."""
    image, _ = Image.objects.get_or_create(id="sha256:" + "0" * 64, defaults={"config": {"config": {}}})
    return image


def make_records(count: int, *, image: Image | None = None, prefix: str = "rec") -> list[Container]:
    """Create `count` container records straight through the ORM (a third running, the rest exited)."""
    image = image or fake_image()
    states = (ContainerState.RUNNING, ContainerState.EXITED, ContainerState.EXITED)
    rows = [
        Container(
            id=secrets.token_hex(32),
            name=f"{prefix}-{i:05d}",
            image=image,
            image_ref="docker.io/library/busybox:latest",
            config={"Cmd": ["sh"], "Env": ["PATH=/bin"]},
            host_config={},
            labels={},
            state=states[i % 3],
            exit_code=0 if i % 6 else 1,
        )
        for i in range(count)
    ]
    return Container.objects.bulk_create(rows, batch_size=500)


# ---------- fixtures ----------


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def seeded(engine_tx: Any) -> Iterator[None]:
    """A committed engine with busybox:latest; every container is force-removed afterwards."""
    require_root()
    from engine.services import imagetransfer

    before = _conmons()
    imagetransfer.seed_busybox()
    yield
    remove_all_containers(engine_tx, before)


def remove_all_containers(root: Any, conmons_before: set[int]) -> None:
    """Force-remove every container, then wait for conmon's exit commands to finish."""
    from engine.services import lifecycle

    for container in Container.objects.all():
        lifecycle.remove(container.id, force=True)
    marker = f"BERTH_ROOT={root}\0".encode()
    wait_until(lambda: not _processes_with(marker), timeout=60, what="the exit commands to finish")
    settle_conmons(conmons_before)


def collect(response: Any) -> bytes:
    """The body of a streaming response whose iterator is async (as served under daphne)."""

    async def read() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    return async_to_sync(read)()


def run_form(client: Client, **fields: Any) -> Any:
    data = {"image": "busybox", "restart": "no", "network": "default", "memory": "64m", **fields}
    return client.post("/containers/run/", data)


# ---------- list ----------


@pytest.mark.django_db
def test_list_shows_name_image_and_state_as_colour_plus_text(users: dict[str, Any]) -> None:
    (row,) = make_records(1)
    Container.objects.filter(pk=row.pk).update(state="exited", exit_code=3)
    body = client_for(users["viewer"]).get("/containers/").content.decode()
    assert row.name in body and "docker.io/library/busybox:latest" in body
    assert 'class="badge badge--failed">exited (3)</span>' in body


@pytest.mark.django_db
def test_list_is_paginated_and_counts_every_container(users: dict[str, Any]) -> None:
    make_records(120)
    body = client_for(users["viewer"]).get("/containers/").content.decode()
    assert body.count('<tr id="row-') == 50
    assert 'id="container-count">120<' in body
    assert "Page 1 of 3" in body


@pytest.mark.django_db
def test_search_filters_on_the_server_and_htmx_gets_only_the_table(users: dict[str, Any]) -> None:
    make_records(3, prefix="alpha")
    make_records(3, prefix="beta")
    response = client_for(users["viewer"]).get("/containers/", {"q": "beta"}, **HX)
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="container-table"')  # a partial, not the whole page
    assert "beta-00000" in body and "alpha-" not in body


@pytest.mark.django_db
def test_state_chips_filter_running_and_exited(users: dict[str, Any]) -> None:
    rows = make_records(6)
    client = client_for(users["viewer"])
    running = client.get("/containers/", {"state": "running"}).content.decode()
    exited = client.get("/containers/", {"state": "exited"}).content.decode()
    for row in rows:
        assert (row.name in running) == (row.state == "running")
        assert (row.name in exited) == (row.state == "exited")


@pytest.mark.django_db
def test_containers_page_costs_the_same_queries_with_1000_records_as_with_10(users: dict[str, Any]) -> None:
    """No query per row: the page's cost does not grow with the records (its speed is in bench/dashboard.py)."""
    client = client_for(users["viewer"])

    def queries() -> int:
        client.get("/containers/")  # warm up templates and the session
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/containers/").status_code == 200
        return len(captured.captured_queries)

    make_records(10, prefix="few")
    few = queries()
    make_records(990, prefix="many")
    assert queries() == few


@pytest.mark.django_db
def test_row_of_a_removed_container_is_empty_so_it_disappears(users: dict[str, Any]) -> None:
    response = client_for(users["viewer"]).get("/containers/" + "f" * 64 + "/row/", **HX)
    assert response.status_code == 200 and response.content == b""


@pytest.mark.django_db
def test_a_row_renders_alone_for_live_refresh(users: dict[str, Any]) -> None:
    (row,) = make_records(1)
    body = client_for(users["operator"]).get(f"/containers/{row.id}/row/", **HX).content.decode()
    assert body.lstrip().startswith(f'<tr id="row-{row.id}"')
    assert f'data-live="container:{row.id}"' in body


# ---------- permissions ----------


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["start", "stop", "restart", "pause", "unpause", "kill", "remove"])
def test_viewers_may_not_change_containers(users: dict[str, Any], action: str) -> None:
    (row,) = make_records(1)
    response = client_for(users["viewer"]).post(f"/containers/{row.id}/actions/{action}/", **HX)
    assert response.status_code == 403
    assert Container.objects.filter(pk=row.pk, state=row.state).exists()


@pytest.mark.django_db
def test_viewers_may_not_use_bulk_actions(users: dict[str, Any]) -> None:
    rows = make_records(2)
    response = client_for(users["viewer"]).post(
        "/containers/bulk/", {"action": "remove", "ids": [r.id for r in rows]}, **HX
    )
    assert response.status_code == 403
    assert Container.objects.count() == 2


@pytest.mark.django_db
def test_viewers_get_no_run_form_and_no_terminal_token(users: dict[str, Any]) -> None:
    (row,) = make_records(1)
    client = client_for(users["viewer"])
    assert client.get("/containers/run/").status_code == 403
    assert client.post(f"/containers/{row.id}/terminal/token/").status_code == 403


@pytest.mark.django_db
def test_viewers_see_no_action_buttons(users: dict[str, Any]) -> None:
    make_records(2)
    body = client_for(users["viewer"]).get("/containers/").content.decode()
    assert "/actions/" not in body and "bulk-form" not in body and "Run container" not in body


@pytest.mark.django_db
def test_lifecycle_actions_need_post(users: dict[str, Any]) -> None:
    (row,) = make_records(1)
    assert client_for(users["admin"]).get(f"/containers/{row.id}/actions/stop/").status_code == 405


@pytest.mark.django_db
def test_anonymous_users_are_sent_to_log_in(client: Client) -> None:
    for url in ("/containers/", "/containers/run/", "/containers/" + "a" * 64 + "/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/")


@pytest.mark.django_db
def test_operators_may_not_ask_for_a_bind_mount(users: dict[str, Any], engine: Any) -> None:
    response = run_form(client_for(users["operator"]), binds="/etc:/host-etc:ro")
    assert response.status_code == 403
    form = response.context["form"]
    assert "only admins may ask for bind mounts" in form.errors["binds"][0]
    assert Container.objects.count() == 0


@pytest.mark.django_db
def test_a_host_path_in_the_volumes_field_is_a_bind_mount_too(users: dict[str, Any], engine: Any) -> None:
    response = run_form(client_for(users["operator"]), volumes="/etc:/x")
    assert response.status_code == 403
    assert "bind mount" in response.context["form"].errors["volumes"][0]


@pytest.mark.django_db
def test_operators_may_not_ask_for_privileged_mode(users: dict[str, Any], engine: Any) -> None:
    response = run_form(client_for(users["operator"]), privileged="on")
    assert response.status_code == 403
    assert "privileged" in response.context["form"].errors["privileged"][0]


# ---------- run form ----------


@pytest.mark.django_db
def test_run_form_offers_local_images_and_shows_the_cli(users: dict[str, Any], engine: Any) -> None:
    body = client_for(users["operator"]).get("/containers/run/").content.decode()
    assert '<datalist id="image-names">' in body
    assert "berth run -d --memory 512m IMAGE" in body
    assert "Security (admins only)" not in body  # hidden for operators; the policy refuses anyway


@pytest.mark.django_db
def test_run_form_errors_sit_next_to_their_field_and_keep_what_was_typed(
    users: dict[str, Any], engine: Any
) -> None:
    response = run_form(client_for(users["operator"]), memory="lots", name="my-box", env="GOOD=1\nbad key=2")
    assert response.status_code == 400
    form = response.context["form"]
    assert "invalid memory limit 'lots'" in form.errors["memory"][0]
    assert "invalid name 'bad key'" in form.errors["env"][0]
    body = response.content.decode()
    assert 'value="my-box"' in body and 'value="lots"' in body and 'aria-invalid="true"' in body


@pytest.mark.django_db
def test_unknown_image_is_reported_on_the_image_field(users: dict[str, Any], engine: Any) -> None:
    response = run_form(client_for(users["operator"]), image="nosuchimage:1")
    assert response.status_code == 400
    assert "nosuchimage" in response.context["form"].errors["image"][0]


@pytest.mark.django_db
def test_cli_preview_follows_the_form(users: dict[str, Any]) -> None:
    response = client_for(users["operator"]).post(
        "/containers/run/preview/",
        {"image": "busybox", "name": "web", "env": "A=1", "volumes": "data:/data", "command": "sleep 5"},
        **HX,
    )
    assert "berth run -d --name web -e A=1 -v data:/data busybox sleep 5" in response.content.decode()


# ---------- escaping ----------


@pytest.mark.django_db
def test_attacker_controlled_labels_and_env_render_as_text(users: dict[str, Any]) -> None:
    (row,) = make_records(1)
    Container.objects.filter(pk=row.pk).update(
        labels={"note": XSS, XSS: "x"}, config={"Env": [f"GREETING={XSS}"], "Cmd": [XSS]}
    )
    client = client_for(users["viewer"])
    for tab in ("overview", "inspect"):
        body = client.get(f"/containers/{row.id}/", {"tab": tab}).content.decode()
        assert XSS not in body
        assert "&lt;img src=x onerror=alert(1)&gt;" in body or "\\u003cimg" in body or "&lt;img" in body


@pytest.mark.django_db
def test_values_of_secret_looking_variables_are_masked(users: dict[str, Any]) -> None:
    (row,) = make_records(1)
    Container.objects.filter(pk=row.pk).update(
        config={"Env": ["DB_PASSWORD=hunter2", "API_TOKEN=t0k", "MODE=prod"]}
    )
    client = client_for(users["admin"])
    for tab in ("overview", "inspect"):
        body = client.get(f"/containers/{row.id}/", {"tab": tab}).content.decode()
        assert "hunter2" not in body and "t0k" not in body
        assert "prod" in body


# ---------- real containers ----------


@pytest.mark.root
def test_operator_runs_stops_and_removes_a_container_from_the_pages(
    users: dict[str, Any], seeded: None
) -> None:
    client = client_for(users["operator"])
    response = run_form(client, name="web1", command="sh -c 'echo hello from web1; sleep 300'", env="A=1")
    assert response.status_code == 302, response.context["form"].errors if response.context else response
    container = Container.objects.get(name="web1")
    assert response["Location"] == f"/containers/{container.id}/?tab=logs"
    assert container.state == "running" and container.created_by == "operator"
    assert container.host_config["Memory"] == 64 << 20

    for tab in ("overview", "logs", "terminal", "stats", "processes", "changes", "inspect"):
        page = client.get(f"/containers/{container.id}/", {"tab": tab})
        assert page.status_code == 200, tab
    assert "sleep 300" in client.get(f"/containers/{container.id}/", {"tab": "processes"}).content.decode()
    terminal = client.get(f"/containers/{container.id}/", {"tab": "terminal"})
    assert "style-src-elem 'self' 'unsafe-inline'" in terminal["Content-Security-Policy"]

    from engine.services import bundle

    log = bundle.paths(container.id).log
    wait_until(lambda: log.exists() and b"hello from web1" in log.read_bytes(), what="the line in the log")
    download = client.get(f"/containers/{container.id}/logs/download/")
    assert download["Content-Disposition"] == 'attachment; filename="web1.log"'
    assert b"hello from web1\n" in collect(download)

    usage = client.get("/containers/usage/", {"ids": container.id}, **HX).content.decode()
    assert f'id="mem-{container.id}" hx-swap-oob="true"' in usage

    stopped = client.post(f"/containers/{container.id}/actions/kill/", {"view": "row"}, **HX)
    assert stopped.status_code == 200
    assert "badge--failed" in stopped.content.decode()  # killed: exited (137)
    assert json.loads(stopped["HX-Trigger"])["toast"]["message"] == "Killed web1"

    removed = client.post(f"/containers/{container.id}/actions/remove/", {"view": "row"}, **HX)
    assert removed.status_code == 200 and removed.content == b""
    assert not Container.objects.filter(pk=container.pk).exists()


@pytest.mark.root
def test_bulk_stop_and_remove_act_on_every_selected_container(users: dict[str, Any], seeded: None) -> None:
    client = client_for(users["operator"])
    for name in ("bulk1", "bulk2"):
        assert run_form(client, name=name, command="sleep 300").status_code == 302
    ids = list(Container.objects.values_list("id", flat=True))
    response = client.post("/containers/bulk/", {"action": "remove", "ids": ids, "state": "all"}, **HX)
    assert response.status_code == 200
    assert "Removed 2 containers" in json.loads(response["HX-Trigger"])["toast"]["message"]
    assert Container.objects.count() == 0


@pytest.mark.root
def test_terminal_token_is_granted_to_operators_for_running_containers_only(
    users: dict[str, Any], seeded: None
) -> None:
    client = client_for(users["operator"])
    assert run_form(client, name="term1", command="sleep 300").status_code == 302
    container = Container.objects.get(name="term1")
    grant = client.post(f"/containers/{container.id}/terminal/token/", {"command": "/bin/sh"}).json()
    assert len(grant["token"]) >= 22 and grant["url"].endswith(grant["token"])
    # An unknown choice is a bad request; a command of one's own goes through "custom" (issue 9 item 4).
    assert (
        client.post(f"/containers/{container.id}/terminal/token/", {"command": "/usr/bin/python"}).status_code
        == 400
    )
    custom = {"command": "custom", "custom": "ls -l '/a dir'"}
    assert client.post(f"/containers/{container.id}/terminal/token/", custom).status_code == 200
    # Attach needs a container run with -t; this one was not.
    assert (
        client.post(f"/containers/{container.id}/terminal/token/", {"command": "attach"}).status_code == 400
    )
    client.post(f"/containers/{container.id}/actions/kill/")
    assert client.post(f"/containers/{container.id}/terminal/token/").status_code == 409


def test_terminal_tokens_expire_and_are_single_use() -> None:
    now = [100.0]
    manager = terminals.TerminalManager(clock=lambda: now[0])
    token = manager.issue(user_id=1, container_id="c1", command=("/bin/sh",))
    assert manager.redeem(token, user_id=1, container_id="c1").command == ("/bin/sh",)
    with pytest.raises(Exception, match="already used"):
        manager.redeem(token, user_id=1, container_id="c1")
    late = manager.issue(user_id=1, container_id="c1", command=("/bin/sh",))
    now[0] += terminals.TOKEN_TTL + 1
    with pytest.raises(Exception, match="expired"):
        manager.redeem(late, user_id=1, container_id="c1")


def test_terminal_sessions_are_capped_per_user() -> None:
    manager = terminals.TerminalManager()
    for _ in range(terminals.MAX_SESSIONS_PER_USER):
        manager.register(user_id=7, container_id="c", command=("/bin/sh",))
    with pytest.raises(Exception, match="terminals open"):
        manager.register(user_id=7, container_id="c", command=("/bin/sh",))
    manager.register(user_id=8, container_id="c", command=("/bin/sh",))  # others are not affected


@pytest.mark.django_db
def test_an_operator_renames_a_container_and_a_viewer_may_not(users: dict[str, Any]) -> None:
    (row,) = make_records(1)
    refused = client_for(users["viewer"]).post(f"/containers/{row.id}/rename/", {"name": "renamed"})
    assert refused.status_code == 403
    response = client_for(users["operator"]).post(f"/containers/{row.id}/rename/", {"name": "renamed"})
    assert response.status_code == 302
    assert Container.objects.get(pk=row.pk).name == "renamed"
    page = client_for(users["operator"]).get(f"/containers/{row.id}/").content.decode()
    assert 'value="renamed"' in page  # the overview's rename form shows the new name


@pytest.mark.django_db
def test_renaming_to_a_taken_name_is_a_conflict_the_page_shows(users: dict[str, Any]) -> None:
    first, second = make_records(2)
    response = client_for(users["operator"]).post(
        f"/containers/{first.id}/rename/", {"name": second.name}, **HX
    )
    assert response.status_code == 409
    assert "already in use" in response.content.decode()
