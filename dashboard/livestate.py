"""The live-state model, server half: what a container's or a volume's state means on every page.

Every count, chip, badge, panel and row that shows state is a partial rendered from the database with
the helpers here, and each carries `data-live` (the events it depends on) and `data-live-url` (where
to fetch it again). static/js/live.js, the client half, refreshes exactly those elements when an
engine event names their object, whoever caused it: the CLI, another tab, a container exiting, a
prune. Action responses render the same partials, so a page never shows two versions of one state.
"""

from __future__ import annotations

from typing import Any

from engine.models import ContainerState
from engine.services import containers, volumes

# The list's state chips: name → the states it counts (None: every state). A container that was
# never started is *created*, not exited: it has no exit code and nothing to restart.
STATE_FILTERS: dict[str, tuple[str, ...] | None] = {
    "all": None,
    "running": (ContainerState.RUNNING, ContainerState.PAUSED, ContainerState.RESTARTING),
    "created": (ContainerState.CREATED,),
    "exited": (ContainerState.EXITED, ContainerState.DEAD),
}

# The buttons each state offers (remove is offered separately: it forces). The transition table
# allows more (stop of a stopped container is a no-op, restart of a created one is a start); a
# button must do what its label says, so those are left out.
_BUTTONS: dict[str, tuple[str, ...]] = {
    ContainerState.CREATED: ("start",),
    ContainerState.RUNNING: ("stop", "restart", "pause", "kill"),
    ContainerState.PAUSED: ("unpause", "stop", "kill"),
    ContainerState.RESTARTING: ("stop", "kill"),
    ContainerState.EXITED: ("start",),
    ContainerState.DEAD: (),
    ContainerState.REMOVING: (),
}
ACTIVE = frozenset(STATE_FILTERS["running"] or ())


def available_actions(state: str) -> list[str]:
    """The lifecycle buttons for `state`, in display order, then "remove" (always offered)."""
    shown = [a for a in _BUTTONS.get(state, ()) if containers.allows(a, state)]
    return [*shown, "remove"]


def chip_counts() -> dict[str, int]:
    """How many containers each chip counts, from one query; "all" is the heading's count."""
    counts = containers.state_counts()
    return {
        name: sum(n for state, n in counts.items() if states is None or state in states)
        for name, states in STATE_FILTERS.items()
    }


def format_cpus(nano_cpus: int | None) -> str:
    """`--cpus` as the user typed it: 500000000 → "0.5", 2000000000 → "2" ("" when unlimited)."""
    if not nano_cpus:
        return ""
    return f"{nano_cpus / 1e9:.3f}".rstrip("0").rstrip(".")


def volume_summary() -> dict[str, Any]:
    """The volumes page's heading count and what Prune would remove now (over all volumes, not a search)."""
    found = volumes.list_volumes()
    used = volumes.users_by_volume()
    unused = [v for v in found if not used.get(v.pk)]
    return {
        "volume_total": len(found),
        "prune_anonymous": [v.name for v in unused if v.anonymous],
        "prune_named": [v.name for v in unused if not v.anonymous],
    }
