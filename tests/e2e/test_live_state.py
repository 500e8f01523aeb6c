"""The live-state model in the browser (issue 9, item 1): every count, chip, badge, panel and row on an
open page follows state changes made by the CLI or by a second tab, without a reload.

Counts are compared with what the CLI reports at that moment (`ps -a`, `volume ls`), so the tests hold
whatever other e2e modules left in the shared server. Screenshots: tests/e2e/screenshots/live-*.png.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import require_root
from tests.e2e.conftest import PHONE, Server, remove_leftovers, screenshot

# Exits 0 on SIGTERM (busybox sh as PID 1 ignores it otherwise, and stop would wait 10 s).
TICKER = 'trap "exit 0" TERM; while true; do sleep 0.2; done'
CHIPS = {
    "running": ("running", "paused", "restarting"),
    "created": ("created",),
    "exited": ("exited", "dead"),
}


@pytest.fixture(scope="module", autouse=True)
def _root_and_cleanup(berth_server: Server) -> Iterator[None]:
    """Root is required; the containers and volumes these tests made are force-removed at the end."""
    require_root()
    yield
    remove_leftovers(berth_server, "ls-", volumes=True)


def cli_counts(server: Server) -> dict[str, int]:
    """The chips' numbers as the CLI sees the engine now."""
    lines = server.berth("ps", "-a", "--format", "json").stdout.splitlines()
    states = [json.loads(line)["State"] for line in lines if line.strip()]
    counts = {name: sum(s in members for s in states) for name, members in CHIPS.items()}
    return {"all": len(states), **counts}


def expect_counts(page: Any, server: Server) -> None:
    """The heading and every chip show what the CLI reports (polled by Playwright against a deadline)."""
    counts = cli_counts(server)
    expect(page.locator("#container-count")).to_have_text(str(counts["all"]))
    for name, n in counts.items():
        expect(page.locator(f"#chip-count-{name}")).to_have_text(str(n))


def live(page: Any) -> None:
    """Wait until the page's event socket is open: changes from now on must reach it."""
    expect(page.locator("html")).to_have_attribute("data-live", "connected")


def row(page: Any, name: str) -> Any:
    return page.locator("#container-table tr[data-name]", has=page.get_by_role("link", name=name, exact=True))


def confirm(page: Any) -> None:
    dialog = page.locator("#confirm-dialog")
    dialog.wait_for(state="visible")
    dialog.locator("[data-confirm-ok]").click()


# -- containers list --------------------------------------------------------------------------------


def test_containers_list_follows_cli_changes_in_every_count_chip_and_row(
    logged_in_page: Callable[..., Any], berth_server: Server
) -> None:
    berth_server.berth("run", "-d", "--name", "ls-a", "busybox", "sh", "-c", TICKER)
    berth_server.berth("create", "--name", "ls-new", "busybox", "sleep", "600")
    page = logged_in_page("operator")
    page.goto("/containers/")
    live(page)
    expect_counts(page, berth_server)

    # A never-started container is *created*: its own chip, its own badge, and no Restart or Stop.
    created = row(page, "ls-new")
    expect(created.locator(".badge")).to_have_text("created")
    expect(created.get_by_role("button", name="Start")).to_be_visible()
    expect(created.get_by_role("button", name="Restart")).to_have_count(0)
    expect(created.get_by_role("button", name="Stop")).to_have_count(0)
    expect(row(page, "ls-a").get_by_role("button", name="Restart")).to_be_visible()

    # Stop from the CLI: the row, the chips and the heading follow (they used to stay as they were).
    berth_server.berth("stop", "ls-a")
    expect(row(page, "ls-a").locator(".badge")).to_have_text("exited")
    expect(row(page, "ls-a").get_by_role("button", name="Restart")).to_have_count(0)
    expect_counts(page, berth_server)

    # Start the created one from the CLI: it leaves the created chip for the running one.
    berth_server.berth("start", "ls-new")
    expect(created.locator(".badge")).to_have_text("running")
    expect_counts(page, berth_server)

    # A container created by the CLI appears; one removed disappears; the heading is never one behind.
    berth_server.berth("create", "--name", "ls-late", "busybox", "true")
    expect(row(page, "ls-late")).to_have_count(1)
    expect_counts(page, berth_server)
    berth_server.berth("rm", "-f", "ls-new")
    expect(row(page, "ls-new")).to_have_count(0)
    expect_counts(page, berth_server)
    screenshot(page, "live-containers")
    berth_server.berth("rm", "-f", "ls-a", "ls-late")
    expect_counts(page, berth_server)
    assert page.berth_errors == []


