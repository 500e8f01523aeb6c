"""Recording engine events: the audit log row plus a channel-layer message for open pages.

Events are verbs (create, start, stop, pull, tag, delete, …). Open pages learn of them because the
server follows the events table (dashboard/monitor.py), whichever process wrote them: the web
server, the CLI or conmon's exit commands.
"""

from __future__ import annotations

import getpass
import os
from contextvars import ContextVar
from typing import Any

from engine.models import Event

EVENTS_GROUP = "events"

_actor: ContextVar[str | None] = ContextVar("berth_actor", default=None)


def default_actor() -> str:
    """The actor for work started from a shell: cli:<unix user>."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = str(os.getuid())
    return f"cli:{name}"


def current_actor() -> str:
    return _actor.get() or default_actor()


class acting_as:
    """Context manager: record events inside it as done by `actor` (a user name)."""

    def __init__(self, actor: str) -> None:
        self.actor = actor
        self._token: Any = None

    def __enter__(self) -> acting_as:
        self._token = _actor.set(self.actor)
        return self

    def __exit__(self, *exc: object) -> None:
        _actor.reset(self._token)


def record(
    object_type: str,
    action: str,
    *,
    object_id: str = "",
    object_name: str = "",
    result: str = "ok",
    message: str = "",
    attributes: dict[str, Any] | None = None,
    actor: str | None = None,
) -> Event:
    """Write one audit row and tell open pages about it."""
    event = Event.objects.create(
        actor=actor or current_actor(),
        object_type=object_type,
        object_id=object_id,
        object_name=object_name,
        action=action,
        result=result,
        message=message[:4000],
        attributes=attributes or {},
    )
    return event
