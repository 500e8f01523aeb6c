"""Engine events pushed to open pages: every page subscribes and updates rows and badges in place."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from dashboard.consumers.base import GatedConsumer
from engine.events import EVENTS_GROUP
from engine.models import Container, Event


class EventsConsumer(GatedConsumer):
    action = "view"

    async def start(self) -> None:
        await self.channel_layer.group_add(EVENTS_GROUP, self.channel_name)

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(EVENTS_GROUP, self.channel_name)

    async def engine_event(self, message: dict[str, Any]) -> None:
        data = await database_sync_to_async(_describe)(message["event_id"])
        if data is not None:
            await self.send_json(data)


def _describe(event_id: int) -> dict[str, Any] | None:
    event = Event.objects.filter(pk=event_id).first()
    if event is None:
        return None
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
        container = Container.objects.filter(pk=event.object_id).only("state", "exit_code").first()
        data["state"] = container.state if container else "removed"
        data["exit_code"] = container.exit_code if container else None
    return data
