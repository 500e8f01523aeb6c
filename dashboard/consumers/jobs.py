"""Progress of one job (load, import, prune) for the page that started it or reopened it."""

from __future__ import annotations

from typing import Any

from dashboard.consumers.base import GatedConsumer
from engine.services import jobs


class JobConsumer(GatedConsumer):
    action = "view"

    def resolve(self) -> Any:
        job = jobs.get(self.scope["url_route"]["kwargs"]["job_id"])
        user = self.scope["user"]
        from dashboard import policy
        from engine.errors import PermissionDenied

        if job.created_by != user.get_username() and policy.role_of(user) != policy.ADMIN:
            raise PermissionDenied("this job belongs to another user")
        return job

    async def start(self) -> None:
        self.group = jobs.group_name(self.target.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.send_json(
            {
                "type": "job.progress",
                "progress": self.target.progress,
                "state": self.target.state,
                "error": self.target.error,
                "result": self.target.result,
            }
        )

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def job_progress(self, message: dict[str, Any]) -> None:
        await self.send_json(message)
