"""Reading the audit log: who did what to which object, when, with what result."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from engine import conf, events
from engine.errors import InvalidArgument
from engine.models import Event


@dataclass(frozen=True)
class EventQuery:
    since: datetime | None = None
    until: datetime | None = None
    types: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    actors: list[str] = field(default_factory=list)
    objects: list[str] = field(default_factory=list)  # a name, or an ID prefix
    tail: int | None = None


def list_events(query: EventQuery, *, after_id: int = 0) -> list[Event]:
    """Events matching the query, oldest first."""
    qs = Event.objects.filter(id__gt=after_id)
    if query.since:
        qs = qs.filter(time__gte=query.since)
    if query.until:
        qs = qs.filter(time__lt=query.until)
    if query.types:
        qs = qs.filter(object_type__in=query.types)
    if query.actions:
        qs = qs.filter(action__in=query.actions)
    if query.actors:
        qs = qs.filter(actor__in=query.actors)
    if query.objects:
        match = Q()
        for value in query.objects:
            match |= Q(object_name=value) | Q(object_id__startswith=value)
        qs = qs.filter(match)
    if query.tail:
        return list(reversed(qs.order_by("-id")[: query.tail]))
    return list(qs.order_by("id"))


def latest_id() -> int:
    """The newest event's id (0 when there are none): where a follower starts to see only new events."""
    return Event.objects.order_by("-id").values_list("id", flat=True).first() or 0


def as_dict(event: Event) -> dict[str, Any]:
    """Docker's event shape, plus who did it and the result."""
    return {
        "Type": event.object_type,
        "Action": event.action,
        "Actor": {
            "ID": event.object_id,
            "Attributes": {"name": event.object_name, **(event.attributes or {})},
        },
        "time": int(event.time.timestamp()),
        "timeNano": int(event.time.timestamp() * 1e9),
        "User": event.actor,
        "Result": event.result,
        "Message": event.message,
    }


def search(
    *, actor: str = "", object_type: str = "", obj: str = "", action: str = "", result: str = ""
) -> QuerySet[Event]:
    """The audit log, newest first, narrowed by the dashboard's filters (a lazy queryset to page)."""
    qs = Event.objects.all()
    if actor:
        qs = qs.filter(actor__icontains=actor)
    if object_type:
        qs = qs.filter(object_type=object_type)
    if obj:
        qs = qs.filter(Q(object_name__icontains=obj) | Q(object_id__startswith=obj.lower()))
    if action:
        qs = qs.filter(action=action)
    if result:
        qs = qs.filter(result=result)
    return qs.order_by("-time", "-id")


def distinct_values(field: str) -> list[str]:
    """The values seen in one column (object_type, action, …), each once, sorted."""
    if field not in ("object_type", "action", "result", "actor"):
        raise ValueError(f"not a filterable field: {field}")
    # order_by(field) replaces the model's default ordering (-time, -id), which DISTINCT would
    # otherwise include in its columns, listing each value once per event.
    return [v for v in Event.objects.order_by(field).values_list(field, flat=True).distinct() if v]


@dataclass(frozen=True)
class FilterChoices:
    """What the audit log's filter menus offer: each object type and action seen, once."""

    types: list[str]
    actions: list[str]


def filter_choices() -> FilterChoices:
    """The object types and actions seen in the log, distinct and sorted, from one query."""
    pairs = Event.objects.order_by().values_list("object_type", "action").distinct()
    types: set[str] = set()
    actions: set[str] = set()
    for object_type, action in pairs:
        types.add(object_type)
        actions.add(action)
    return FilterChoices(types=sorted(t for t in types if t), actions=sorted(a for a in actions if a))


@dataclass(frozen=True)
class PruneResult:
    deleted: int
    before: datetime


def prune(*, older_than_days: int | None = None) -> PruneResult:
    """Delete events older than `older_than_days` (default: the retention setting) and record it.

    The prune is itself an event ("event prune", with the count and the cut-off), written after the
    deletion so it is never pruned by itself. Raises InvalidArgument for a negative or zero age, or
    when retention is 0 (keep for ever) and no age is given.
    """
    days = conf.events_retention_days() if older_than_days is None else older_than_days
    if days <= 0:
        if older_than_days is None:
            raise InvalidArgument("events are kept for ever (BERTH_EVENTS_RETENTION_DAYS=0); give an age")
        raise InvalidArgument(f"invalid age {older_than_days}: give a number of days of at least 1")
    before = timezone.now() - timedelta(days=days)
    deleted, _ = Event.objects.filter(time__lt=before).delete()
    events.record(
        "event",
        "prune",
        object_name=f"older than {days} days",
        message=f"deleted {deleted} event{'s' if deleted != 1 else ''} from before {before:%Y-%m-%d %H:%M} UTC",
        attributes={"deleted": str(deleted), "before": before.isoformat(), "days": str(days)},
    )
    return PruneResult(deleted=deleted, before=before)


_last_auto_prune = 0.0


def prune_expired(*, every: float = 3600.0) -> PruneResult | None:
    """The server's housekeeping: apply the retention setting at most once per `every` seconds.

    Records an event only when something was deleted, so an idle engine's log does not fill with
    empty prunes. Returns None when it did not run (too soon, or retention 0).
    """
    global _last_auto_prune
    now = time.monotonic()
    days = conf.events_retention_days()
    if days <= 0 or (_last_auto_prune and now - _last_auto_prune < every):
        return None
    _last_auto_prune = now
    before = timezone.now() - timedelta(days=days)
    if not Event.objects.filter(time__lt=before).exists():
        return PruneResult(deleted=0, before=before)
    with events.acting_as("engine"):
        return prune(older_than_days=days)


def recent(count: int) -> list[Event]:
    return list(Event.objects.order_by("-time", "-id")[:count])
