"""Reading the audit log: who did what to which object, when, with what result."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Q

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
