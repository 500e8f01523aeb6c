"""Template helpers for observing: the health chip and the alerts bell. Load with `{% load observing %}`.

The chip's text comes from the container's Docker-shaped `State.Health` ({} when there is no check);
format_html escapes everything, as in berth.py.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from dashboard import policy
from engine.services import alerts

register = template.Library()

HEALTH_STATES = ("starting", "healthy", "unhealthy")


def health_status(health: Any) -> str:
    """The health status of a `Container.health` value: starting, healthy, unhealthy or "" (no check)."""
    status = health.get("Status") if isinstance(health, dict) else None
    return status if status in HEALTH_STATES else ""


@register.simple_tag
def health_chip(health: Any, state: str = "running") -> SafeString:
    """`{% health_chip c.health c.state %}` → a small chip (colour plus text), or nothing.

    Like `ps`, only a running container shows its health: an exited one keeps its last results in the
    Health panel, but "unhealthy" next to "exited" would read as a second failure.
    """
    status = health_status(health)
    if not status or state != "running":
        return SafeString("")
    streak = health.get("FailingStreak") or 0
    title = f"Health check: {status}" + (f", {streak} failing in a row" if streak else "")
    return format_html(
        '<span class="health health--{}" data-health="{}" title="{}">{}</span>', status, status, title, status
    )


@register.simple_tag(takes_context=True)
def unseen_alerts(context: Any) -> int:
    """`{% unseen_alerts as n %}`: alerts the dashboard has not shown yet (0 for users without a role)."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if not policy.allowed(user, "view"):
        return 0
    return alerts.unseen_count()