def test_a_second_tab_and_the_cli_move_the_container_page_header_and_state_panel(
    logged_in_page: Callable[..., Any], berth_server: Server
) -> None:
    berth_server.berth("run", "-d", "--name", "ls-page", "--cpus", "0.5", "busybox", "sh", "-c", TICKER)
    watcher = logged_in_page("viewer")
    watcher.goto("/containers/")
    watcher.get_by_role("link", name="ls-page", exact=True).click()
    live(watcher)
    header, panel = watcher.locator("#container-header"), watcher.locator("#state-panel")
    expect(header.locator(".badge")).to_have_text("running")
    expect(panel.locator(".badge")).to_have_text("running")
    # --cpus 0.5 is shown as 0.5 (it was rounded down to "CPUs 0").
    cpus = watcher.locator("dt", has_text="CPUs").locator("xpath=following-sibling::dd[1]")
    expect(cpus).to_have_text("0.5")

    # A second tab (another user) stops it from the list.
    actor = logged_in_page("operator")
    actor.goto("/containers/")
    live(actor)
    row(actor, "ls-page").get_by_role("button", name="Stop").click()
    expect(row(actor, "ls-page").locator(".badge")).to_have_text("exited")
    expect(header.locator(".badge")).to_have_text("exited")
    expect(panel.locator(".badge")).to_have_text("exited")
    expect(panel.locator("[data-exit-code]")).to_have_text("0")
    expect(watcher.locator("#ports-panel")).to_contain_text("None in force")
    expect(
        panel.locator("dt", has_text="Finished").locator("xpath=following-sibling::dd[1]")
    ).not_to_have_text("—")
    expect_counts(actor, berth_server)
    screenshot(watcher, "live-container-exited")

    # The CLI starts it again, then stops it: header and panel follow both times.
    berth_server.berth("start", "ls-page")
    expect(header.locator(".badge")).to_have_text("running")
    expect(panel.locator(".badge")).to_have_text("running")
    expect(panel.locator("[data-exit-code]")).to_have_text("—")
    expect(watcher.locator("#ports-panel")).to_contain_text("No published ports")
    expect(row(actor, "ls-page").locator(".badge")).to_have_text("running")
    berth_server.berth("stop", "ls-page")
    expect(header.locator(".badge")).to_have_text("exited")
    expect(panel.locator(".badge")).to_have_text("exited")
    expect(panel.locator("[data-exit-code]")).to_have_text("0")
    expect_counts(actor, berth_server)

    # Removed elsewhere: the header says so and the panel goes.
    berth_server.berth("rm", "ls-page")
    expect(watcher.get_by_role("heading", name="Container removed")).to_be_visible()
    expect(panel).to_have_count(0)
    expect(row(actor, "ls-page")).to_have_count(0)
    assert watcher.berth_errors == [] and actor.berth_errors == []


# -- volumes ---------------------------------------------------------------------------------------


def volume_count(server: Server) -> int:
    return len(server.berth("volume", "ls", "-q").stdout.split())


