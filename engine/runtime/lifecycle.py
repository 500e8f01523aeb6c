"""Container state transitions: which action is allowed from which state (pure).

services/lifecycle.py checks every move against this table before it touches runc, so a refused
action says plainly why: "container web is paused; unpause it first".
"""

from __future__ import annotations

from engine.errors import InvalidState

CREATED = "created"
RUNNING = "running"
PAUSED = "paused"
RESTARTING = "restarting"
EXITED = "exited"
DEAD = "dead"
REMOVING = "removing"

# action -> states it may start from
ALLOWED: dict[str, frozenset[str]] = {
    "start": frozenset({CREATED, EXITED}),
    "stop": frozenset({RUNNING, PAUSED, RESTARTING, CREATED, EXITED}),
    "restart": frozenset({CREATED, RUNNING, EXITED, RESTARTING}),
    "kill": frozenset({RUNNING, PAUSED, RESTARTING}),  # a paused one only with SIGKILL
    "pause": frozenset({RUNNING}),
    "unpause": frozenset({PAUSED}),
    "exec": frozenset({RUNNING}),
    "attach": frozenset({RUNNING, CREATED}),
    "remove": frozenset({CREATED, EXITED, DEAD}),
    "rename": frozenset({CREATED, RUNNING, PAUSED, RESTARTING, EXITED, DEAD}),
    "top": frozenset({RUNNING, PAUSED}),
}

_ADVICE = {
    PAUSED: "unpause it first",
    RUNNING: "stop it first",
    RESTARTING: "stop it first",
    EXITED: "start it first",
    CREATED: "start it first",
    DEAD: "remove it with rm -f",
    REMOVING: "it is being removed",
}


def is_active(state: str) -> bool:
    """States in which a runc container and its conmon exist."""
    return state in (RUNNING, PAUSED, RESTARTING)


def check(action: str, state: str, name: str) -> None:
    """Raise InvalidState unless `action` is allowed from `state`."""
    allowed = ALLOWED.get(action)
    if allowed is None:
        raise ValueError(f"unknown container action {action!r}")
    if state in allowed:
        return
    if action == "remove" and state in (RUNNING, PAUSED, RESTARTING):
        raise InvalidState(
            f"cannot remove container {name}: container is {state}",
            hint="stop the container before removing or force remove (rm -f)",
        )
    if action in ("kill", "pause", "exec", "top") and state in (CREATED, EXITED):
        raise InvalidState(f"container {name} is not running", hint="start it first")
    if action == "exec" and state == PAUSED:
        raise InvalidState(f"container {name} is paused", hint="unpause it first")
    if action == "unpause":
        raise InvalidState(f"container {name} is not paused")
    raise InvalidState(f"container {name} is {state}", hint=_ADVICE.get(state))
