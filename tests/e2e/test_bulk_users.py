"""Bulk actions that run concurrently with per-row progress, and users and roles managed in the dashboard.

Issue 9's findings reproduced: a bulk stop of several containers ran one after another (20 s for two)
with only "Stopping…" shown; users could only be managed in Django's admin.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import require_root
from tests.e2e.conftest import PHONE, REPO, Server, log_in, screenshot

GRACE = 4  # seconds: each container ignores SIGTERM (sleep as PID 1), so a stop waits this long
NAMES = ["e2e-bk-0", "e2e-bk-1", "e2e-bk-2", "e2e-bk-fine", "e2e-bk-broken"]


@pytest.fixture(scope="module", autouse=True)
def _root_and_cleanup(berth_server: Server) -> Iterator[None]:
    """Root is required; the containers the tests made are removed at the end."""
    require_root()
    yield
    env = {**berth_server.env, "BERTH_MONITOR": "0"}
    berth = [sys.executable, str(REPO / "manage.py"), "berth"]
    subprocess.run([*berth, "rm", "-f", *NAMES], env=env, capture_output=True, check=False, timeout=120)


def test_bulk_stop_runs_concurrently_with_per_row_progress_and_a_summary(
    logged_in_page: Callable[..., Any], berth_server: Server
) -> None:
    names = NAMES[:3]
    for name in names:
        berth_server.berth(
            "run", "-d", "--stop-timeout", str(GRACE), "--name", name, "busybox", "sleep", "600"
        )
    page = logged_in_page("operator")
    page.goto("/containers/?q=e2e-bk-")
    for name in names:
        page.get_by_label(f"Select {name}").check()
    bar = page.locator("[data-bulk]")
    expect(bar).to_contain_text("3 selected")
    bar.get_by_role("button", name="Stop", exact=True).click()
    began = time.monotonic()
    page.locator("#confirm-dialog").get_by_role("button", name="Stop", exact=True).click()

    panel = page.locator("[data-bulk-job]")
    expect(panel).to_be_visible()
    # Every row works at the same time and counts its grace period down (not just "Stopping…").
    for name in names:
        row = panel.locator("[data-bulk-row]", has_text=name)
        expect(row).to_have_attribute("data-status", "working", timeout=GRACE * 1000)
        expect(row.locator("[data-bulk-grace]")).to_have_text(re.compile(r"^\d+ s to SIGKILL$"))
    left = [int(t.split()[0]) for t in panel.locator("[data-bulk-grace]").all_inner_texts() if t]
    assert len(left) == 3 and all(0 < n <= GRACE for n in left), left
    screenshot(page, "bulk-stop-progress", full_page=False)

    summary = panel.locator("[data-bulk-summary]")
    expect(summary).to_have_text(re.compile(r"^Stopped 3 containers in [\d.]+ s$"), timeout=3 * GRACE * 1000)
    took = time.monotonic() - began
    # About one grace period, not three: one after another would take at least 3 × GRACE.
    assert GRACE - 0.5 <= took < 2 * GRACE, f"bulk stop took {took:.1f} s for a {GRACE} s grace period"
    for name in names:
        row = panel.locator("[data-bulk-row]", has_text=name)
        expect(row).to_have_attribute("data-status", "done")
        expect(row.locator("[data-bulk-status]")).to_have_text("Stopped")
        # The table refreshed after the run: every row now says exited.
        table_row = page.locator("#container-table tr", has=page.get_by_role("link", name=name, exact=True))
        expect(table_row.locator(".badge")).to_contain_text(re.compile("exited", re.I))
    screenshot(page, "bulk-stop-summary", full_page=False)


def test_a_failing_row_is_reported_with_its_reason_and_the_others_still_run(
    logged_in_page: Callable[..., Any], berth_server: Server
) -> None:
    berth_server.berth("create", "--name", "e2e-bk-fine", "busybox", "sleep", "600")
    berth_server.berth("create", "--name", "e2e-bk-broken", "busybox", "/no/such/binary")
    page = logged_in_page("operator", viewport=PHONE, color_scheme="dark")
    page.goto("/containers/?q=e2e-bk-")
    page.get_by_label("Select e2e-bk-fine").check()
    page.get_by_label("Select e2e-bk-broken").check()
    page.locator("[data-bulk]").get_by_role("button", name="Start", exact=True).click()
    page.locator("#confirm-dialog").get_by_role("button", name="Start", exact=True).click()
    panel = page.locator("[data-bulk-job]")
    summary = panel.locator("[data-bulk-summary]")
    expect(summary).to_contain_text("Started 1 container in", timeout=20_000)
    expect(summary).to_contain_text("1 failed: e2e-bk-broken")
    broken = panel.locator("[data-bulk-row]", has_text="e2e-bk-broken")
    expect(broken).to_have_attribute("data-status", "failed")
    expect(broken.locator("[data-bulk-status]")).to_contain_text("Failed:")
    expect(panel.locator("[data-bulk-row]", has_text="e2e-bk-fine")).to_have_attribute("data-status", "done")
    screenshot(page, "bulk-start-failure-phone-dark", full_page=False)


def test_admin_creates_a_user_sets_the_role_resets_the_password_and_the_user_changes_it(
    new_page: Callable[..., Any], berth_server: Server
) -> None:
    admin = new_page()
    log_in(admin, berth_server, "admin")
    admin.wait_for_url(berth_server.url + "/")
    admin.locator("#rail-menu").get_by_role("link", name="Users").click()
    admin.wait_for_url(re.compile(r"/users/$"))
    screenshot(admin, "users-list")
    admin.get_by_role("link", name="Create user").click()

    # Django's validators, one clear error per field.
    admin.get_by_label("User name").fill("e2e-carol")
    admin.get_by_label("Role").select_option("viewer")
    admin.get_by_label("New password").fill("short")
    admin.get_by_label("Repeat the password").fill("different")
    admin.get_by_role("button", name="Create user").click()
    errors = admin.locator("[data-field='password1'] .field__error")
    expect(errors).to_have_count(1)
    expect(errors).to_contain_text("too short")
    expect(admin.get_by_label("User name")).to_have_value("e2e-carol")  # the form keeps what was typed
    screenshot(admin, "users-create-errors")

    first = "first-Passw0rd-for-carol"
    admin.get_by_label("New password").fill(first)
    admin.get_by_label("Repeat the password").fill(first)
    admin.get_by_role("button", name="Create user").click()
    admin.wait_for_url(re.compile(r"/users/e2e-carol/$"))
    expect(admin.locator("#toasts")).to_contain_text("Created user e2e-carol")

    admin.locator("#id_role").select_option("operator")
    admin.get_by_role("button", name="Set role").click()
    expect(admin.locator("#toasts")).to_contain_text("e2e-carol is now an operator")

    reset = "reset-Passw0rd-by-admin"
    admin.locator("#id_password1").fill(reset)
    admin.locator("#id_password2").fill(reset)
    admin.get_by_role("button", name="Reset password").click()
    expect(admin.locator("#toasts")).to_contain_text("Password of e2e-carol reset")
    screenshot(admin, "users-detail")

    # Every change is an event.
    events = berth_server.berth("events", "--since", "10m").stdout
    for action in ("user create", "user role", "user passwd"):
        assert re.search(rf"{action} \d+ e2e-carol by admin", events), (action, events)

    carol = new_page(viewport=PHONE, color_scheme="dark")
    log_in(carol, berth_server, "e2e-carol", first)
    expect(carol.locator("body")).to_contain_text(re.compile("didn.t match|correct username", re.I))
    log_in(carol, berth_server, "e2e-carol", reset)
    carol.wait_for_url(berth_server.url + "/")
    expect(carol.locator(".user")).to_contain_text("operator")
    carol.goto("/account/password/")
    carol.get_by_label("Old password").fill("wrong-old-password")
    carol.get_by_label("New password", exact=True).fill("1234")
    carol.get_by_label("Repeat the new password").fill("1234")
    carol.get_by_role("button", name="Change password").click()
    for field in ("old_password", "new_password1"):
        expect(carol.locator(f"[data-field='{field}'] .field__error")).to_have_count(1)
    screenshot(carol, "users-own-password-errors")
    mine = "carols-own-Passw0rd"
    carol.get_by_label("Old password").fill(reset)
    carol.get_by_label("New password", exact=True).fill(mine)
    carol.get_by_label("Repeat the new password").fill(mine)
    carol.get_by_role("button", name="Change password").click()
    expect(carol.locator("#toasts")).to_contain_text("Your password was changed")
    carol.goto("/containers/")  # still signed in after changing the password here
    carol.wait_for_url(re.compile(r"/containers/$"))

    again = new_page()
    log_in(again, berth_server, "e2e-carol", mine)
    again.wait_for_url(berth_server.url + "/")

    admin.goto("/users/e2e-carol/")
    admin.get_by_role("button", name="Deactivate").click()
    admin.locator("#confirm-dialog").get_by_role("button", name="Deactivate").click()
    expect(admin.locator("#toasts")).to_contain_text("Deactivated e2e-carol")
    again.goto("/containers/")
    again.wait_for_url(re.compile(r"/login/"))  # a deactivated user's session ends

    phone = new_page(viewport=PHONE)
    log_in(phone, berth_server, "admin")
    phone.wait_for_url(berth_server.url + "/")
    phone.goto("/users/")
    expect(phone.locator("[data-user='e2e-carol']")).to_contain_text("Deactivated")
    screenshot(phone, "users-list-phone")
    phone.goto("/users/e2e-carol/")
    screenshot(phone, "users-detail-phone")


def test_a_viewer_cannot_reach_the_users_pages(logged_in_page: Callable[..., Any]) -> None:
    viewer = logged_in_page("viewer", color_scheme="dark")
    expect(viewer.get_by_role("link", name="Users", exact=True)).to_have_count(0)
    for url in ("/users/", "/users/new/", "/users/admin/"):
        response = viewer.goto(url)
        assert response is not None and response.status == 403, url
    response = viewer.request.post(
        "/users/admin/role/", form={"role": "viewer"}, headers={"X-CSRFToken": _csrf(viewer)}
    )
    assert response.status == 403
    viewer.goto("/account/password/")  # but a viewer may change their own password
    expect(viewer.get_by_role("button", name="Change password")).to_be_visible()
    screenshot(viewer, "users-own-password-dark")


def _csrf(page: Any) -> str:
    return next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
