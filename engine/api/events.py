"""Docker API: GET /events, Berth's audit log in Docker's event shape.

Only successful actions are Docker events (a failure is an audit record, not something that
happened to an object). Past events come from the events table; live ones by polling it, because
other processes (the berth CLI, conmon's exit commands) write there too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from engine.api.http import Request, Stream
from engine.api.router import route
from engine.api.system import parse_timestamp
from engine.errors import EngineError, InvalidArgument
from engine.models import Event
from engine.services import audit, containers

POLL = 0.2

# Berth's (type, action) → Docker's action; anything not here is not a Docker event.
_ACTIONS: dict[str, dict[str, str]] = {
    "container": {
        a: a
        for a in (
            "create",
            "start",
            "die",
            "stop",
            "kill",
            "pause",
            "unpause",
            "restart",
            "rename",
            "oom",
            "exec_start",
            "exec_die",
            "commit",
        )
    }
    | {"remove": "destroy"},
    "image": {a: a for a in ("pull", "push", "tag", "untag", "delete", "load", "save", "import")},
    "volume": {"create": "create", "remove": "destroy", "mount": "mount", "unmount": "unmount"},
    "network": {a: a for a in ("create", "connect", "disconnect", "destroy")},
}
_NAMED_FILTERS = ("container", "volume", "network", "daemon", "plugin", "node", "service", "secret", "config")
_FILTERS = (*_NAMED_FILTERS, "type", "event", "image", "label", "scope")


class _Translator:
    """Turns audit rows into Docker events, remembering each container's image and labels."""

    def __init__(self) -> None:
        self._containers: dict[str, tuple[str, dict[str, str]]] = {}

    def _container_facts(self, event: Event) -> tuple[str, dict[str, str]]:
        known = self._containers.get(event.object_id)
        if known is None:
            image = (event.attributes or {}).get("image", "")
            labels: dict[str, str] = {}
            try:
                row = containers.resolve(event.object_id)
                image, labels = row.image_ref, dict(row.labels or {})
            except EngineError:
                pass  # removed since: what the event itself says must do
            known = (image, labels)
            if image:
                self._containers[event.object_id] = known
        return known

    def docker_event(self, event: Event) -> dict[str, Any] | None:
        action = _ACTIONS.get(event.object_type, {}).get(event.action)
        if action is None or event.result != "ok":
            return None
        extra = {k: str(v) for k, v in (event.attributes or {}).items()}
        actor_id = event.object_id
        attributes: dict[str, str] = {}
        if event.object_type == "container":
            image, labels = self._container_facts(event)
            extra.pop("state", None)
            command = extra.pop("command", "")
            extra.pop("exec", None)
            if action == "exec_start":
                action = f"exec_start: {command}"
            if "old" in extra:
                extra["oldName"] = "/" + extra.pop("old")
            attributes = {**labels, **extra, "image": image, "name": event.object_name}
        elif event.object_type == "image":
            attributes = {"name": event.object_name}
            if action in ("pull", "push"):
                actor_id = event.object_name  # Docker names the reference, not the ID
        elif event.object_type == "volume":
            attributes = {"driver": "local", **extra}
        elif event.object_type == "network":
            attributes = {"name": event.object_name, "type": extra.pop("driver", "bridge"), **extra}
        when = event.time.timestamp()
        shaped: dict[str, Any] = {
            "Type": event.object_type,
            "Action": action,
            "Actor": {"ID": actor_id, "Attributes": attributes},
            "scope": "local",
            "time": int(when),
            "timeNano": int(round(when * 1_000_000)) * 1000,
        }
        if event.object_type in ("container", "image"):
            shaped.update(status=action, id=actor_id)
            if event.object_type == "container":
                shaped["from"] = attributes.get("image", "")
        return shaped


def _strip_tag(name: str) -> str:
    head, _, tail = name.rpartition(":")
    return head if head and "/" not in tail else name


def _fuzzy(wanted: list[str], *candidates: str) -> bool:
    return any(c and (c == w or c.startswith(w)) for w in wanted for c in candidates)


def matches(shaped: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    """Moby's event filter: every given key must match (names and IDs by prefix, like moby's FuzzyMatch)."""
    kind = shaped["Type"]
    action = shaped["Action"]
    actor = shaped["Actor"]
    attributes = actor["Attributes"]
    if "type" in filters and kind not in filters["type"]:
        return False
    if "event" in filters and action not in filters["event"] and action.split(":")[0] not in filters["event"]:
        return False
    if "scope" in filters and "local" not in filters["scope"]:
        return False
    for key in _NAMED_FILTERS:
        if key in filters and not _fuzzy(filters[key], actor["ID"], attributes.get("name", "")):
            return False
    if "image" in filters:
        name = attributes.get("name" if kind == "image" else "image", "")
        options = {actor["ID"], name, _strip_tag(actor["ID"]), _strip_tag(name)}
        if not options & set(filters["image"]):
            return False
    for spec in filters.get("label", []):
        key, sep, value = spec.partition("=")
        if key not in attributes or (sep and attributes[key] != value):
            return False
    return True


def _when(value: str | None, name: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        return parse_timestamp(value)
    except InvalidArgument:
        raise InvalidArgument(f"invalid {name} value {value!r}: use Unix seconds or RFC 3339") from None


@route("GET", "/events")
def events(request: Request) -> Stream:
    since = _when(request.arg("since"), "since")
    until = _when(request.arg("until"), "until")
    filters = request.filters(_FILTERS)
    types = [t for t in filters.get("type", []) if t in _ACTIONS]
    if filters.get("type") and not types:
        types = ["none"]  # only types Berth never records: nothing can match
    query = audit.EventQuery(
        since=datetime.fromtimestamp(since, UTC) if since is not None else None, types=types
    )
    # Without `since`, Docker sends only what happens from now on.
    start_id = 0 if since is not None else audit.latest_id()
    return Stream(chunks=_follow(request, query, start_id, until, filters))


def _follow(
    request: Request,
    query: audit.EventQuery,
    last_id: int,
    until: float | None,
    filters: dict[str, list[str]],
) -> Iterator[bytes]:
    translator = _Translator()
    while not request.gone.is_set():
        final = until is not None and time.time() >= until
        for event in audit.list_events(query, after_id=last_id):
            last_id = event.pk
            if until is not None and event.time.timestamp() > until:
                continue
            shaped = translator.docker_event(event)
            if shaped is not None and matches(shaped, filters):
                yield json.dumps(shaped).encode() + b"\n"
        if final:
            return
        request.gone.wait(POLL)
