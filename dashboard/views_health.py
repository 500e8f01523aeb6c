"""The Health panel of a container's page: status, failing streak, the last results, the check itself.

The panel loads after the page and re-renders itself whenever an event about the container arrives
(health_status among them), through static/js/live.js's `berth:refresh`. It only reads.
"""

from __future__ import annotations

import shlex
from datetime import datetime
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.views.decorators.http import require_GET

from dashboard import policy
from dashboard.templatetags.observing import health_status
from engine.errors import ContainerNotFound
from engine.services import containers, healthconfig


def _when(text: Any) -> datetime | None:
    """A result's Start/End (RFC 3339, maybe with nanoseconds and Z) as a datetime, or None."""
    if not isinstance(text, str) or not text:
        return None
    value = text.replace("Z", "+00:00")
    head, dot, rest = value.partition(".")
    if dot:  # Python parses at most microseconds: cut the fraction to six digits, keep the offset
        digits = "".join(ch for ch in rest if ch.isdigit())
        offset = rest[len(digits) :]
        value = f"{head}.{digits[:6]}{offset}"
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _results(health: dict[str, Any]) -> list[dict[str, Any]]:
    """The last results, newest first, with start time and duration in milliseconds."""
    rows = []
    for entry in reversed(health.get("Log") or []):
        start, end = _when(entry.get("Start")), _when(entry.get("End"))
        took = round((end - start).total_seconds() * 1000) if start and end else None
        rows.append(
            {
                "start": start,
                "took_ms": took,
                "exit_code": entry.get("ExitCode"),
                "output": str(entry.get("Output") or "").strip()[-4000:],
            }
        )
    return rows


def _check(container: Any) -> dict[str, Any] | None:
    """The effective check (argv and timings in seconds), or None when the container has none."""
    spec = healthconfig.effective(container)
    if spec is None:
        return None
    return {
        "command": shlex.join(spec.argv),
        "interval": spec.interval,
        "timeout": spec.timeout,
        "start_period": spec.start_period,
        "start_interval": spec.start_interval,
        "retries": spec.retries,
        "on_failure": spec.on_failure,
    }


def panel_context(container: Any) -> dict[str, Any]:
    health = container.health if isinstance(container.health, dict) else {}
    return {
        "c": container,
        "status": health_status(health),
        "streak": health.get("FailingStreak") or 0,
        "results": _results(health),
        "check": _check(container),
    }


@login_required
@require_GET
def container_health(request: HttpRequest, ref: str) -> HttpResponse:
    """The Health panel's body (a partial); empty once the container is gone."""
    policy.check(request.user, "view")
    try:
        container = containers.resolve(ref)
    except ContainerNotFound:
        return HttpResponse("")
    return render(request, "dashboard/partials/_container_health.html", panel_context(container))


urlpatterns = [
    path("containers/<str:ref>/health/", container_health, name="container_health"),
]
