"""Volume backup and restore in headless Chromium: download a backup of a volume a container wrote,
restore it into a new volume through the upload form, and read the file back from a container."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Server, screenshot


def test_download_a_volume_backup_and_restore_it_into_a_new_volume(
    logged_in_page: Callable[..., Any], berth_server: Server, tmp_path: Path
) -> None:
    berth_server.berth(
        "run", "--rm", "--network", "none", "-v", "e2e-bk:/d", "busybox",
        "sh", "-c", "mkdir /d/conf && echo 'restored via the browser' > /d/conf/f && ln -s /etc /d/etc-link",
    )  # fmt: skip
    berth_server.berth(
        "run",
        "-d",
        "--name",
        "e2e-bk-user",
        "--network",
        "none",
        "-v",
        "e2e-bk:/d",
        "busybox",
        "sleep",
        "300",
    )
    try:
        page = logged_in_page("operator")
        page.goto("/volumes/e2e-bk/")
        panel = page.locator("#backup-panel")
        panel.wait_for()
        # The running user is named, with the offer to pause it for a consistent copy.
        assert "e2e-bk-user" in panel.inner_text()
        assert panel.get_by_label("Pause e2e-bk-user during the backup (unpaused right after)").is_checked()
        page.get_by_label("Format").select_option("gzip")
        screenshot(page, "volume-backup-panel")
        page.get_by_role("button", name="Download backup").click()
        page.wait_for_url("**/volumes/e2e-bk/backups/**")
        link = page.locator("[data-backup-download]")
        link.wait_for(timeout=30_000)  # the page reloads itself once the job has finished
        assert page.locator("[data-job-state]").inner_text().strip() == "succeeded"
        assert page.locator(".job-layer progress").count() == 1
        assert "e2e-bk-user" in page.locator(".backup-ready").inner_text()  # paused, then unpaused
        screenshot(page, "volume-backup-job")
        with page.expect_download() as caught:
            link.click()
        download = caught.value
        assert download.suggested_filename.startswith("e2e-bk-") and download.suggested_filename.endswith(
            ".tar.gz"
        )
        saved = tmp_path / download.suggested_filename
        download.save_as(str(saved))
        assert saved.read_bytes()[:2] == b"\x1f\x8b"
        inspected = json.loads(berth_server.berth("container", "inspect", "e2e-bk-user").stdout)
        assert inspected[0]["State"]["Status"] == "running"

        page.goto("/volumes/e2e-bk/")
        page.get_by_role("link", name="Restore from backup…").click()
        page.wait_for_url("**/volumes/e2e-bk/restore/")
        page.get_by_label("Backup file").set_input_files(str(saved))
        page.get_by_label("Restore into volume").fill("e2e-bk-copy")
        screenshot(page, "volume-restore-form")
        page.get_by_role("button", name="Upload and restore").click()
        page.wait_for_url("**/jobs/**")
        page.locator("[data-job-state]").filter(has_text="succeeded").wait_for(timeout=30_000)
        assert "restored" in page.locator("[data-job-lines]").inner_text()
        screenshot(page, "volume-restore-job")

        page.goto("/volumes/e2e-bk-copy/files/?path=conf")
        page.get_by_role("link", name="f", exact=True).click()
        assert page.locator(".file-view").inner_text().strip() == "restored via the browser"
        out = berth_server.berth(
            "run", "--rm", "--network", "none", "-v", "e2e-bk-copy:/d", "busybox", "cat", "/d/conf/f"
        )
        assert out.stdout == "restored via the browser\n"
        assert page.berth_errors == []
    finally:
        berth_server.berth("rm", "-f", "e2e-bk-user", check=False)
        berth_server.berth("volume", "rm", "-f", "e2e-bk", "e2e-bk-copy", check=False)
