"""Logging in through the browser, at desktop and phone width, under the real CSP."""

from __future__ import annotations

import re
from typing import Any

from tests.e2e.conftest import PHONE, Server, log_in, screenshot


def _csp_clean(page: Any) -> None:
    # A CSP violation or script error means an inline script/style slipped in, or htmx/berth.js broke.
    # (The admin's pages have no icon link, so Chromium asks for /favicon.ico, which has no route yet.)
    errors = [e for e in page.berth_errors if not e.endswith("/favicon.ico)")]
    assert errors == [], errors


def test_login_with_a_wrong_password_shows_an_error(new_page: Any, berth_server: Server) -> None:
    page = new_page()
    log_in(page, berth_server, "admin", "not-the-password")
    alert = page.get_by_role("alert")
    assert "correct username and password" in alert.inner_text()
    assert page.url.endswith("/login/")
    # The username is kept, so only the password needs typing again.
    assert page.get_by_label("Username").input_value() == "admin"
    screenshot(page, "login-error")
    _csp_clean(page)


def test_login_with_the_right_password_lands_on_the_overview(new_page: Any, berth_server: Server) -> None:
    page = new_page()
    page.goto("/login/")
    screenshot(page, "login")
    log_in(page, berth_server, "admin")
    page.wait_for_url(berth_server.url + "/")
    assert page.get_by_role("heading", name="Overview").is_visible()
    nav = page.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link", name="Overview").get_attribute("aria-current") == "page"
    assert page.get_by_text("admin", exact=True).first.is_visible()
    assert page.get_by_role("link", name="Admin").is_visible()
    screenshot(page, "overview")
    _csp_clean(page)


def test_an_anonymous_visit_is_sent_to_the_login_page(new_page: Any, berth_server: Server) -> None:
    page = new_page()
    page.goto("/")
    assert re.search(r"/login/\?next=/$", page.url), page.url


def test_a_viewer_sees_their_role_and_no_admin_link(logged_in_page: Any) -> None:
    page = logged_in_page("viewer")
    rail = page.locator(".rail__foot")
    assert "viewer" in rail.inner_text()
    assert page.get_by_role("link", name="Admin").count() == 0
    _csp_clean(page)


def test_log_out_returns_to_the_login_page(logged_in_page: Any, berth_server: Server) -> None:
    page = logged_in_page("operator")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r"/login/"))
    page.goto("/")
    assert "/login/" in page.url


def test_the_phone_layout_collapses_the_rail_into_a_menu(logged_in_page: Any) -> None:
    page = logged_in_page("admin", viewport=PHONE)
    nav_link = page.get_by_role("navigation", name="Main").get_by_role("link", name="Overview")
    # Collapsed: the links are hidden behind the menu button, the content starts under the top bar.
    assert not nav_link.is_visible()
    screenshot(page, "overview-phone")
    page.get_by_role("button", name="Menu").click()
    assert nav_link.is_visible()
    assert page.get_by_role("button", name="Menu").get_attribute("aria-expanded") == "true"
    screenshot(page, "overview-phone-menu")
    _csp_clean(page)


def test_the_login_page_fits_a_phone_screen(new_page: Any, berth_server: Server) -> None:
    page = new_page(viewport=PHONE, color_scheme="dark")
    page.goto("/login/")
    box = page.locator(".login__card").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    screenshot(page, "login-phone-dark")
    _csp_clean(page)


def test_an_admin_reaches_the_admin_panel_from_the_rail(logged_in_page: Any) -> None:
    page = logged_in_page("admin")
    page.get_by_role("link", name="Admin").click()
    page.wait_for_url(re.compile(r"/admin/$"))
    assert page.get_by_role("heading", name="Site administration").is_visible()
    screenshot(page, "admin-index", full_page=False)
    _csp_clean(page)
