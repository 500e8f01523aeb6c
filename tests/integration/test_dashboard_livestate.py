"""The live-state model's server half (dashboard/livestate.py) through the Django client: the counts
and parts that live.js fetches again on events render the same state as the full pages."""

from __future__ import annotations

import re
from typing import Any

import pytest

from dashboard import livestate
from engine.models import Container, ContainerState
from tests.integration.test_dashboard_containers import HX, client_for, make_records


def _count(body: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', body)
    assert match, f"no #{element_id} in {body[:400]}"
    return match.group(1).strip()


@pytest.mark.django_db
def test_counts_give_never_started_containers_a_created_chip_of_their_own(users: dict[str, Any]) -> None:
    rows = make_records(6)  # 2 running, 4 exited
    Container.objects.filter(pk=rows[1].pk).update(state=ContainerState.CREATED)
    Container.objects.filter(pk=rows[2].pk).update(state=ContainerState.DEAD)
    body = client_for(users["viewer"]).get("/containers/counts/", **HX).content.decode()
    assert _count(body, "container-count") == "6"
    assert _count(body, "chip-count-running") == "2"
    assert _count(body, "chip-count-created") == "1"
    assert _count(body, "chip-count-exited") == "3"  # exited and dead, not created
    assert body.count('hx-swap-oob="true"') == 5  # the heading and four chips, out of band
    # The full page shows the same numbers in the same elements.
    page = client_for(users["viewer"]).get("/containers/").content.decode()
    assert _count(page, "chip-count-created") == "1" and _count(page, "container-count") == "6"


def test_each_state_offers_only_buttons_that_do_what_they_say() -> None:
    assert livestate.available_actions("created") == ["start", "remove"]  # no Restart, no Stop
    assert livestate.available_actions("exited") == ["start", "remove"]
    assert livestate.available_actions("running") == ["stop", "restart", "pause", "kill", "remove"]
    assert livestate.available_actions("paused") == ["unpause", "stop", "kill", "remove"]
    assert livestate.available_actions("dead") == ["remove"]


@pytest.mark.parametrize(
    ("nano", "shown"), [(500_000_000, "0.5"), (2_000_000_000, "2"), (1_250_000_000, "1.25")]
)
def test_cpus_are_shown_as_typed(nano: int, shown: str) -> None:
    assert livestate.format_cpus(nano) == shown
    assert livestate.format_cpus(0) == ""


@pytest.mark.django_db
def test_state_part_shows_the_exit_code_and_is_empty_once_removed(users: dict[str, Any]) -> None:
    row = make_records(2)[1]
    Container.objects.filter(pk=row.pk).update(state=ContainerState.EXITED, exit_code=3)
    client = client_for(users["viewer"])
    body = client.get(f"/containers/{row.id}/part/state/", **HX).content.decode()
    assert 'id="state-panel"' in body and 'data-live="container:' + row.id + '"' in body
    assert re.search(r"data-exit-code>3<", body)
    ports = client.get(f"/containers/{row.id}/part/ports/", **HX).content.decode()
    assert "None in force" in ports
    assert client.get(f"/containers/{row.id}/part/nonsense/", **HX).status_code == 400
    row.delete()
    assert client.get(f"/containers/{row.id}/part/state/", **HX).content == b""
