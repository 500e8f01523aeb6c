"""The events cursor of a page: the newest event id when its request began, for live.js to resume from.

A page is read from the database, then live.js opens ws/events/; an event written in between would
be missed. So every full page carries the newest event id (templates/base.html puts it on live.js's
script tag as data-live-after), and the socket asks for the events after it (dashboard/consumers/events.py
replays them). The id is read before the view runs, never after: an event written while the view reads
is then replayed (harmless, the client refreshes again) rather than lost.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase

from engine.models import Event


def newest_event_id() -> int:
    """The id of the newest event, 0 when there is none."""
    return Event.objects.order_by("-id").values_list("id", flat=True).first() or 0


class LiveCursorMiddleware:
    """Set `request.live_after`: the cursor for full pages of signed-in users, else None (htmx partials
    load no live.js, so they need no query)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        user = getattr(request, "user", None)
        full_page = user is not None and user.is_authenticated and "HX-Request" not in request.headers
        request.live_after = newest_event_id() if full_page else None  # type: ignore[attr-defined]
        return self.get_response(request)
