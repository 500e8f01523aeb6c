"""Alert evaluation from events: open once, resolve once, both events; deliveries retried with back-off."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from engine import events
from engine.errors import AlreadyExists, NotFound
from engine.models import Alert, AlertDelivery, Container, Event, Image
from engine.net import webhook
from engine.services import alerts, notify

pytestmark = pytest.mark.django_db

CID = "a" * 64


@pytest.fixture(autouse=True)
def _no_sender_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests drain the outbox themselves, in this thread and this transaction.
    monkeypatch.setattr(notify, "kick", lambda: None)


def container_event(action: str, **attributes: str) -> Event:
    return events.record("container", action, object_id=CID, object_name="web", attributes=attributes)


def alert_events(action: str) -> list[Event]:
    return list(Event.objects.filter(object_type="alert", action=action))


def test_a_crash_opens_one_alert_and_a_start_resolves_it_once() -> None:
    rule = alerts.create_rule(name="crash", kind="exit", actor="admin")
    container_event("die", exitCode="3")
    alerts.tick()
    container_event("die", exitCode="3")  # a second die while open: still one alert
    alerts.tick()
    (alert,) = Alert.objects.all()
    assert (alert.rule, alert.state, alert.subject_name) == (rule, "open", "web")
    assert "code 3" in alert.message
    assert alerts.unseen_count() == 1
    container_event("start")
    alerts.tick()
    container_event("start")
    alerts.tick()
    alert.refresh_from_db()
    assert alert.state == "resolved" and alert.resolved is not None
    (opened,) = alert_events("open")
    (resolved,) = alert_events("resolve")
    # The bell can update from the event alone.
    assert opened.attributes["unseen"] == 1 and opened.attributes["kind"] == "exit"
    assert opened.actor == "engine" and resolved.object_id == str(alert.id)


def test_a_stop_by_the_user_or_a_clean_exit_opens_nothing() -> None:
    alerts.create_rule(name="crash", kind="exit")
    container_event("die", exitCode="137", stoppedByUser="true")
    container_event("die", exitCode="0")
    alerts.tick()
    assert not Alert.objects.exists()


def test_events_before_the_first_rule_are_not_replayed() -> None:
    container_event("oom")
    alerts.create_rule(name="oom", kind="oom")
    alerts.tick()
    assert not Alert.objects.exists()
    container_event("oom")
    alerts.tick()
    assert Alert.objects.count() == 1


def test_scope_limits_which_containers_alert() -> None:
    image = Image.objects.create(id="sha256:" + "b" * 64, config={})
    Container.objects.create(id=CID, name="web", image=image, image_ref="busybox", labels={"tier": "web"})
    alerts.create_rule(name="db-only", kind="oom", scope="label", scope_value="tier=db")
    alerts.create_rule(name="web-only", kind="oom", scope="label", scope_value="tier=web")
    container_event("oom")
    alerts.tick()
    assert [a.rule.name for a in Alert.objects.all()] == ["web-only"]


def test_unhealthy_opens_and_healthy_resolves() -> None:
    alerts.create_rule(name="health", kind="unhealthy")
    container_event("health_status", status="unhealthy")
    alerts.tick()
    assert Alert.objects.get().state == "open"
    container_event("health_status", status="healthy")
    alerts.tick()
    assert Alert.objects.get().state == "resolved"


def test_removal_resolves_every_open_alert_of_the_container() -> None:
    alerts.create_rule(name="oom", kind="oom")
    alerts.create_rule(name="crash", kind="exit")
    container_event("die", exitCode="137")
    container_event("oom")
    alerts.tick()
    assert Alert.objects.filter(state="open").count() == 2
    container_event("remove")
    alerts.tick()
    assert Alert.objects.filter(state="resolved").count() == 2
    assert len(alert_events("resolve")) == 2


def test_restart_loop_opens_past_the_threshold_and_calms_down() -> None:
    alerts.create_rule(name="loop", kind="restart_loop", threshold=2, minutes=1)
    for _ in range(2):
        container_event("restart")
    alerts.tick()
    assert not Alert.objects.exists()  # two restarts are not more than two
    container_event("restart")
    alerts.tick()
    assert Alert.objects.get().state == "open"
    Event.objects.filter(action="restart").update(time=timezone.now() - timedelta(minutes=2))
    alerts.tick(force_periodic=True)
    assert Alert.objects.get().state == "resolved"


def test_disk_rule_opens_for_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    alerts.create_rule(name="disk", kind="disk", threshold=20)
    monkeypatch.setattr(alerts, "free_percent", lambda path: 5.0)
    alerts.tick(force_periodic=True)
    alerts.tick(force_periodic=True)
    alert = Alert.objects.get()
    assert (alert.subject_type, alert.state) == ("host", "open")
    monkeypatch.setattr(alerts, "free_percent", lambda path: 50.0)
    alerts.tick(force_periodic=True)
    alert.refresh_from_db()
    assert alert.state == "resolved"


def test_rule_crud_records_events_and_refuses_duplicates() -> None:
    alerts.create_rule(name="r", kind="oom", actor="admin")
    with pytest.raises(AlreadyExists):
        alerts.create_rule(name="r", kind="exit")
    alerts.update_rule("r", enabled=False, actor="admin")
    alerts.delete_rule("r", actor="admin")
    with pytest.raises(NotFound):
        alerts.delete_rule("r")
    actions = list(
        Event.objects.filter(object_type="alertrule").order_by("id").values_list("action", "actor")
    )
    assert actions == [("create", "admin"), ("update", "admin"), ("delete", "admin")]


def test_mark_seen_clears_the_bell() -> None:
    alerts.create_rule(name="oom", kind="oom")
    container_event("oom")
    alerts.tick()
    assert alerts.unseen_count() == 1
    assert alerts.mark_seen() == 1
    assert alerts.unseen_count() == 0


class _Receiver(BaseHTTPRequestHandler):
    statuses: list[int] = []
    bodies: list[tuple[bytes, str]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.bodies.append((body, self.headers.get("X-Berth-Signature", "")))
        self.send_response(self.statuses.pop(0) if self.statuses else 200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    handler = type("Receiver", (_Receiver,), {"statuses": [], "bodies": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler
    server.shutdown()
    server.server_close()


def test_a_failing_webhook_is_retried_after_the_back_off(receiver) -> None:  # type: ignore[no-untyped-def]
    url, handler = receiver
    handler.statuses = [500]
    alerts.create_rule(name="oom", kind="oom", webhook_url=url, webhook_secret="k")
    container_event("oom")
    alerts.tick()
    assert notify.drain() == 1
    delivery = AlertDelivery.objects.get()
    assert (delivery.state, delivery.attempts) == ("pending", 1)
    assert "HTTP 500" in delivery.last_error
    # Not due before its back-off has passed, then sent on the second attempt.
    assert notify.drain() == 0
    wait = (delivery.next_attempt - timezone.now()).total_seconds()
    assert 3 < wait <= notify.FIRST_DELAY
    assert notify.drain(now=delivery.next_attempt + timedelta(seconds=1)) == 1
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_error) == ("sent", 2, "")
    body, sig = handler.bodies[-1]
    assert webhook.verify("k", body, sig)
    assert json.loads(body)["alert"]["state"] == "open"


def test_a_delivery_fails_for_good_after_the_last_attempt(receiver) -> None:  # type: ignore[no-untyped-def]
    url, handler = receiver
    handler.statuses = [503] * notify.MAX_ATTEMPTS
    alerts.create_rule(name="oom", kind="oom", webhook_url=url)
    container_event("oom")
    alerts.tick()
    later = timezone.now()
    for _ in range(notify.MAX_ATTEMPTS):
        later += timedelta(hours=1)
        notify.drain(now=later)
    delivery = AlertDelivery.objects.get()
    assert (delivery.state, delivery.attempts) == ("failed", notify.MAX_ATTEMPTS)
    assert "HTTP 503" in delivery.last_error
    assert notify.drain(now=later + timedelta(days=1)) == 0


def test_cpu_rule_follows_the_metrics_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    image = Image.objects.create(id="sha256:" + "b" * 64, config={})
    row = Container.objects.create(id=CID, name="web", image=image, image_ref="busybox", state="running")
    alerts.create_rule(name="busy", kind="cpu", threshold=80, minutes=2)
    verdicts: list[bool | None] = [None, True, None, False]
    asked = []

    def above_for(container_id: str, metric: str, percent: float, minutes: float) -> bool | None:
        asked.append((container_id, metric, percent, minutes))
        return verdicts.pop(0)

    monkeypatch.setattr(alerts, "_above_for", above_for)
    states = []
    for _ in range(4):
        alerts.tick(force_periodic=True)
        states.append(list(Alert.objects.values_list("state", flat=True)))
    # Not enough history changes nothing; True opens, False resolves.
    assert states == [[], ["open"], ["open"], ["resolved"]]
    assert asked[0] == (CID, "cpu", 80.0, 2)
    verdicts[:] = [True]
    alerts.tick(force_periodic=True)
    row.state = "exited"
    row.save()
    alerts.tick(force_periodic=True)  # a stopped container's alert resolves without asking the metrics
    assert list(Alert.objects.order_by("id").values_list("state", flat=True)) == ["resolved", "resolved"]


def test_has_work_while_events_wait_or_deliveries_are_pending() -> None:
    assert not alerts.has_work()
    alerts.create_rule(name="oom", kind="oom", webhook_url="http://127.0.0.1:9/hook")
    assert not alerts.has_work()
    container_event("oom")
    assert alerts.has_work()  # an event not yet evaluated
    alerts.tick()
    assert alerts.has_work()  # the open notification is still to be sent
    AlertDelivery.objects.update(state="sent")
    assert not alerts.has_work()


def test_email_goes_through_djangos_mail_settings(mailoutbox) -> None:  # type: ignore[no-untyped-def]
    alerts.create_rule(name="oom", kind="oom", email_to="ops@example.com, dev@example.com")
    container_event("oom")
    alerts.tick()
    assert notify.drain() == 1
    (mail,) = mailoutbox
    assert mail.to == ["ops@example.com", "dev@example.com"]
    assert "oom" in mail.subject and "OOM-killed" in mail.subject
    assert AlertDelivery.objects.get().state == "sent"
