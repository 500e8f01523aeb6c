"""The gate every consumer passes before accept(): login, then policy, then the object."""

from __future__ import annotations

import json
import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from dashboard import policy
from engine.errors import EngineError, NotFound, PermissionDenied
from engine.services import users

logger = logging.getLogger(__name__)


class GatedConsumer(AsyncWebsocketConsumer):
    """Subclasses set `action` and implement `resolve()` (sync, runs in a thread) and `start()`."""

    action = "view"

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        try:
            self.target = await database_sync_to_async(self._authorize)(user)
        except PermissionDenied:
            logger.warning("websocket refused: %s may not %s", user, self.action)
            await self.close(code=4403)
            return
        except NotFound:
            await self.close(code=4404)
            return
        except EngineError:
            await self.close(code=4400)
            return
        await self.accept()
        # SECURITY.md web checklist 3: a deactivation, role or password change closes the user's sockets.
        if self.channel_layer is not None:
            revoke = users.revocation_group(user.pk)
            await self.channel_layer.group_add(revoke, self.channel_name)
            self.groups: list[str] = [*self.groups, revoke]  # Channels discards these groups on disconnect
        await self.start()

    async def user_revoke(self, message: dict[str, Any]) -> None:
        await self.close(code=4401)

    def _authorize(self, user: Any) -> Any:
        target = self.resolve()
        policy.check(user, self.action, target)
        return target

    def resolve(self) -> Any:
        return None

    async def start(self) -> None:
        """Called after accept()."""

    async def send_json(self, data: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(data, default=str))

    async def fail(self, exc: EngineError) -> None:
        await self.send_json({"type": "error", "message": str(exc)})
        await self.close(code=4000 + exc.status)
