"""Engine events pushed to open pages: every page subscribes and updates rows and badges in place.

Frames (server → client, JSON):
- {"type": "event", "id": …, "action": …, "object_type": …, …} for each event, in id order;
- {"type": "resync", "newest": id} when the client cannot be brought up to date by replay alone
  (more than REPLAY_LIMIT events missed, or a cursor past the newest event): it fetches every live
  part again and resumes from `newest`.

`?after=<event id>` (the page's data-live-after, or the last id live.js applied before a reconnect)
replays the events written since: the consumer joins the group first, then reads the table, so an
event is sent at least once; one that arrives both ways is sent once (`_replayed`), and the client
also ignores ids it has applied. A bad cursor is an error frame and close 4400.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async

from dashboard.consumers.base import GatedConsumer
from engine.errors import InvalidArgument
from engine.events import EVENTS_GROUP
from engine.models import Container, Event

REPLAY_LIMIT = 500


class EventsConsumer(GatedConsumer):
    action = "view"
    _replayed: set[int] = frozenset()  # type: ignore[assignment]  # replaced per socket in start()

    async def start(self) -> None:
        self._replayed: set[int] = set()
        await self.channel_layer.group_add(EVENTS_GROUP, self.channel_name)
        try:
            after = cursor_of(self.scope.get("query_string", b""))
        except InvalidArgument as exc:
            await self.fail(exc)
            return
        if after is None:
            return
        # Group messages wait in the channel until this handler returns, so none is lost meanwhile.
        resync, frames = await database_sync_to_async(_missed)(after)
        if resync is not None:
            await self.send_json({"type": "resync", "newest": resync})
        for frame in frames:
            self._replayed.add(frame["id"])
            await self.send_json(frame)

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(EVENTS_GROUP, self.channel_name)

    async def engine_event(self, message: dict[str, Any]) -> None:
        event_id = message["event_id"]
        if event_id in self._replayed:
            self._replayed.discard(event_id)  # already sent by the replay
            return
        frames = await database_sync_to_async(_describe)([event_id])
        for frame in frames:
            await self.send_json(frame)


def cursor_of(query_string: bytes) -> int | None:
    """The `after` event id of a socket's query string, None without one; raise InvalidArgument."""
    values = parse_qs(query_string.decode("latin-1")).get("after")
    if not values:
        return None
    value = values[-1]
    if not re.fullmatch(r"[0-9]{1,18}", value):
        raise InvalidArgument(f"after must be an event id (a whole number), not {value[:40]!r}")
    return int(value)


def _missed(after: int) -> tuple[int | None, list[dict[str, Any]]]:
    """The frames of the newest REPLAY_LIMIT events after `after`, and the id to resync to (or None)."""
    ids = list(
        Event.objects.filter(id__gt=after).order_by("-id").values_list("id", flat=True)[: REPLAY_LIMIT + 1]
    )
    if not ids:
        newest = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
        # A cursor past the newest event comes from another database (restored, recreated): start over.
        return (newest if after > newest else None), []
    resync = ids[0] if len(ids) > REPLAY_LIMIT else None
    return resync, _describe(sorted(ids[:REPLAY_LIMIT]))


def _describe(event_ids: list[int]) -> list[dict[str, Any]]:
    """One frame per event that still exists, in the order given (two queries whatever the count)."""
    events = Event.objects.in_bulk(event_ids)
    container_ids = {e.object_id for e in events.values() if e.object_type == "container" and e.object_id}
    containers = {c.pk: c for c in Container.objects.filter(pk__in=container_ids).only("state", "exit_code")}
    frames = []
    for event_id in event_ids:
        event = events.get(event_id)
        if event is None:
            continue
        data: dict[str, Any] = {
            "type": "event",
            "id": event.pk,
            "time": event.time.isoformat(),
            "actor": event.actor,
            "action": event.action,
            "object_type": event.object_type,
            "object_id": event.object_id,
            "object_name": event.object_name,
            "result": event.result,
        }
        if event.object_type == "alert" or event.action == "health_status":
            # The bell shows attributes.unseen; a health chip could use attributes.status.
            data["attributes"] = event.attributes
        if event.object_type == "container" and event.object_id:
            container = containers.get(event.object_id)
            data["state"] = container.state if container else "removed"
            data["exit_code"] = container.exit_code if container else None
        frames.append(data)
    return frames