def test_volumes_page_follows_the_cli_a_second_tab_and_its_own_prune(
    logged_in_page: Callable[..., Any], berth_server: Server
) -> None:
    page = logged_in_page("admin")
    page.goto("/volumes/")
    live(page)
    expect(page.locator("#volume-count")).to_have_text(str(volume_count(berth_server)))

    # Created by the CLI: the heading, the table and Prune's list of named volumes follow.
    berth_server.berth("volume", "create", "ls-v1")
    berth_server.berth("volume", "create", "ls-v2")
    expect(page.locator("#volume-count")).to_have_text(str(volume_count(berth_server)))
    expect(page.locator("#volume-table").get_by_role("link", name="ls-v2")).to_be_visible()
    expect(page.locator("#prune-named")).to_contain_text("ls-v2")

    # Removed from a second tab.
    other = logged_in_page("admin")
    other.goto("/volumes/")
    other.locator("#volume-table tr", has_text="ls-v1").get_by_role("button", name="Remove ls-v1").click()
    confirm(other)
    expect(page.locator("#volume-table").get_by_role("link", name="ls-v1")).to_have_count(0)
    expect(page.locator("#volume-count")).to_have_text(str(volume_count(berth_server)))
    expect(page.locator("#prune-named")).not_to_contain_text("ls-v1")

    # Prune (named ones too) from this page: the popover closes, the heading and its numbers follow.
    page.get_by_text("Prune…").click()
    page.get_by_label("Also remove named volumes").check()
    screenshot(page, "live-volumes-prune", full_page=False)
    page.get_by_role("button", name="Prune volumes").click()
    confirm(page)
    page.locator(".toast--success").wait_for()
    expect(page.locator("details.popover")).not_to_have_attribute("open", "")
    expect(page.locator("#volume-table").get_by_role("link", name="ls-v2")).to_have_count(0)
    expect(page.locator("#volume-count")).to_have_text(str(volume_count(berth_server)))
    expect(page.locator("#prune-named")).to_have_text(" (none now)")
    expect(page.locator("#prune-anonymous")).to_have_text("(none now)")
    assert page.berth_errors == [] and other.berth_errors == []


def test_volume_create_refuses_an_existing_name_and_explains_a_bad_one(
    logged_in_page: Callable[..., Any], berth_server: Server
) -> None:
    berth_server.berth("volume", "create", "ls-taken")
    page = logged_in_page("operator")
    page.goto("/volumes/_create/")
    page.get_by_label("Name").fill("ls-taken")
    page.get_by_role("button", name="Create volume").click()
    # Nothing was created, so the page must not say "Created".
    error = page.locator(".field__error").first
    expect(error).to_contain_text("a volume named ls-taken already exists")
    assert "/volumes/_create/" in page.url
    page.get_by_label("Name").fill("bad name!")
    page.get_by_role("button", name="Create volume").click()
    error = page.locator(".field__error").first
    expect(error).to_contain_text("is not a valid volume name")
    # The CLI's hint about host directories makes no sense in a form that only takes names.
    assert "absolute path" not in page.content()
    berth_server.berth("volume", "rm", "ls-taken")


# -- screenshots -----------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshots_of_live_pages_at_desktop_and_phone_width(
    logged_in_page: Callable[..., Any], berth_server: Server, scheme: str
) -> None:
    berth_server.berth("create", "--name", "ls-shot-created", "busybox", "true")
    berth_server.berth("run", "-d", "--name", "ls-shot-run", "--cpus", "0.5", "busybox", "sh", "-c", TICKER)
    berth_server.berth("volume", "create", "ls-shot-vol")
    try:
        for width, viewport in (("1280", None), ("390", PHONE)):
            page = logged_in_page("admin", viewport=viewport, color_scheme=scheme)
            page.goto("/containers/")
            live(page)
            expect_counts(page, berth_server)
            screenshot(page, f"live-containers-{width}-{scheme}")
            page.goto("/containers/ls-shot-run/")
            expect(page.locator("#state-panel .badge")).to_have_text("running")
            screenshot(page, f"live-container-{width}-{scheme}")
            page.goto("/volumes/")
            expect(page.locator("#volume-count")).to_have_text(re.compile(r"^\d+$"))
            screenshot(page, f"live-volumes-{width}-{scheme}")
            assert page.berth_errors == []
    finally:
        berth_server.berth("rm", "-f", "ls-shot-created", "ls-shot-run", check=False)
        berth_server.berth("volume", "rm", "ls-shot-vol", check=False)
