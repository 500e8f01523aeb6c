"""Alerts: rules (alertrules.py), their evaluation by the monitor, the bell's counts, and notifications (notify.py).

`tick()` is the monitor's step, about twice a second. Event-driven kinds (exit, oom, unhealthy,
restart_loop) read the Event rows written since a cursor kept in MonitorState, so whichever process
recorded a die, an OOM or a health change — CLI, conmon's exit command, the server — is seen once,
even across monitor restarts. Periodic kinds (cpu, memory, disk, and restart_loop's all-clear) run at
most every PERIOD seconds. An alert opens at most once per rule and subject (a partial unique
constraint, so two racing monitors cannot both open it) and resolves once (a conditional update);
each transition records an "alert" event and queues its notifications in the same transaction.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from engine import conf, events
from engine.models import Alert, AlertRule, Container, ContainerState, Event, MonitorState
from engine.services import notify
from engine.services.alertrules import (  # noqa: F401 — the alerts contract re-exports rule CRUD
    CURSOR_KEY,
    create_rule,
    delete_rule,
    get_rule,
    list_rules,
    matches,
    update_rule,
)

logger = logging.getLogger(__name__)

PERIOD = 10.0
BATCH = 500
ACTOR = "engine"
HOST = "host"
# What ends an alert of each event-driven kind, besides the container's removal.
ENDED_BY_START = ("exit", "oom", "unhealthy")

_last_periodic = 0.0


def tick(*, force_periodic: bool = False) -> None:
    """One evaluation round: new events, then (every PERIOD s) the periodic kinds, then the outbox.

    Cheap when nothing happened: one query for enabled rules, one for new events, one for due deliveries.
    """
    global _last_periodic
    rules = list(AlertRule.objects.filter(enabled=True))
    evaluate_events(rules)
    if rules and (force_periodic or time.monotonic() - _last_periodic >= PERIOD):
        _last_periodic = time.monotonic()
        evaluate_periodic(rules)
    notify.kick()


def has_work() -> bool:
    """Keep the monitor up: notifications still to send (now or after a back-off), or container
    events not yet evaluated while rules are enabled (an exit recorded just as the monitor idled out)."""
    if notify.pending():
        return True
    if not AlertRule.objects.filter(enabled=True).exists():
        return False
    state = MonitorState.objects.filter(key=CURSOR_KEY).first()
    cursor = int(((state.value if state else None) or {}).get("id") or 0)
    return Event.objects.filter(id__gt=cursor, object_type="container").exists()


def shutdown(timeout: float = 6.0) -> bool:
    """Let a notification being sent finish before the monitor exits; True if none is left in flight."""
    return notify.wait_idle(timeout)


# -- the bell and the listings ----------------------------------------------------------------------


def unseen_count() -> int:
    """Alerts not yet read in the dashboard (rules with notify_dashboard off open them already seen)."""
    return Alert.objects.filter(seen=False).count()


def mark_seen(ids: list[int] | None = None) -> int:
    """Mark these alerts (all when None) as read; return how many changed."""
    qs = Alert.objects.filter(seen=False)
    if ids is not None:
        qs = qs.filter(id__in=ids)
    return qs.update(seen=True)


def list_alerts(state: str | None = None, limit: int = 100) -> list[Alert]:
    """Alerts newest first, optionally only `open` or `resolved` ones."""
    qs = Alert.objects.select_related("rule")
    if state:
        qs = qs.filter(state=state)
    return list(qs.order_by("-opened", "-id")[:limit])


# -- opening and resolving --------------------------------------------------------------------------


def open_alert(
    rule: AlertRule, *, subject_type: str, subject_id: str, subject_name: str, message: str
) -> Alert | None:
    """Open an alert unless one is open for this rule and subject; None if it already was."""
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                rule=rule,
                subject_type=subject_type,
                subject_id=subject_id,
                subject_name=subject_name,
                message=message[:2000],
                seen=not rule.notify_dashboard,
            )
            notify.enqueue(alert, "open")
            _record(alert, "open")
    except IntegrityError:
        return None
    return alert


def resolve_alert(alert: Alert, *, reason: str = "") -> bool:
    """Resolve an open alert; False if it was resolved already (by this or another monitor)."""
    now = timezone.now()
    with transaction.atomic():
        if not Alert.objects.filter(id=alert.id, state=Alert.State.OPEN).update(
            state=Alert.State.RESOLVED, resolved=now
        ):
            return False
        alert.state, alert.resolved = Alert.State.RESOLVED, now
        notify.enqueue(alert, "resolve")
        _record(alert, "resolve", reason=reason)
    return True


def _record(alert: Alert, action: str, *, reason: str = "") -> None:
    events.record(
        "alert",
        action,
        object_id=str(alert.id),
        object_name=alert.rule.name,
        message=reason or alert.message,
        attributes={
            "subject": alert.subject_name,
            "subject_type": alert.subject_type,
            "subject_id": alert.subject_id,
            "kind": alert.rule.kind,
            "unseen": unseen_count(),
        },
        actor=ACTOR,
    )


def _resolve_where(reason: str, **filters: Any) -> int:
    done = 0
    for alert in Alert.objects.filter(state=Alert.State.OPEN, **filters).select_related("rule"):
        done += resolve_alert(alert, reason=reason)
    return done


# -- event-driven kinds -----------------------------------------------------------------------------


def evaluate_events(rules: list[AlertRule]) -> int:
    """Evaluate the events recorded since the cursor (at most BATCH); return how many were read."""
    state, _ = MonitorState.objects.get_or_create(
        key=CURSOR_KEY, defaults={"value": {"id": _last_event_id()}}
    )
    cursor = int((state.value or {}).get("id") or 0)
    # Read before the batch: an event recorded in between has a higher id and waits for the next round.
    last = _last_event_id()
    if not rules:
        if last != cursor:
            MonitorState.objects.filter(key=CURSOR_KEY).update(value={"id": last})
        return 0
    batch = list(Event.objects.filter(id__gt=cursor, object_type="container").order_by("id")[:BATCH])
    if not batch:
        if last > cursor:  # skip past other objects' events
            MonitorState.objects.filter(key=CURSOR_KEY).update(value={"id": last})
        return 0
    subjects = _Subjects()
    for event in batch:
        try:
            _evaluate(event, rules, subjects)
        except Exception:  # noqa: BLE001 — one bad event must not stall the cursor forever
            logger.exception("evaluating event %s for alerts failed", event.id)
    MonitorState.objects.filter(key=CURSOR_KEY).update(value={"id": batch[-1].id})
    return len(batch)


def _last_event_id() -> int:
    return Event.objects.order_by("-id").values_list("id", flat=True).first() or 0


class _Subjects:
    """Container rows looked up once per batch (a removed container has none)."""

    def __init__(self) -> None:
        self._rows: dict[str, Container | None] = {}

    def get(self, container_id: str) -> Container | None:
        if container_id not in self._rows:
            self._rows[container_id] = Container.objects.filter(id=container_id).first()
        return self._rows[container_id]


def _covered(rules: Iterable[AlertRule], kind: str, event: Event, row: Container | None) -> list[AlertRule]:
    labels = row.labels if row is not None else None
    return [
        r
        for r in rules
        if r.kind == kind and matches(r.scope, r.scope_value, name=event.object_name, labels=labels)
    ]


def _evaluate(event: Event, rules: list[AlertRule], subjects: _Subjects) -> None:
    cid, name, action = event.object_id, event.object_name, event.action
    attributes = event.attributes or {}
    subject = {"subject_type": "container", "subject_id": cid, "subject_name": name}
    if action == "remove":
        _resolve_where(f"container {name} was removed", subject_type="container", subject_id=cid)
        return
    if action in ("start", "restart"):
        _resolve_where(
            f"container {name} is running again",
            subject_type="container",
            subject_id=cid,
            rule__kind__in=ENDED_BY_START,
        )
        if action == "restart":
            _check_restart_loop(event, _covered(rules, "restart_loop", event, subjects.get(cid)))
        return
    row = subjects.get(cid)
    if action == "die":
        _resolve_where(
            f"container {name} stopped", subject_type="container", subject_id=cid, rule__kind="unhealthy"
        )
        code = str(attributes.get("exitCode", "0"))
        by_user = attributes.get("stoppedByUser") == "true" or (row is not None and row.stopped_by_user)
        if code != "0" and not by_user:
            for rule in _covered(rules, "exit", event, row):
                open_alert(rule, **subject, message=f"container {name} exited with code {code}")
    elif action == "oom":
        for rule in _covered(rules, "oom", event, row):
            open_alert(rule, **subject, message=f"container {name} was OOM-killed")
    elif action == "health_status":
        status = attributes.get("status")
        if status == "unhealthy":
            for rule in _covered(rules, "unhealthy", event, row):
                open_alert(rule, **subject, message=f"container {name} is unhealthy")
        elif status == "healthy":
            _resolve_where(
                f"container {name} is healthy again",
                subject_type="container",
                subject_id=cid,
                rule__kind="unhealthy",
            )


def _restarts(container_id: str, minutes: int) -> int:
    since = timezone.now() - timedelta(minutes=minutes)
    return Event.objects.filter(
        object_type="container", object_id=container_id, action="restart", time__gte=since
    ).count()


def _check_restart_loop(event: Event, rules: list[AlertRule]) -> None:
    for rule in rules:
        count = _restarts(event.object_id, rule.minutes)
        if count > rule.threshold:
            open_alert(
                rule,
                subject_type="container",
                subject_id=event.object_id,
                subject_name=event.object_name,
                message=f"container {event.object_name} restarted {count} times in {rule.minutes} min",
            )


# -- periodic kinds ---------------------------------------------------------------------------------


def evaluate_periodic(rules: list[AlertRule]) -> None:
    """cpu, memory and disk conditions, and restart loops that have calmed down."""
    for rule in rules:
        try:
            if rule.kind == "disk":
                _check_disk(rule)
            elif rule.kind in ("cpu", "memory"):
                _check_usage(rule)
            elif rule.kind == "restart_loop":
                for alert in Alert.objects.filter(rule=rule, state=Alert.State.OPEN).select_related("rule"):
                    if _restarts(alert.subject_id, rule.minutes) == 0:
                        resolve_alert(alert, reason=f"no restart for {rule.minutes} min")
        except Exception:  # noqa: BLE001 — one rule's failure must not starve the others
            logger.exception("evaluating alert rule %s failed", rule.name)


def free_percent(path: str) -> float:
    """Free space (for unprivileged use, as df shows it) under `path`, in percent of the file system."""
    st = os.statvfs(path)
    return 100.0 * st.f_bavail / st.f_blocks if st.f_blocks else 100.0


def _check_disk(rule: AlertRule) -> None:
    root = str(conf.root())
    free = free_percent(root)
    if free < rule.threshold:
        open_alert(
            rule,
            subject_type=HOST,
            subject_id="",
            subject_name=HOST,
            message=f"free disk under {root} is {free:.1f} % (below {rule.threshold:g} %)",
        )
    else:
        _resolve_where(f"free disk under {root} is {free:.1f} %", rule=rule, subject_type=HOST)


def _above_for(container_id: str, metric: str, percent: float, minutes: float) -> bool | None:
    try:
        from engine.services import metrics  # the metrics part's module; absent until it lands
    except ImportError:
        return None
    return metrics.above_for(container_id, metric, percent, minutes)


def _check_usage(rule: AlertRule) -> None:
    running = Container.objects.filter(state__in=[ContainerState.RUNNING, ContainerState.PAUSED])
    seen = set()
    for row in running:
        if not matches(rule.scope, rule.scope_value, name=row.name, labels=row.labels):
            continue
        seen.add(row.id)
        above = _above_for(row.id, rule.kind, rule.threshold, rule.minutes)
        what = "CPU" if rule.kind == "cpu" else "memory"
        if above is True:
            open_alert(
                rule,
                subject_type="container",
                subject_id=row.id,
                subject_name=row.name,
                message=f"container {row.name} above {rule.threshold:g} % {what} for {rule.minutes} min",
            )
        elif above is False:
            _resolve_where(
                f"container {row.name} {what} back under {rule.threshold:g} %", rule=rule, subject_id=row.id
            )
    stale = Alert.objects.filter(rule=rule, state=Alert.State.OPEN).filter(~Q(subject_id__in=seen))
    for alert in stale.select_related("rule"):
        resolve_alert(alert, reason=f"container {alert.subject_name} is no longer running or covered")
