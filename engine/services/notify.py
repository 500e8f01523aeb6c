"""Alert notifications: the AlertDelivery outbox, its sending (webhook, e-mail) and retries with back-off.

An alert's open or resolve adds one delivery per channel in the same transaction (`enqueue`), so
a notification is never lost to a crash between the two. The monitor's tick calls `kick()`, which
drains due deliveries in one worker thread so a slow receiver never holds up the tick. Each attempt
is claimed with a conditional update first, so two monitors never send the same attempt twice.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import close_old_connections, connection
from django.utils import timezone

from engine.errors import EngineError
from engine.models import Alert, AlertDelivery
from engine.net import webhook

logger = logging.getLogger(__name__)

FIRST_DELAY = 5.0
MAX_ATTEMPTS = 8
PER_ROUND = 20
# An attempt in progress is hidden from other senders this long (longer than a webhook's timeout).
CLAIM_SECONDS = 60

_worker: threading.Thread | None = None
_worker_lock = threading.Lock()


def backoff(attempts: int) -> float:
    """Seconds to wait after the `attempts`-th failed attempt: 5, 10, 20, 40, … (exponential)."""
    return FIRST_DELAY * 2 ** max(attempts - 1, 0)


def schedule() -> list[float]:
    """The delays between all attempts of one delivery (MAX_ATTEMPTS - 1 of them)."""
    return [backoff(n) for n in range(1, MAX_ATTEMPTS)]


def enqueue(alert: Alert, transition: str) -> list[AlertDelivery]:
    """Add the deliveries for `alert`'s open or resolve to the outbox (call inside its transaction)."""
    rule = alert.rule
    made = []
    if rule.webhook_url:
        made.append(
            AlertDelivery(alert=alert, channel="webhook", transition=transition, target=rule.webhook_url)
        )
    if rule.email_to:
        made.append(AlertDelivery(alert=alert, channel="email", transition=transition, target=rule.email_to))
    return AlertDelivery.objects.bulk_create(made) if made else []


def text(alert: Alert, transition: str) -> str:
    """One line a person reads in Slack, Mattermost or an e-mail subject."""
    mark = "🔴" if transition == "open" else "✅"
    word = "OPEN" if transition == "open" else "RESOLVED"
    return f"{mark} [{word}] {alert.rule.name}: {alert.message or alert.subject_name}"


def payload(alert: Alert, transition: str) -> dict[str, Any]:
    """The webhook body: "text" for Slack and Mattermost, "alert" with the structured fields."""
    rule = alert.rule
    resolved = alert.resolved if transition == "resolve" else None
    return {
        "text": text(alert, transition),
        "alert": {
            "id": alert.id,
            "rule": rule.name,
            "kind": rule.kind,
            "subject": {"type": alert.subject_type, "id": alert.subject_id, "name": alert.subject_name},
            "state": "open" if transition == "open" else "resolved",
            "message": alert.message,
            "opened": alert.opened.isoformat(),
            "resolved": resolved.isoformat() if resolved else None,
        },
    }


def body(alert: Alert, transition: str) -> bytes:
    return json.dumps(payload(alert, transition), separators=(",", ":"), ensure_ascii=False).encode()


def due(now: datetime | None = None) -> bool:
    """Is any delivery waiting to be sent now? (One cheap query.)"""
    return AlertDelivery.objects.filter(
        state=AlertDelivery.State.PENDING, next_attempt__lte=now or timezone.now()
    ).exists()


def pending() -> bool:
    """Is any delivery still to be sent, now or after a back-off? (The monitor may stay up for it.)"""
    return AlertDelivery.objects.filter(state=AlertDelivery.State.PENDING).exists()


def drain(*, limit: int = PER_ROUND, now: datetime | None = None) -> int:
    """Send up to `limit` due deliveries, one attempt each; return how many were attempted."""
    now = now or timezone.now()
    candidates = list(
        AlertDelivery.objects.filter(state=AlertDelivery.State.PENDING, next_attempt__lte=now)
        .select_related("alert__rule")
        .order_by("next_attempt", "id")[:limit]
    )
    tried = 0
    for delivery in candidates:
        if _claim(delivery, now):
            attempt(delivery)
            tried += 1
    return tried


