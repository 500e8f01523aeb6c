"""The audit log as a record (issue 9 item 3): refusals are `denied` and failures `error` rows with the
real object type and name; the filter menus come distinct from one query; retention prunes and
every prune is an event. Shells offered by the terminal come from the container's own root."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from engine import events
from engine.errors import InvalidArgument
from engine.models import Event
from engine.services import audit, volumes

HTMX = {"HTTP_HX_REQUEST": "true"}


def client(user: Any) -> Client:
    c = Client()
    c.force_login(user)
    return c


def test_filter_choices_list_each_value_once_from_one_query(engine: Path) -> None:
    for _ in range(5):
        events.record("volume", "create", object_name="v")
        events.record("container", "stop", object_name="c")
    with CaptureQueriesContext(connection) as queries:
        choices = audit.filter_choices()
    assert len(queries) == 1
    assert choices.types == ["container", "volume"] and choices.actions == ["create", "stop"]
    # The single-column helper no longer repeats a value per event either (default ordering).
    assert audit.distinct_values("object_type") == ["container", "volume"]


def test_prune_deletes_old_events_and_is_itself_an_event(engine: Path) -> None:
    old = events.record("volume", "create", object_name="old")
    Event.objects.filter(pk=old.pk).update(time=timezone.now() - timedelta(days=40))
    events.record("volume", "create", object_name="new")
    with events.acting_as("alice"):
        result = audit.prune(older_than_days=30)
    assert result.deleted == 1
    assert not Event.objects.filter(object_name="old").exists()
    row = Event.objects.order_by("-id").first()
    assert row is not None and (row.object_type, row.action, row.actor) == ("event", "prune", "alice")
    assert row.attributes["deleted"] == "1" and row.object_name == "older than 30 days"


def test_prune_refuses_a_zero_age_and_retention_zero_keeps_everything(engine: Path, settings: Any) -> None:
    with pytest.raises(InvalidArgument, match="at least 1"):
        audit.prune(older_than_days=0)
    settings.BERTH_EVENTS_RETENTION_DAYS = 0
    with pytest.raises(InvalidArgument, match="for ever"):
        audit.prune()
    assert audit.prune_expired(every=0) is None


def test_a_viewers_refused_image_removal_is_a_denied_image_row(engine: Path, users: dict[str, Any]) -> None:
    response = client(users["viewer"]).post("/images/remove/", {"ref": "busybox:latest"}, **HTMX)
    assert response.status_code == 403
    row = Event.objects.order_by("-id").first()
    assert row is not None
    # The engine's own verb ("delete"), so one filter finds done and refused removals alike.
    assert (row.object_type, row.action, row.result, row.actor) == ("image", "delete", "denied", "viewer")
    assert row.object_name == "busybox:latest"  # unknown references are recorded as asked for
    assert "needs the admin role; you are a viewer" in row.message


def test_an_operators_refused_volume_removal_names_the_volume(engine: Path, users: dict[str, Any]) -> None:
    volumes.create("keep")
    response = client(users["operator"]).post("/volumes/keep/remove/", **HTMX)
    assert response.status_code == 403
    row = Event.objects.filter(result="denied").order_by("-id").first()
    assert row is not None
    assert (row.object_type, row.action, row.object_id, row.object_name) == (
        "volume",
        "remove",
        "keep",
        "keep",
    )


def test_a_failed_removal_is_one_error_row_with_the_reason(engine: Path, users: dict[str, Any]) -> None:
    response = client(users["admin"]).post("/volumes/missing/remove/", **HTMX)
    assert response.status_code == 404
    rows = list(Event.objects.filter(result="error"))
    assert len(rows) == 1
    assert (rows[0].object_type, rows[0].action, rows[0].object_name) == ("volume", "remove", "missing")
    assert "missing" in rows[0].message


def test_events_prune_from_the_dashboard_is_for_admins(engine: Path, users: dict[str, Any]) -> None:
    assert client(users["operator"]).post("/events/prune/", {"days": "7"}, **HTMX).status_code == 403
    assert client(users["admin"]).post("/events/prune/", {"days": "x"}, **HTMX).status_code == 400
    assert client(users["admin"]).post("/events/prune/", {"days": "7"}, **HTMX).status_code in (200, 204)
    row = Event.objects.filter(object_type="event", result="ok").get()
    assert row.actor == "admin" and row.object_name == "older than 7 days"
