"""Reading the audit log: who did what to which object, when, with what result."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet

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
    """The values seen in one column (object_type, action, …), for filter menus."""
    if field not in ("object_type", "action", "result", "actor"):
        raise ValueError(f"not a filterable field: {field}")
    return sorted(v for v in Event.objects.values_list(field, flat=True).distinct() if v)


def recent(count: int) -> list[Event]:
    return list(Event.objects.order_by("-time", "-id")[:count])
