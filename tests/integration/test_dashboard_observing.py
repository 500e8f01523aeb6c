"""The observing pages over Django's test client: history JSON, the top-containers table, the alerts
page and its rule form (admins change, viewers read), the bell's count, and the Health panel.

The metrics store is written through engine.runtime.metricstore, the sampler's own writer.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from dashboard.consumers.events import _describe
from dashboard.templatetags.observing import health_chip
from engine import conf, events
from engine.models import Alert, AlertRule, Container, Event
from engine.runtime import metricstore
from engine.services import alerts, containers, lifecycle, system
from engine.services import options as opts
from tests.conftest import require_root

HTMX = {"HTTP_HX_REQUEST": "true"}
CID_A = "a" * 64
CID_B = "b" * 64


@pytest.fixture
def as_role(users: dict[str, Any]) -> Any:
    def make(role: str) -> Client:
        client = Client()
        client.force_login(users[role])
        return client

    return make


def seed(subject: str, *, seconds: float, cpu: float) -> None:
    now = time.time()
    samples = [
        metricstore.Sample(
            subject=subject, t=now - seconds + i * 10, cpu=cpu, mem=2**20 * cpu, mem_limit=2**30
        )
        for i in range(int(seconds // 10))
    ]
    conn = metricstore.connect(conf.root() / metricstore.FILE_NAME)
    try:
        metricstore.add(conn, samples)
        metricstore.maintain(conn, now)
    finally:
        conn.close()


# ---------- history and top ----------


def test_host_history_is_json_for_the_chosen_window(engine: Path, as_role: Any) -> None:
    seed(metricstore.HOST, seconds=1800, cpu=12.0)
    data = as_role("viewer").get("/metrics/host/?window=hour").json()
    assert data["window"] == "hour"
    assert len(data["times"]) >= 150  # raw 10 s samples for half an hour
    assert set(data) >= {"cpu_percent", "memory_bytes", "disk_free_bytes", "resolution"}
    # An unknown window falls back to the hour instead of failing the chart.
    assert as_role("viewer").get("/metrics/host/?window=year").json()["window"] == "hour"


def test_history_of_an_unknown_container_is_a_404(engine: Path, as_role: Any) -> None:
    assert as_role("viewer").get(f"/containers/{CID_A}/history/").status_code == 404


def test_history_needs_a_login(engine: Path) -> None:
    assert Client().get("/metrics/host/").status_code == 302


def test_top_containers_ranks_by_cpu_and_by_memory(engine: Path, as_role: Any) -> None:
    seed(CID_A, seconds=600, cpu=5.0)
    seed(CID_B, seconds=600, cpu=50.0)
    body = as_role("viewer").get("/metrics/top/?window=hour&by=cpu", **HTMX).content.decode()
    # Removed (unknown) containers are shown by their short ID; the busier one comes first.
    assert body.index(CID_B[:12]) < body.index(CID_A[:12])
    assert "50.0 %" in body
    empty = as_role("viewer").get("/metrics/top/?window=week&by=nonsense", **HTMX)
    assert empty.status_code == 200


def test_top_containers_explains_an_empty_store(engine: Path, as_role: Any) -> None:
    body = as_role("viewer").get("/metrics/top/").content.decode()
    assert "history appears after the first samples" in body


# ---------- alerts page and rules ----------


def rule_form(**changes: Any) -> dict[str, Any]:
    form = {
        "name": "disk-low",
        "kind": "disk",
        "scope": "all",
        "scope_value": "",
        "threshold": "10",
        "minutes": "5",
        "notify_dashboard": "on",
        "email_to": "",
        "webhook_url": "",
        "webhook_secret": "",
        "enabled": "on",
    }
    form.update(changes)
    return {k: v for k, v in form.items() if v is not None}


def test_an_admin_creates_edits_toggles_and_deletes_a_rule_each_an_event(engine: Path, as_role: Any) -> None:
    admin = as_role("admin")
    created = admin.post(
        "/alerts/rules/new/",
        rule_form(webhook_url="http://127.0.0.1:9/hook", webhook_secret="s3cret"),
    )
    assert created.status_code == 302, created.content.decode()[:2000]
    rule = AlertRule.objects.get(name="disk-low")
    assert rule.webhook_secret == "s3cret" and rule.created_by == "admin"

    # The edit form never shows the secret, and an empty secret field keeps it.
    page = admin.get(f"/alerts/rules/{rule.pk}/edit/").content.decode()
    assert "s3cret" not in page
    edited = admin.post(
        f"/alerts/rules/{rule.pk}/edit/",
        rule_form(threshold="20", webhook_url="http://127.0.0.1:9/hook", webhook_secret=""),
    )
    assert edited.status_code == 302
    rule.refresh_from_db()
    assert rule.threshold == 20 and rule.webhook_secret == "s3cret"

    admin.post(f"/alerts/rules/{rule.pk}/toggle/")
    assert AlertRule.objects.get(pk=rule.pk).enabled is False
    listing = admin.get("/alerts/").content.decode()
    assert "free disk below 20 %" in listing and "disabled" in listing

    admin.post(f"/alerts/rules/{rule.pk}/delete/")
    assert not AlertRule.objects.filter(pk=rule.pk).exists()
    actions = list(
        Event.objects.filter(object_type="alertrule").order_by("id").values_list("action", "actor")
    )
    assert actions == [("create", "admin"), ("update", "admin"), ("update", "admin"), ("delete", "admin")]


def test_a_bad_rule_keeps_what_was_typed_and_says_what_is_wrong(engine: Path, as_role: Any) -> None:
    response = as_role("admin").post(
        "/alerts/rules/new/", rule_form(name="by-label", kind="exit", scope="label", scope_value="tier")
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "write the label as key=value" in body
    assert 'value="by-label"' in body
    assert not AlertRule.objects.exists()


def test_the_service_error_is_shown_next_to_its_field(engine: Path, as_role: Any) -> None:
    # Over 100 % of the machine's CPU: the form lets it through, the service refuses it.
    response = as_role("admin").post("/alerts/rules/new/", rule_form(kind="cpu", threshold="1000000"))
    assert response.status_code == 400
    assert "out of range" in response.content.decode()


def test_a_viewer_reads_alerts_but_changes_no_rule(engine: Path, as_role: Any) -> None:
    rule = alerts.create_rule(actor="admin", name="any-exit", kind="exit")
    viewer = as_role("viewer")
    page = viewer.get("/alerts/").content.decode()
    assert "any-exit" in page and "Read only" in page and "New rule" not in page
    assert viewer.get("/alerts/rules/new/").status_code == 403
    assert viewer.post("/alerts/rules/new/", rule_form()).status_code == 403
    assert viewer.post(f"/alerts/rules/{rule.pk}/toggle/").status_code == 403
    assert viewer.post(f"/alerts/rules/{rule.pk}/delete/").status_code == 403
    assert AlertRule.objects.get(pk=rule.pk).enabled
    # An operator is no admin either.
    assert as_role("operator").post(f"/alerts/rules/{rule.pk}/delete/").status_code == 403


def test_opening_the_alerts_page_marks_alerts_seen_and_the_bell_follows(engine: Path, as_role: Any) -> None:
    rule = alerts.create_rule(actor="admin", name="any-exit", kind="exit")
    for n in range(2):
        Alert.objects.create(
            rule=rule, subject_id=f"{n}" * 64, subject_name=f"c{n}", message="exited with code 3"
        )
    viewer = as_role("viewer")
    overview = viewer.get("/").content.decode()
    assert 'data-unseen="2"' in overview  # the bell in the rail
    assert viewer.get("/alerts/unseen/").json() == {"unseen": 2}
    page = viewer.get("/alerts/").content.decode()
    assert "exited with code 3" in page and "is-unseen" in page  # shown as new this once
    assert alerts.unseen_count() == 0
    assert 'data-unseen="0"' in viewer.get("/").content.decode()
    # The live partial answers with the count for bell.js.
    part = viewer.get("/alerts/?part=alerts", **HTMX)
    assert '"berth:unseen": {"count": 0}' in part["HX-Trigger"]


def test_alert_events_reach_pages_with_their_unseen_count(engine: Path) -> None:
    event = events.record("alert", "open", object_id="1", object_name="r", attributes={"unseen": 4})
    other = events.record("volume", "create", object_id="v", object_name="v", attributes={"secret": 1})
    alert_frame, volume_frame = _describe([event.pk, other.pk])
    assert alert_frame["attributes"] == {"unseen": 4}
    assert "attributes" not in volume_frame


# ---------- health ----------


def test_the_health_chip_shows_only_for_a_running_container_with_a_check() -> None:
    health = {"Status": "unhealthy", "FailingStreak": 3, "Log": []}
    chip = str(health_chip(health, "running"))
    assert 'data-health="unhealthy"' in chip and "3 failing in a row" in chip
    assert str(health_chip(health, "exited")) == ""
    assert str(health_chip({}, "running")) == ""
    assert str(health_chip({"Status": "<script>"}, "running")) == ""


def test_the_health_panel_shows_status_results_and_the_check(engine: Path, as_role: Any) -> None:
    require_root()
    system.seed()
    container = containers.create(opts.ContainerOptions(image="busybox", name="hc-panel"))
    config = dict(container.config)
    config["Healthcheck"] = {
        "Test": ["CMD-SHELL", "wget -q -O- localhost/<health>"],
        "Interval": 2_000_000_000,
    }
    health = {
        "Status": "unhealthy",
        "FailingStreak": 2,
        "Log": [
            {
                "Start": "2026-12-01T01:00:00.123456789Z",
                "End": "2026-12-01T01:00:00.223Z",
                "ExitCode": 0,
                "Output": "ok",
            },
            {
                "Start": "2026-12-01T01:00:02Z",
                "End": "2026-12-01T01:00:03Z",
                "ExitCode": 1,
                "Output": "<b>down</b>",
            },
        ],
    }
    Container.objects.filter(pk=container.id).update(config=config, health=health)
    viewer = as_role("viewer")
    overview = viewer.get(f"/containers/{container.id}/").content.decode()
    assert 'id="health-panel"' in overview
    panel = viewer.get(f"/containers/{container.id}/health/", **HTMX).content.decode()
    assert "unhealthy" in panel and '2 <span class="muted">(unhealthy at 3 in a row)' in panel
    assert "wget -q -O- localhost/&lt;health&gt;" in panel  # escaped, as typed
    assert "&lt;b&gt;down&lt;/b&gt;" in panel
    assert "exit 1" in panel and "exit 0" in panel and "took 100 ms" in panel
    assert "every 2 s" in panel
    assert panel.index("exit 1") < panel.index("exit 0")  # newest first
    lifecycle.remove(container.id, force=True)
