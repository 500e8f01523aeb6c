"""Issue 9, item 7 (polish) in the browser: one events socket per page, a console without errors or
warnings (no unknown Permissions-Policy feature, no htmx error for an expected 409), a favicon in
the dashboard and the admin, a light/dark/system toggle that persists, round stats axes, and one
empty state on every list.

Screenshots of each changed page at 1280 and 390 px, light and dark: tests/e2e/screenshots/polish-*.png.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import require_root
from tests.e2e.conftest import PHONE, REPO, Server, screenshot

VOLUME = "polish-vol"
USER = "polish-user"  # a container that holds VOLUME, so removing it is a 409
TICKER = "polish-tick"  # a running container, for the stats charts

LIST_PAGES = ["/", "/containers/", "/images/", "/volumes/", "/networks/", "/events/", "/alerts/"]


@pytest.fixture(scope="module", autouse=True)
def objects(berth_server: Server) -> Iterator[dict[str, str]]:
    """A volume in use by a created container and a running container; all removed at the end."""
    require_root()
    berth_server.berth("volume", "create", VOLUME)
    user = berth_server.berth("create", "--name", USER, "-v", f"{VOLUME}:/data", "busybox", "sleep", "600")
    ticker = berth_server.berth(
        "run", "-d", "--name", TICKER, "busybox", "sh", "-c", "while true; do echo tick; sleep 1; done"
    )
    try:
        yield {"user": user.stdout.strip().splitlines()[-1], "ticker": ticker.stdout.strip().splitlines()[-1]}
    finally:
        env = {**berth_server.env, "BERTH_MONITOR": "0"}
        berth = [sys.executable, str(REPO / "manage.py"), "berth"]
        subprocess.run([*berth, "rm", "-f", USER, TICKER], env=env, capture_output=True, timeout=120)
        subprocess.run([*berth, "volume", "rm", "-f", VOLUME], env=env, capture_output=True, timeout=60)


def watch(page: Any) -> dict[str, list[str]]:
    """Record events sockets and console errors/warnings from now on (reset by the caller per page)."""
    seen: dict[str, list[Any]] = {"sockets": [], "console": []}

    def socket(ws: Any) -> None:
        if "/ws/events/" in ws.url:
            # Only sockets still open count: a reconnect after a dropped socket is not a duplicate.
            seen["sockets"].append(ws)
            ws.on(
                "close", lambda closed: seen["sockets"].remove(closed) if closed in seen["sockets"] else None
            )

    page.on("websocket", socket)
    page.on(
        "console",
        lambda msg: (
            seen["console"].append(f"{msg.type}: {msg.text}") if msg.type in ("error", "warning") else None
        ),
    )
    page.on("pageerror", lambda exc: seen["console"].append(f"pageerror: {exc}"))
    return seen


def detail_pages(objects: dict[str, str]) -> list[str]:
    return [
        f"/containers/{objects['user']}/",
        f"/containers/{objects['ticker']}/?tab=stats",
        f"/volumes/{VOLUME}/",
        "/networks/bridge/",
    ]


def open_live(page: Any, url: str) -> None:
    """Go to `url` and wait until its events socket is connected (both deferred scripts have run)."""
    page.goto(url)
    try:
        page.wait_for_function("() => document.documentElement.dataset.live === 'connected'", timeout=20_000)
    except Exception as exc:
        raise AssertionError(f"the events socket of {url} did not connect") from exc


def test_every_page_opens_exactly_one_events_socket(
    logged_in_page: Callable[..., Any], objects: dict[str, str]
) -> None:
    page = logged_in_page("admin")
    # The landing page's own socket must be open before we watch, or it would count for the next page.
    page.wait_for_function("() => document.documentElement.dataset.live === 'connected'")
    seen = watch(page)
    for url in LIST_PAGES + detail_pages(objects):
        seen["sockets"].clear()
        open_live(page, url)
        # Two sockets per page meant every event refreshed each live element twice.
        assert len(seen["sockets"]) == 1, (url, [ws.url for ws in seen["sockets"]])
        assert page.locator('script[src*="/js/live.js"]').count() == 1, url


def test_main_pages_log_no_console_errors_or_warnings(
    new_page: Callable[..., Any], berth_server: Server, objects: dict[str, str]
) -> None:
    page = new_page()
    seen = watch(page)
    page.goto("/login/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(berth_server.password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(berth_server.url + "/")
    for url in LIST_PAGES + detail_pages(objects):
        open_live(page, url)
        page.wait_for_load_state("networkidle")
    # The Permissions-Policy header once named "bluetooth", unknown to Chromium: a warning per page.
    assert seen["console"] == [], seen["console"]


def test_an_expected_409_shows_its_toast_and_logs_nothing(logged_in_page: Callable[..., Any]) -> None:
    page = logged_in_page("admin")  # removing volumes is an admin's action
    seen = watch(page)
    open_live(page, "/volumes/")
    page.get_by_role("button", name=f"Remove {VOLUME}").click()
    page.locator("#confirm-dialog").get_by_role("button", name="Remove").click()
    toast = page.locator(".toast--error")
    toast.wait_for()
    assert "in use" in toast.inner_text()  # the engine's message reaches the user …
    page.wait_for_load_state("networkidle")
    # … and htmx no longer logs "Response Status Error Code 409" for an answer the page expected.
    assert seen["console"] == [], seen["console"]
    assert page.get_by_role("link", name=VOLUME).is_visible()  # nothing was swapped away


def test_the_favicon_resolves_in_the_dashboard_and_the_admin(
    logged_in_page: Callable[..., Any], berth_server: Server
) -> None:
    page = logged_in_page("admin")
    for url in ("/", "/admin/", "/admin/engine/container/"):
        page.goto(url)
        href = page.locator('link[rel="icon"]').first.get_attribute("href")
        assert href, f"no <link rel=icon> on {url}"
        response = page.request.get(href)
        assert response.status == 200 and "svg" in response.headers["content-type"], (url, href)
    # Pages without a link (raw files, downloads) make the browser ask for /favicon.ico.
    response = page.request.get("/favicon.ico")
    assert response.status == 200 and "svg" in response.headers["content-type"]


def theme_of(page: Any) -> str:
    return str(page.evaluate("document.documentElement.dataset.theme"))


def test_the_theme_toggle_switches_and_persists_across_a_reload(logged_in_page: Callable[..., Any]) -> None:
    page = logged_in_page("viewer", color_scheme="light")
    toggle = page.get_by_role("group", name="Theme")
    assert toggle.get_by_role("button", name="System").get_attribute("aria-pressed") == "true"
    assert theme_of(page) == "light"
    light_bg = page.evaluate("getComputedStyle(document.body).backgroundColor")

    toggle.get_by_role("button", name="Dark").click()
    assert theme_of(page) == "dark"
    page.wait_for_function(
        "(light) => getComputedStyle(document.body).backgroundColor !== light", arg=light_bg
    )
    page.reload()
    assert theme_of(page) == "dark"
    assert (
        page.get_by_role("group", name="Theme")
        .get_by_role("button", name="Dark")
        .get_attribute("aria-pressed")
        == "true"
    )
    # No flash: the theme is set by a parser-blocking script in <head>, before the body is painted.
    assert page.evaluate(
        "(() => { const s = document.querySelector('head script[src*=\"theme.js\"]');"
        " return !!s && !s.defer && !s.async; })()"
    )

    # "System" follows the OS again, including when the OS changes while the page is open.
    page.get_by_role("group", name="Theme").get_by_role("button", name="System").click()
    assert theme_of(page) == "light"
    page.emulate_media(color_scheme="dark")
    page.wait_for_function("() => document.documentElement.dataset.theme === 'dark'")
    page.reload()
    assert theme_of(page) == "dark"
    assert page.evaluate("localStorage.getItem('berth-theme')") is None


def test_stats_axes_tick_at_round_values_in_seconds(
    logged_in_page: Callable[..., Any], objects: dict[str, str]
) -> None:
    page = logged_in_page("viewer")
    page.goto(f"/containers/{objects['ticker']}/?tab=stats")
    page.get_by_text("Live, one sample a second").wait_for(timeout=20_000)
    # A few samples, so every axis has been laid out with data.
    page.wait_for_function("() => window.BerthStats && window.BerthStats.samples() >= 3", timeout=20_000)
    ticks = page.evaluate("window.BerthStats ? window.BerthStats.ticks() : null")
    assert ticks, "stats.js exposes the tick labels it drew"
    x_labels = ticks["cpu"]["x"]
    assert x_labels and all(re.fullmatch(r"now|\u2212\d+ s", label) for label in x_labels), x_labels
    assert "now" in x_labels
    for name in ("memory", "net", "block"):
        for label in ticks[name]["y"]:
            # A whole number of a binary unit: "0 B", "512 KB", "2 MB/s"; never "976.6 KB".
            assert re.fullmatch(r"\d+ (B|KB|MB|GB|TB)(/s)?", label), (name, label)
    for label in ticks["cpu"]["y"]:
        assert re.fullmatch(r"\d+ %", label), label
    screenshot(page, "polish-stats-axes")
    # The charts read the theme's colours: switching rebuilds them, with the samples kept.
    page.get_by_role("group", name="Theme").get_by_role("button", name="Dark").click()
    assert page.locator("[data-chart] .uplot").count() == 4
    assert page.evaluate("() => window.BerthStats.ticks().cpu.x.includes('now')")
    assert page.berth_errors == []


def test_every_list_shows_the_same_empty_state(logged_in_page: Callable[..., Any]) -> None:
    page = logged_in_page("admin")
    for url, title, action in (
        ("/containers/?q=zzz-none", "No containers match", "Show all containers"),
        ("/images/?q=zzz-none", "No images match", "Show all images"),
        ("/volumes/?q=zzz-none", "No volumes match", "Show all volumes"),
        ("/networks/?q=zzz-none", "No networks match", "Show all networks"),
        ("/events/?user=zzz-none", "No events match", "Clear filters"),
    ):
        page.goto(url)
        empty = page.locator("[data-empty-state]")
        assert empty.count() == 1, url
        assert empty.locator(".empty-state__title").inner_text() == title
        assert empty.get_by_role("link", name=action).is_visible()
        if "q=" in url:
            assert "“zzz-none”" in empty.inner_text()
    # Alerts: every section is either a table or the same empty state, never a bare paragraph.
    page.goto("/alerts/")
    for section in page.locator("section.panel").all():
        assert section.locator("table").count() + section.locator("[data-empty-state]").count() >= 1
    assert page.locator("p.empty").count() == 0
    # Searching from the page swaps the empty state in through htmx, the same partial.
    page.goto("/volumes/")
    page.get_by_role("searchbox").first.fill("zzz-none")
    page.locator("[data-empty-state]").get_by_text("No volumes match").wait_for()


SHOTS = {
    "containers-empty": "/containers/?q=zzz-none",
    "containers": "/containers/",
    "images": "/images/",
    "volumes": "/volumes/",
    "networks-empty": "/networks/?q=zzz-none",
    "events-empty": "/events/?user=zzz-none",
    "alerts": "/alerts/",
    "overview": "/",
    "container-overview": "container:user",
    "container-stats": "container:ticker",
}


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_screenshots_of_the_changed_pages(
    logged_in_page: Callable[..., Any], objects: dict[str, str], scheme: str, width: str
) -> None:
    page = logged_in_page("admin", color_scheme=scheme, **({"viewport": PHONE} if width == "phone" else {}))
    for name, url in SHOTS.items():
        if url == "container:user":
            url = f"/containers/{objects['user']}/?tab=overview"
        elif url == "container:ticker":
            url = f"/containers/{objects['ticker']}/?tab=stats"
        open_live(page, url)
        if "stats" in url:
            page.get_by_text("Live, one sample a second").wait_for(timeout=20_000)
            page.wait_for_timeout(2500)
        if width == "phone" and name == "overview":
            page.locator("[data-rail-toggle]").click()  # the theme toggle lives in the phone menu
        assert theme_of(page) == scheme
        screenshot(page, f"polish-{name}-{width}-{scheme}")
