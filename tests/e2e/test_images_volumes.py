"""Images, volumes, events and the overview in headless Chromium, as a person would use them.

Upload a `docker save` archive and watch the job reach "succeeded"; create a volume, use it from a
container, browse its files and remove it; see the engine's conflict when removing an image in use.
Screenshots of every page, at desktop and phone width, go to tests/e2e/screenshots/.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import PHONE, Server, screenshot


@pytest.fixture
def archive(berth_server: Server, tmp_path: Path) -> Iterator[Path]:
    """A `docker save` archive of busybox under the name e2e-upload:1, which the engine then forgets."""
    path = tmp_path / "e2e-upload.tar"
    berth_server.berth("tag", "busybox", "e2e-upload:1")
    berth_server.berth("save", "-o", str(path), "e2e-upload:1")
    berth_server.berth("rmi", "e2e-upload:1")
    yield path


def confirm(page: Any) -> None:
    dialog = page.locator("#confirm-dialog")
    dialog.wait_for(state="visible")
    dialog.locator("[data-confirm-ok]").click()


def test_upload_an_image_archive_and_see_it_listed(
    logged_in_page: Callable[..., Any], berth_server: Server, archive: Path
) -> None:
    page = logged_in_page("operator")
    page.goto("/images/load/")
    screenshot(page, "image-load-form")
    page.get_by_label("Image archive").set_input_files(str(archive))
    page.get_by_role("button", name="Upload and load").click()
    page.wait_for_url("**/jobs/**")
    state = page.locator("[data-job-state]")
    state.filter(has_text="succeeded").wait_for(timeout=30_000)
    result = page.locator("[data-job-result] a").first
    result.wait_for()
    assert "e2e-upload:1" in result.inner_text()
    assert page.locator(".job-layer progress").count() >= 1  # one bar per layer
    screenshot(page, "job")
    result.click()
    page.wait_for_url("**/images/*/")
    assert page.locator(".layer__fill").count() >= 1  # the layer drawn to scale
    screenshot(page, "image-detail")
    page.goto("/images/")
    assert page.locator("#image-table").get_by_text("e2e-upload").count() >= 1
    screenshot(page, "images")
    page.get_by_label("Search images").fill("e2e-up")
    page.locator("#image-table").get_by_text("busybox").wait_for(state="detached")
    assert page.berth_errors == []
    berth_server.berth("rmi", "e2e-upload:1", check=False)


def test_conflict_message_when_removing_an_image_in_use(
    logged_in_page: Callable[..., Any], berth_server: Server
) -> None:
    berth_server.berth("create", "--name", "e2e-holder", "busybox")
    try:
        page = logged_in_page("admin")
        page.goto("/images/")
        row = page.locator("#image-table tr", has_text="busybox")
        row.get_by_role("button", name="Remove busybox:latest").click()
        confirm(page)
        toast = page.locator(".toast--error")
        toast.wait_for()
        assert "container e2e-holder is using its referenced image" in toast.inner_text()
        screenshot(page, "image-remove-conflict", full_page=False)
    finally:
        berth_server.berth("rm", "-f", "e2e-holder", check=False)


def test_create_use_and_remove_a_volume(logged_in_page: Callable[..., Any], berth_server: Server) -> None:
    page = logged_in_page("admin")
    page.goto("/volumes/")
    page.get_by_role("link", name="Create volume").first.click()  # the header's (the empty state has one too)
    page.get_by_label("Name").fill("e2e-vol")
    page.get_by_label("Labels").fill("team=web\nnote=<img src=x onerror=alert(1)>")
    page.get_by_role("button", name="Create volume").click()
    page.wait_for_url("**/volumes/e2e-vol/")
    assert "note=<img src=x onerror=alert(1)>" in page.locator(".kv").inner_text()  # shown as text
    # Use it: a container writes into the volume (the Run form belongs to the containers page).
    berth_server.berth(
        "run", "--name", "e2e-vol-user", "-v", "e2e-vol:/data", "busybox",
        "sh", "-c", "mkdir -p /data/www && echo hello > /data/www/index.html && ln -s /etc /data/etc-link",
    )  # fmt: skip
    try:
        page.reload()
        assert page.get_by_text("e2e-vol-user").count() >= 1
        screenshot(page, "volume-detail")
        page.get_by_role("link", name="Files").click()
        page.get_by_text("symlink, not followed").wait_for()
        page.get_by_role("link", name="www/").click()
        page.get_by_role("link", name="index.html").click()
        assert page.locator(".file-view").inner_text().strip() == "hello"
        page.get_by_role("link", name="Files").click()
        screenshot(page, "volume-files")
        page.goto("/volumes/")
        row = page.locator("#volume-table tr", has_text="e2e-vol")
        row.locator("td[data-label=Size] .num").wait_for()  # the lazy size arrived
        screenshot(page, "volumes")
        row.get_by_role("button", name="Remove e2e-vol").click()
        confirm(page)
        toast = page.locator(".toast--error")
        toast.wait_for()
        assert "in use by container(s): e2e-vol-user" in toast.inner_text()
    finally:
        berth_server.berth("rm", "-f", "e2e-vol-user", check=False)
    page.goto("/volumes/")
    page.locator("#volume-table tr", has_text="e2e-vol").get_by_role("button", name="Remove e2e-vol").click()
    confirm(page)
    page.locator(".toast--success").wait_for()
    page.locator("#volume-table").get_by_text("e2e-vol").wait_for(state="detached")
    # The browser logs the refused remove (409) itself; anything else would be a real error.
    assert [e for e in page.berth_errors if "409" not in e] == []


def test_viewer_sees_no_destructive_buttons(logged_in_page: Callable[..., Any]) -> None:
    page = logged_in_page("viewer")
    page.goto("/images/")
    assert page.get_by_role("button", name="Remove busybox:latest").count() == 0
    assert page.get_by_role("link", name="Load archive").count() == 0
    response = page.goto("/images/load/")
    assert response is not None and response.status == 403


def test_screenshots_of_overview_events_and_lists_at_desktop_and_phone_width(
    logged_in_page: Callable[..., Any], berth_server: Server
) -> None:
    berth_server.berth("volume", "create", "e2e-shot")
    try:
        for suffix, kwargs in (("", {}), ("-phone", {"viewport": PHONE})):
            page = logged_in_page("admin", **kwargs)
            page.goto("/")
            page.locator("#recent-events-list .event-list__item").first.wait_for()
            page.locator("#engine-status .dot--ok, #engine-status .dot--warn").first.wait_for(
                state="attached"
            )
            screenshot(page, f"overview{suffix}")
            page.goto("/events/")
            screenshot(page, f"events{suffix}")
            page.goto("/images/")
            screenshot(page, f"images{suffix}")
            page.locator("#image-table a", has_text="busybox").first.click()
            page.wait_for_url("**/images/*/")
            screenshot(page, f"image-detail{suffix}")
            page.goto("/volumes/")
            screenshot(page, f"volumes{suffix}")
            page.goto("/volumes/e2e-shot/")
            screenshot(page, f"volume-detail{suffix}")
            assert page.berth_errors == []
        page = logged_in_page("admin")
        page.goto("/events/")
        page.get_by_label("Action").select_option("create")
        page.wait_for_url("**action=create**")
        assert page.locator("#event-table").get_by_text("e2e-shot").count() >= 1
    finally:
        berth_server.berth("volume", "rm", "e2e-shot", check=False)
