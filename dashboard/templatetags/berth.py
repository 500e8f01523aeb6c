"""Template helpers shared by every dashboard page: the user's role, nav state and state badges.

Load with `{% load berth %}`. Everything here returns escaped text or uses format_html, because the
values shown (container names, states, exit codes) come from the engine and are attacker-controlled.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from dashboard import policy

register = template.Library()

# Badge modifier per container state; anything unknown is shown neutral.
_BADGE = {
    "created": "created",
    "running": "running",
    "paused": "paused",
    "restarting": "restarting",
    "exited": "exited",
    "dead": "dead",
    "removing": "removing",
}


@register.filter
def role(user: Any) -> str:
    """`{{ user|role }}` → "viewer", "operator", "admin" or "" (no role)."""
    return policy.role_of(user) or ""


@register.filter
def can(user: Any, action: str) -> bool:
    """`{% if user|can:"container.lifecycle" %}` — for hiding buttons; views still call policy.check()."""
    return policy.allowed(user, action)


@register.filter
def nav_current(path: str, url: str) -> str:
    """`aria-current="{{ request.path|nav_current:url }}"`: "page" when `path` is `url` or below it.

    The root URL matches only itself, otherwise the Overview link would be current everywhere.
    """
    if not url:
        return "false"
    if url == "/":
        return "page" if path == "/" else "false"
    return "page" if path == url or path.startswith(url.rstrip("/") + "/") else "false"


@register.simple_tag
def state_badge(state: str, exit_code: int | None = None) -> SafeString:
    """Render a container state as colour plus text: `{% state_badge c.state c.exit_code %}`.

    exited 0 is grey, exited non-zero and dead are red with the code, restarting is animated blue.
    """
    state = str(state or "unknown")
    modifier = _BADGE.get(state, "unknown")
    label = state
    if state == "exited" and exit_code not in (None, ""):
        try:
            code = int(exit_code)
        except (TypeError, ValueError):
            code = 0
        if code != 0:
            modifier = "failed"
            label = f"exited ({code})"
    return format_html('<span class="badge badge--{}">{}</span>', modifier, label)


# (url name, label, icon id, shown only when the URL exists). Pages that do not exist yet are shown
# disabled, so the rail keeps its shape while the pages are being written.
NAV_ITEMS: tuple[tuple[str, str, str, bool], ...] = (
    ("home", "Overview", "i-overview", False),
    ("containers", "Containers", "i-containers", False),
    ("images", "Images", "i-images", False),
    ("registries", "Registries", "i-registries", True),
    ("volumes", "Volumes", "i-volumes", False),
    ("networks", "Networks", "i-networks", True),
    ("events", "Events", "i-events", False),
    ("alerts", "Alerts", "i-alerts", True),
)


@register.simple_tag
def nav_items() -> list[dict[str, Any]]:
    """`{% nav_items as items %}` → dicts with name, label, icon, optional for the navigation rail."""
    return [
        {"name": name, "label": label, "icon": icon, "optional": optional}
        for name, label, icon, optional in NAV_ITEMS
    ]
