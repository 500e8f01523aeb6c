"""The overview page (counts, disk use, engine versions, recent events) and the engine status line."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from dashboard import policy
from dashboard.errors import is_htmx
from engine.services import system

# Colour class per disk-use segment (pages.css); the order is the bar's order.
_SEGMENTS = (("images", "Images"), ("containers", "Containers"), ("volumes", "Volumes"))

ADMIN_LINKS = (
    ("admin:engine_image_changelist", "Images"),
    ("admin:engine_layer_changelist", "Layers"),
    ("admin:engine_container_changelist", "Containers"),
    ("admin:engine_volume_changelist", "Volumes"),
    ("admin:engine_event_changelist", "Events"),
    ("admin:engine_execsession_changelist", "Exec sessions"),
    ("admin:engine_job_changelist", "Jobs"),
    ("users", "Users"),  # the Berth-styled Users pages (views_users), not the Django admin
)


def _counts() -> dict[str, int]:
    return system.counts()


def disk_chart(usage: dict[str, int]) -> dict[str, Any]:
    """Segments of a horizontal stacked bar (SVG x/width in percent of what Berth holds) and a legend."""
    total = sum(usage.get(key, 0) for key, _ in _SEGMENTS)
    segments = []
    x = 0.0
    for key, label in _SEGMENTS:
        value = usage.get(key, 0)
        width = value / total * 100 if total else 0.0
        segments.append(
            {
                "key": key,
                "label": label,
                "bytes": value,
                "x": f"{x:.3f}",
                "width": f"{width:.3f}",
                "percent": f"{width:.0f}",
            }
        )
        x += width
    disk_total = usage.get("total", 0)
    share = total / disk_total * 100 if disk_total else 0.0
    return {
        "segments": segments,
        "total": total,
        "free": usage.get("free", 0),
        "disk_total": disk_total,
        "share": f"{share:.1f}",
        "reclaimable": usage.get("reclaimable", 0),
        "leftovers": usage.get("leftovers", 0),
    }


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    policy.check(request.user, "view")
    counts = _counts()
    if is_htmx(request) and request.GET.get("part") == "counts":
        return render(request, "dashboard/partials/_overview_counts.html", {"counts": counts})
    context = {
        "counts": counts,
        "disk": disk_chart(system.disk_usage()),
        "info": system.info(),
        "admin_links": ADMIN_LINKS if policy.allowed(request.user, "admin") else (),
    }
    return render(request, "dashboard/home.html", context)


@login_required
@require_GET
def engine_status(request: HttpRequest) -> HttpResponse:
    """The layout's status line: runtime found (and its version), cgroup mode, disk free under BERTH_ROOT."""
    policy.check(request.user, "view")
    return render(request, "dashboard/partials/_engine_status.html", {"info": system.info()})
