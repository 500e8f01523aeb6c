"""A container's Files tab in the browser: browse to a folder, see changed files marked, upload a
file as an operator and read it back with `berth exec NAME cat FILE`; a viewer sees no upload form.

Screenshots: tests/e2e/screenshots/files-tab-desktop.png (1280 px), files-tab-phone.png and
files-tab-phone-operator.png (390 px).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_root
from tests.e2e.conftest import PHONE, Server, screenshot

NAME = "e2e-files"


@pytest.fixture(scope="module", autouse=True)
def container(berth_server: Server) -> Iterator[str]:
    """A running busybox that changed /etc (one added file) before the test looks at it."""
    require_root()
    berth_server.berth(
        "run", "-d", "--name", NAME, "busybox", "sh", "-c",
        "echo hello > /etc/added.txt; ln -s /etc/passwd /tmp/passwd-link; sleep 600",
    )  # fmt: skip
    yield NAME
    berth_server.berth("rm", "-f", NAME, check=False)


def test_operator_uploads_a_file_and_reads_it_with_exec(
    logged_in_page: Callable[..., Any], berth_server: Server, tmp_path: Path
) -> None:
    page = logged_in_page("operator")
    page.goto(f"/containers/{NAME}/?tab=files&path=/etc")
    row = page.locator("tr", has=page.get_by_role("link", name="added.txt", exact=True))
    assert "added" in row.locator("td[data-label=Change]").inner_text()  # changed since the image

    # Into /tmp by clicking, as a person would: the breadcrumb root, then the folder.
    page.locator("nav.crumbs--path").get_by_role("link", name="/", exact=True).click()
    page.get_by_role("link", name="tmp/", exact=True).click()
    page.wait_for_url(re.compile(r"path=(%2F|/)tmp$"))
    link_row = page.locator("tr", has_text="passwd-link")
    assert "/etc/passwd" in link_row.inner_text()  # the link's text, shown and not followed out

    upload = tmp_path / "greeting.txt"
    upload.write_text("uploaded through the Files tab\n")
    page.get_by_label("Upload into").set_input_files(str(upload))
    page.get_by_role("button", name="Upload", exact=True).click()
    page.get_by_role("link", name="greeting.txt", exact=True).wait_for()
    page.get_by_text("Uploaded greeting.txt to /tmp").first.wait_for()

    result = berth_server.berth("exec", NAME, "cat", "/tmp/greeting.txt")
    assert result.stdout == "uploaded through the Files tab\n"

    page.get_by_role("link", name="greeting.txt", exact=True).click()
    assert "uploaded through the Files tab" in page.locator("pre.file-view").inner_text()
    screenshot(page, "files-view-desktop", full_page=False)
    page.goto(f"/containers/{NAME}/?tab=files&path=/etc")
    screenshot(page, "files-tab-desktop")
    page.set_viewport_size(PHONE)
    page.goto(f"/containers/{NAME}/?tab=files&path=/tmp")
    screenshot(page, "files-tab-phone-operator")
    assert page.berth_errors == [], page.berth_errors


def test_the_files_tab_fits_a_phone_and_a_viewer_gets_no_upload_form(
    logged_in_page: Callable[..., Any],
) -> None:
    page = logged_in_page("viewer", viewport=PHONE)
    page.goto(f"/containers/{NAME}/?tab=files&path=/etc")
    page.get_by_role("link", name="added.txt", exact=True).wait_for()
    assert page.locator("form.files__upload").count() == 0
    assert page.get_by_role("link", name="Download folder (tar)").count() == 0
    # Nothing wider than the screen: the table collapses to cards.
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "files-tab-phone")
    assert page.berth_errors == [], page.berth_errors
