"""Edit with history in the browser: change a container's environment from its page, read the diff,
confirm, see revision 2, roll back to revision 1.

Screenshots: tests/e2e/screenshots/revisions-edit-form.png, revisions-diff.png, revisions-list.png,
revisions-rolled-back.png.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import require_root
from tests.e2e.conftest import Server, screenshot

NAME = "e2e-rev"


@pytest.fixture
def container(berth_server: Server) -> Iterator[str]:
    """A running container with one environment variable; force-removed (with its volumes) afterwards."""
    require_root()
    berth_server.berth(
        "run",
        "-d",
        "--name",
        NAME,
        "-e",
        "COLOUR=blue",
        "--network",
        "none",
        "--init",
        "busybox",
        "sleep",
        "600",
    )  # --init: sleep as PID 1 would ignore SIGTERM, and every recreate would wait out the stop timeout
    try:
        yield NAME
    finally:
        berth_server.berth("rm", "-f", "-v", NAME, check=False)


def env_of(server: Server, name: str) -> list[str]:
    data = json.loads(server.berth("container", "inspect", name).stdout)[0]
    return list(data["Config"]["Env"])


def test_operator_edits_the_env_sees_the_diff_and_rolls_back(
    logged_in_page: Callable[..., Any], berth_server: Server, container: str
) -> None:
    page = logged_in_page("operator")
    page.goto(f"/containers/{container}/")
    page.get_by_role("link", name="Edit", exact=True).click()
    page.wait_for_url(re.compile(r"/edit/$"))
    page.locator("summary", has_text="Environment").click()
    env = page.get_by_label("Environment variables")
    assert env.input_value() == "COLOUR=blue"  # the form starts from the stored spec
    env.fill("COLOUR=green\nSIZE=large")
    screenshot(page, "revisions-edit-form")
    page.get_by_role("button", name="Review changes").click()

    # Nothing has happened yet: the page shows the change, field by field.
    page.get_by_role("button", name="Confirm and recreate").wait_for()
    diff = page.locator("table.spec-diff")
    assert diff.locator("del").all_inner_texts() == ["COLOUR=blue"]
    assert diff.locator("ins").all_inner_texts() == ["COLOUR=green", "SIZE=large"]
    assert "COLOUR=blue" in env_of(berth_server, container)
    screenshot(page, "revisions-diff")

    page.get_by_role("button", name="Confirm and recreate").click(no_wait_after=True)
    page.wait_for_url(re.compile(r"\?tab=revisions$"), timeout=60_000)
    page.locator("#revision-2").wait_for()
    assert "current" in page.locator("#revision-2").inner_text()
    assert "operator" in page.locator("#revision-2").inner_text()
    assert "COLOUR=green" in env_of(berth_server, container)
    screenshot(page, "revisions-list")

    page.locator("#revision-1").get_by_role("button", name="Roll back").click()
    page.locator("dialog[open]").get_by_role("button", name="Roll back").click(no_wait_after=True)
    page.locator("#revision-3").wait_for(timeout=60_000)
    assert "roll back to revision 1" in page.locator("#revision-3").inner_text()
    env = env_of(berth_server, container)
    assert "COLOUR=blue" in env and not any(e.startswith("SIZE=") for e in env)
    screenshot(page, "revisions-rolled-back")


def test_viewer_sees_revisions_but_no_edit_or_roll_back(
    logged_in_page: Callable[..., Any], container: str
) -> None:
    page = logged_in_page("viewer")
    page.goto(f"/containers/{container}/?tab=revisions")
    assert page.get_by_text("No revisions yet").is_visible()
    assert page.get_by_role("link", name="Edit", exact=True).count() == 0
    assert page.get_by_role("button", name="Roll back").count() == 0
