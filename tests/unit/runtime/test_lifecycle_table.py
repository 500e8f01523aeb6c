"""The container transition table (pure): which action may start from which state, and the messages."""

from __future__ import annotations

import pytest

from engine.errors import InvalidState
from engine.runtime import lifecycle as t

ALL_STATES = (t.CREATED, t.RUNNING, t.PAUSED, t.RESTARTING, t.EXITED, t.DEAD, t.REMOVING)


@pytest.mark.parametrize("action", sorted(t.ALLOWED))
@pytest.mark.parametrize("state", ALL_STATES)
def test_check_allows_exactly_the_table(action: str, state: str) -> None:
    if state in t.ALLOWED[action]:
        t.check(action, state, "web")
    else:
        with pytest.raises(InvalidState):
            t.check(action, state, "web")


def test_unknown_action_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        t.check("teleport", t.RUNNING, "web")


def test_no_action_starts_from_removing() -> None:
    assert all(t.REMOVING not in allowed for allowed in t.ALLOWED.values())


def test_remove_of_a_running_container_asks_for_force() -> None:
    with pytest.raises(InvalidState) as info:
        t.check("remove", t.RUNNING, "web")
    assert "cannot remove container web" in str(info.value) and "running" in str(info.value)
    assert "rm -f" in (info.value.hint or "")


def test_exec_into_a_paused_container_says_unpause() -> None:
    with pytest.raises(InvalidState) as info:
        t.check("exec", t.PAUSED, "web")
    assert "paused" in str(info.value) and info.value.hint == "unpause it first"


@pytest.mark.parametrize("action", ["exec", "kill", "pause", "top"])
def test_actions_on_a_stopped_container_say_not_running(action: str) -> None:
    with pytest.raises(InvalidState) as info:
        t.check(action, t.EXITED, "web")
    assert "is not running" in str(info.value)


def test_unpause_of_a_running_container_says_not_paused() -> None:
    with pytest.raises(InvalidState, match="is not paused"):
        t.check("unpause", t.RUNNING, "web")


def test_a_paused_container_can_be_stopped_and_killed_but_not_started() -> None:
    t.check("stop", t.PAUSED, "web")
    t.check("kill", t.PAUSED, "web")
    with pytest.raises(InvalidState):
        t.check("start", t.PAUSED, "web")


def test_is_active_covers_the_states_with_a_runc_container() -> None:
    assert {s for s in ALL_STATES if t.is_active(s)} == {t.RUNNING, t.PAUSED, t.RESTARTING}
