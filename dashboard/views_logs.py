"""The log view's server side beside its websocket: pages of older/newer lines, search over the whole
log, and the page that shows the logs of several containers merged by time.

URL names: `container_logs_lines`, `container_logs_search`, `logs_merged`. Lines travel as in the
websocket's "lines" frames (dashboard/consumers/logs.py) with the line's cursor as a fourth item.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import path
from django.views.decorators.http import require_GET

from dashboard import ansi, policy
from dashboard.views_containers import LOG_TAILS
from engine.errors import InvalidArgument
from engine.services import containers, logsearch

MAX_MERGED = 12


def _line(hit: logsearch.Hit) -> list[Any]:
    line = hit.line
    return [line.time.isoformat(timespec="milliseconds"), line.stream, ansi.payload(line.text), hit.cursor]


def _time(request: HttpRequest, name: str) -> datetime | None:
    value = request.GET.get(name, "").strip()
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(f"invalid {name} time {value!r}: use ISO 8601 with a zone") from None
    if when.tzinfo is None:
        raise InvalidArgument(f"invalid {name} time {value!r}: it needs a zone (Z or +hh:mm)")
    return when


def _int(request: HttpRequest, name: str, default: int) -> int:
    value = request.GET.get(name, "")
    if not value:
        return default
    if not value.isdigit():
        raise InvalidArgument(f"invalid {name} {value!r}: use a whole number")
    return int(value)


def _container(request: HttpRequest, ref: str) -> Any:
    container = containers.resolve(ref)
    policy.check(request.user, "logs", container)
    return container


@login_required
@require_GET
def lines(request: HttpRequest, ref: str) -> JsonResponse:
    """?before=<cursor> | ?before_time=<iso>&skip=<n> | ?after=<cursor> | ?around=<cursor>, &limit=."""
    container = _container(request, ref)
    limit = _int(request, "limit", 500)
    get = request.GET
    if get.get("around"):
        older = logsearch.page_before(container.id, cursor=get["around"], limit=max(limit // 2, 1))
        newer = logsearch.page_after(container.id, cursor=get["around"], limit=limit)
        page = logsearch.Page(
            older.lines + newer.lines,
            older.start or newer.start,
            newer.end,
            older.more_before,
            newer.more_after,
        )
    elif get.get("after"):
        page = logsearch.page_after(container.id, cursor=get["after"], limit=limit)
    else:
        page = logsearch.page_before(
            container.id,
            cursor=get.get("before") or None,
            before_time=_time(request, "before_time"),
            skip=_int(request, "skip", 0),
            limit=limit,
        )
    return JsonResponse(
        {
            "lines": [_line(hit) for hit in page.lines],
            "start": page.start,
            "end": page.end,
            "more_before": page.more_before,
            "more_after": page.more_after,
        }
    )


@login_required
@require_GET
def search(request: HttpRequest, ref: str) -> JsonResponse:
    """?q=<text>[&since=<iso>][&until=<iso>][&after=<cursor>][&limit=]: the first matches, oldest first."""
    container = _container(request, ref)
    found = logsearch.search(
        container.id,
        request.GET.get("q", ""),
        since=_time(request, "since"),
        until=_time(request, "until"),
        after=request.GET.get("after") or None,
        limit=_int(request, "limit", 200),
    )
    return JsonResponse({"matches": [_line(hit) for hit in found.hits], "next": found.next})


@login_required
@require_GET
def merged(request: HttpRequest) -> HttpResponse:
    """/logs/?c=<ref>&c=<ref>…: the live logs of several containers, merged by time."""
    refs = [r for r in request.GET.getlist("c") if r.strip()]
    if not refs:
        raise InvalidArgument("choose containers: /logs/?c=<name or id>&c=…")
    if len(refs) > MAX_MERGED:
        raise InvalidArgument(f"at most {MAX_MERGED} containers at once")
    chosen = []
    for ref in dict.fromkeys(refs):
        chosen.append(_container(request, ref))
    sources = [{"id": c.id, "name": c.name, "ws": f"/ws/containers/{c.id}/logs/"} for c in chosen]
    context = {"chosen": chosen, "sources": sources, "tails": LOG_TAILS}
    return render(request, "dashboard/logs_merged.html", context)


urlpatterns = [
    path("containers/<str:ref>/logs/lines/", lines, name="container_logs_lines"),
    path("containers/<str:ref>/logs/search/", search, name="container_logs_search"),
    path("logs/", merged, name="logs_merged"),
]