def _claim(delivery: AlertDelivery, now: datetime) -> bool:
    taken = AlertDelivery.objects.filter(
        id=delivery.id, state=AlertDelivery.State.PENDING, attempts=delivery.attempts
    ).update(attempts=delivery.attempts + 1, next_attempt=now + timedelta(seconds=CLAIM_SECONDS))
    delivery.attempts += 1
    return taken == 1


def attempt(delivery: AlertDelivery) -> bool:
    """Send one claimed delivery; record sent, or the error and the next try (failed after the last)."""
    try:
        send(delivery)
    except Exception as exc:  # noqa: BLE001 — any failure is a retry, recorded on the row
        error = str(exc) or type(exc).__name__
        if not isinstance(exc, EngineError | OSError):
            logger.exception("alert delivery %s failed", delivery.id)
        fields: dict[str, Any] = {"last_error": error[:2000]}
        if delivery.attempts >= MAX_ATTEMPTS:
            fields["state"] = AlertDelivery.State.FAILED
        else:
            fields["next_attempt"] = timezone.now() + timedelta(seconds=backoff(delivery.attempts))
        AlertDelivery.objects.filter(id=delivery.id).update(**fields)
        logger.warning(
            "alert delivery %s (%s) attempt %d: %s", delivery.id, delivery.channel, delivery.attempts, error
        )
        return False
    AlertDelivery.objects.filter(id=delivery.id).update(
        state=AlertDelivery.State.SENT, sent=timezone.now(), last_error=""
    )
    return True


def send(delivery: AlertDelivery) -> None:
    """One attempt over the delivery's channel; raises on failure."""
    alert = delivery.alert
    if delivery.channel == "webhook":
        webhook.post(delivery.target, body(alert, delivery.transition), secret=alert.rule.webhook_secret)
        return
    if delivery.channel == "email":
        subject = text(alert, delivery.transition)
        lines = [
            subject,
            "",
            f"Rule: {alert.rule.name} ({alert.rule.get_kind_display()})",
            f"Subject: {alert.subject_type} {alert.subject_name or alert.subject_id}",
            f"Opened: {alert.opened.isoformat()}",
        ]
        if delivery.transition == "resolve" and alert.resolved:
            lines.append(f"Resolved: {alert.resolved.isoformat()}")
        recipients = [a.strip() for a in delivery.target.split(",") if a.strip()]
        send_mail(subject[:200], "\n".join(lines) + "\n", settings.DEFAULT_FROM_EMAIL, recipients)
        return
    raise ValueError(f"unknown delivery channel {delivery.channel!r}")


def kick() -> None:
    """Start the sender thread if deliveries are due and it is not running; never blocks."""
    global _worker
    with _worker_lock:
        if _worker is not None and _worker.is_alive():
            return
        if not due():
            return
        _worker = threading.Thread(target=_run_worker, name="berth-alert-sender", daemon=True)
        _worker.start()


def _run_worker() -> None:
    try:
        while drain():
            pass
    except Exception:  # noqa: BLE001 — the next tick starts a fresh worker
        logger.exception("alert sender stopped")
    finally:
        close_old_connections()
        connection.close()


def wait_idle(timeout: float) -> bool:
    """Wait for the sender thread to finish (tests, shutdown); True if it did."""
    worker = _worker
    if worker is None:
        return True
    worker.join(timeout)
    return not worker.is_alive()


def list_deliveries(*, alert_id: int | None = None, limit: int = 100) -> list[AlertDelivery]:
    """Recent deliveries, newest first (the admin's view of the outbox)."""
    qs = AlertDelivery.objects.select_related("alert__rule").order_by("-id")
    if alert_id is not None:
        qs = qs.filter(alert_id=alert_id)
    return list(qs[:limit])
