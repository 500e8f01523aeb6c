"""Metrics history for the dashboard: JSON series for the charts and the top-containers table.

The Stats tab and the overview draw the last hour, day or week with static/js/history.js, which asks
`container_history` / `host_history` for `metrics.history(…).to_dict()`; the overview's table of the
top containers by CPU or memory is an htmx partial (`top_containers`). Everything here only reads.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import path
from django.views.decorators.http import require_GET

from dashboard import policy
from engine.services import containers, metrics

# The windows the charts offer (button label → how far back); the first is the default.
WINDOWS: dict[str, timedelta] = {
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(days=7),
}
TOP_BY = {"cpu": "CPU", "memory": "Memory"}
TOP_LIMIT = 10
MAX_POINTS = 600


def window_of(request: HttpRequest, default: str = "hour") -> str:
    """The `window` query parameter when it is one we offer, else `default`."""
    window = request.GET.get("window", default)
    return window if window in WINDOWS else default


def _series(container_id: str | None, window: str) -> dict[str, Any]:
    series = metrics.history(container_id, since=WINDOWS[window], max_points=MAX_POINTS)
    data = dict(series.to_dict())
    data["window"] = window
    data["since"] = WINDOWS[window].total_seconds()
    return data


@login_required
@require_GET
def container_history(request: HttpRequest, ref: str) -> HttpResponse:
    """One container's history for the Stats tab's chart, as JSON (404 for an unknown container)."""
    policy.check(request.user, "view")
    container = containers.resolve(ref)
    response = JsonResponse(_series(container.id, window_of(request)))
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_GET
def host_history(request: HttpRequest) -> HttpResponse:
    """The host's history (CPU, memory, disk free) for the overview's charts, as JSON."""
    policy.check(request.user, "view")
    response = JsonResponse(_series(None, window_of(request)))
    response["Cache-Control"] = "no-store"
    return response


def _top_rows(window: str, by: str) -> list[dict[str, Any]]:
    rows = metrics.top(WINDOWS[window], by=by, limit=TOP_LIMIT)
    key = "cpu_avg" if by == "cpu" else "memory_avg"
    biggest = max((getattr(row, key) or 0 for row in rows), default=0) or 1
    return [
        {
            # The bar beside the name: this row's figure against the first row's, in percent.
            "share": f"{(getattr(row, key) or 0) / biggest * 100:.1f}",
            "id": row.container_id,
            "name": row.name,
            "cpu_avg": row.cpu_avg,
            "cpu_max": row.cpu_max,
            "memory_avg": row.memory_avg,
            "memory_max": row.memory_max,
        }
        for row in rows
    ]


@login_required
@require_GET
def top_containers(request: HttpRequest) -> HttpResponse:
    """The overview's table of the busiest containers over a window, by CPU or by memory (a partial)."""
    policy.check(request.user, "view")
    window = window_of(request, default="day")
    asked = request.GET.get("by", "cpu")
    by = asked if asked in TOP_BY else "cpu"
    context = {
        "rows": _top_rows(window, by),
        "window": window,
        "by": by,
        "windows": list(WINDOWS),
        "by_choices": list(TOP_BY.items()),
    }
    return render(request, "dashboard/partials/_top_containers.html", context)


urlpatterns = [
    path("metrics/host/", host_history, name="host_history"),
    path("metrics/top/", top_containers, name="top_containers"),
    path("containers/<str:ref>/history/", container_history, name="container_history"),
]
