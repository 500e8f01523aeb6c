"""Dashboard pages: the audit log (filterable, paginated, live) and the engine status line.

Events are read straight from the audit table: it is append-only and the engine offers no richer
query than a filtered, ordered slice. New events reach open pages through static/js/live.js, which
fires `berth:refresh` on the table (data-live="*"), and the table re-fetches its current filter.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.views.decorators.http import require_GET, require_POST

from dashboard import policy, views
from dashboard.errors import is_htmx
from dashboard.responses import refreshed
from engine import conf, events
from engine.errors import InvalidArgument
from engine.services import audit

PAGE_SIZE = 50
RECENT = 15
RESULTS = ("ok", "error", "denied")


def _filters(request: HttpRequest) -> dict[str, str]:
    return {
        key: request.GET.get(key, "").strip()[:200] for key in ("user", "type", "object", "action", "result")
    }


def _query(filters: dict[str, str]) -> Any:
    return audit.search(
        actor=filters["user"],
        object_type=filters["type"],
        obj=filters["object"],
        action=filters["action"],
        result=filters["result"],
    )


@login_required
@require_GET
def event_list(request: HttpRequest) -> HttpResponse:
    policy.check(request.user, "view")
    filters = _filters(request)
    page = Paginator(_query(filters), PAGE_SIZE).get_page(request.GET.get("page"))
    query = {k: v for k, v in filters.items() if v}
    context = {
        "page": page,
        "events": list(page.object_list),
        "filters": filters,
        "qs": urlencode(query),
        "filtered": bool(query),
    }
    if is_htmx(request):
        return render(request, "dashboard/partials/_events_table.html", context)
    choices = audit.filter_choices()
    context.update(
        types=choices.types,
        actions=choices.actions,
        results=RESULTS,
        retention_days=conf.events_retention_days(),
    )
    return render(request, "dashboard/events.html", context)


@login_required
@require_POST
def events_prune(request: HttpRequest) -> HttpResponse:
    """Delete events older than N days (the form's, else the retention setting); itself an event."""
    policy.check(request.user, "event.prune")
    raw = request.POST.get("days", "").strip()
    if raw and not raw.isdigit():
        raise InvalidArgument(f"invalid age {raw!r}: give a whole number of days")
    with events.acting_as(request.user.get_username()):
        result = audit.prune(older_than_days=int(raw) if raw else None)
    message = f"Pruned {result.deleted} event{'s' if result.deleted != 1 else ''} older than {result.before:%Y-%m-%d %H:%M} UTC"
    return refreshed(request, message, event="events-changed", target=reverse("events"))


@login_required
@require_GET
def events_recent(request: HttpRequest) -> HttpResponse:
    """The overview's recent-events list (a partial, re-fetched live)."""
    policy.check(request.user, "view")
    recent = audit.recent(RECENT)
    return render(request, "dashboard/partials/_event_list.html", {"events": recent})


urlpatterns = [
    path("events/", event_list, name="events"),
    path("events/recent/", events_recent, name="events_recent"),
    path("events/prune/", events_prune, name="events_prune"),
    # The status line of the layout; the view lives with the overview in dashboard/views.py.
    path("engine/status/", views.engine_status, name="engine_status"),
]
