"""Web security of the dashboard over Django's test client: headers, login, rate limit, cookies, logout."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.http import HttpResponse
from django.test import Client, RequestFactory

from dashboard.security import SecurityHeadersMiddleware, allow_inline_style_elements
from tests.integration.conftest import USER_PASSWORD as PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache(settings: Any) -> Iterator[None]:
    # A fast hasher: these tests check dozens of passwords, and PBKDF2 would dominate the run time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # The rate limit lives in the (process-wide) cache; each test starts from zero failures.
    cache.clear()
    yield
    cache.clear()


def _login(client: Client, username: str, password: str, url: str = "/login/", **extra: Any) -> HttpResponse:
    return client.post(url, {"username": username, "password": password}, **extra)


# ---------- headers ----------


def test_every_page_carries_a_strict_content_security_policy(client: Client) -> None:
    csp = client.get("/login/")["Content-Security-Policy"]
    for directive in (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "connect-src 'self'",
    ):
        assert directive in csp
    # No inline script, no eval anywhere: htmx runs with allowEval false.
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp


def test_pages_refuse_framing_and_sniffing(client: Client) -> None:
    response = client.get("/login/")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "camera=()" in response["Permissions-Policy"]


def test_error_responses_carry_the_headers_too(client: Client) -> None:
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]


def test_only_terminal_views_may_use_style_elements() -> None:
    # xterm.js injects <style> elements; the relaxation is per view and never touches scripts.
    middleware = SecurityHeadersMiddleware(allow_inline_style_elements(lambda request: HttpResponse("x")))
    csp = middleware(RequestFactory().get("/"))["Content-Security-Policy"]
    assert "style-src-elem 'self' 'unsafe-inline'" in csp
    assert "script-src 'self';" in csp and "unsafe-eval" not in csp


@pytest.mark.parametrize("path", ["/login/", "/"])
def test_rendered_pages_have_no_inline_script_style_or_handler(
    client: Client, users: dict, path: str
) -> None:
    client.force_login(users["admin"])
    html = client.get(path).content.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script>"
    assert not re.search(r"<style[\s>]", html), "inline <style>"
    assert not re.search(r"\sstyle\s*=", html), "style attribute"
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler"


# ---------- login required ----------


def test_the_overview_requires_login(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/"


def test_the_admin_requires_login_and_uses_the_rate_limited_form(client: Client) -> None:
    response = client.get("/admin/", follow=True)
    assert response.redirect_chain[-1][0].startswith("/admin/login/")
    assert b'autocomplete="current-password"' in response.content  # our login template, not the admin's


def test_a_signed_in_viewer_opening_the_admin_gets_the_login_form_not_a_redirect_loop(
    client: Client, users: dict
) -> None:
    client.force_login(users["viewer"])
    response = client.get("/admin/", follow=True)
    assert response.status_code == 200
    assert len(response.redirect_chain) == 1
    assert b"You are signed in as viewer" in response.content


def test_a_login_redirect_never_leaves_the_site(client: Client, users: dict) -> None:
    response = _login(client, "admin", PASSWORD, url="/login/?next=https://evil.example/")
    assert response.status_code == 302
    assert response["Location"] == "/"


def test_login_is_csrf_protected(users: dict) -> None:
    client = Client(enforce_csrf_checks=True)
    assert _login(client, "admin", PASSWORD).status_code == 403


# ---------- rate limit ----------


def test_ten_failures_lock_the_username_out_even_with_the_right_password(client: Client, users: dict) -> None:
    for _ in range(9):
        assert _login(client, "operator", "wrong").status_code == 200
    tenth = _login(client, "operator", "wrong")
    assert tenth.status_code == 429
    assert b"Too many failed log-ins" in tenth.content
    assert int(tenth["Retry-After"]) > 14 * 60
    locked = _login(client, "operator", PASSWORD)
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session


def test_the_lockout_is_per_username_and_address(client: Client, users: dict) -> None:
    for _ in range(10):
        _login(client, "operator", "wrong")
    # Another user from the same address, and the same user from another address, still get in.
    assert _login(Client(), "viewer", PASSWORD).status_code == 302
    assert _login(Client(), "operator", PASSWORD, REMOTE_ADDR="192.0.2.7").status_code == 302


def test_a_successful_login_forgets_earlier_failures(client: Client, users: dict) -> None:
    for _ in range(9):
        _login(client, "viewer", "wrong")
    assert _login(client, "viewer", PASSWORD).status_code == 302
    other = Client()
    for _ in range(9):
        assert _login(other, "viewer", "wrong").status_code == 200


def test_the_admin_login_form_counts_towards_the_same_lockout(client: Client, users: dict) -> None:
    for _ in range(10):
        _login(client, "admin", "wrong", url="/admin/login/")
    assert _login(client, "admin", PASSWORD, url="/admin/login/").status_code == 429


def test_one_address_cycling_through_usernames_is_locked_out_too(
    client: Client, users: dict, settings: Any
) -> None:
    settings.BERTH_LOGIN_MAX_FAILURES_PER_IP = 5
    for i in range(5):
        _login(client, f"guess{i}", "wrong")
    assert _login(client, "admin", PASSWORD).status_code == 429


# ---------- cookies and logout ----------


def test_the_session_cookie_is_httponly_and_samesite_strict(client: Client, users: dict) -> None:
    response = _login(client, "admin", PASSWORD)
    cookie = response.cookies["sessionid"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"


def test_the_csrf_cookie_is_samesite_strict(client: Client) -> None:
    response = client.get("/login/")
    assert response.cookies["csrftoken"]["samesite"] == "Strict"


def test_logout_by_get_is_refused(client: Client, users: dict) -> None:
    client.force_login(users["admin"])
    assert client.get("/logout/").status_code == 405
    assert client.get("/").status_code == 200  # still signed in


def test_logout_by_post_ends_the_session(client: Client, users: dict) -> None:
    client.force_login(users["admin"])
    response = client.post("/logout/")
    assert response.status_code == 302
    assert client.get("/").status_code == 302
