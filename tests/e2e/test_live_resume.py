"""Server-to-page freshness: nothing written between a page's render and its events socket is lost,
and `berth user deactivate` run from a shell closes that user's open sockets in the server.

Screenshots: tests/e2e/screenshots/resume-*.png.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import require_root
from tests.e2e.conftest import REPO, Server, log_in, remove_leftovers, screenshot

PREFIX = "lr-"
# Exits 0 on SIGTERM (busybox sh as PID 1 ignores it otherwise, and stop would wait 10 s).
TICKER = 'trap "exit 0" TERM; while true; do echo tick; sleep 0.2; done'


@pytest.fixture(scope="module", autouse=True)
def _root_and_cleanup(berth_server: Server) -> Iterator[None]:
    require_root()
    yield
    remove_leftovers(berth_server, PREFIX)


def run_ticker(server: Server, name: str) -> str:
    done = server.berth(
        "run", "-d", "--network", "none", "--name", PREFIX + name, "busybox", "sh", "-c", TICKER
    )
    return done.stdout.strip().splitlines()[-1]


def test_a_stop_from_the_cli_between_render_and_socket_reaches_the_page(
    logged_in_page: Callable[..., Any], berth_server: Server
) -> None:
    cid = run_ticker(berth_server, "gap")
    page = logged_in_page("viewer")
    held: list[Any] = []

    # Hold the page's events socket back: the browser waits while the route has not connected it.
    def hold(ws: Any) -> None:
        held.append(ws)

    page.route_web_socket(re.compile(r"/ws/events/"), hold)
    page.goto(f"/containers/{cid}/")
    header = page.locator("#container-header .badge")
    expect(header).to_have_text("running")
    page.wait_for_function("() => document.documentElement.dataset.live === 'connected'")  # held, not open
    assert len(held) == 1
    cursor = int(page.locator("script[data-live-after]").get_attribute("data-live-after") or "")
    assert f"after={cursor}" in held[0].url  # the socket asks for what came after the render

    berth_server.berth("stop", PREFIX + "gap")
    # Let the server's monitor publish the stop to every open socket before ours joins: a second page,
    # connected all along, shows it. The held page has no socket in the server yet, so it hears nothing.
    other = logged_in_page("viewer")
    other.goto(f"/containers/{cid}/")
    expect(other.locator("#container-header .badge")).to_have_text("exited")
    expect(header).to_have_text("running")

    held[0].connect_to_server()
    # Only the replay of the events after the cursor can bring the stop: the page never reconnects.
    expect(header).to_have_text("exited")
    expect(page.locator("#state-panel .badge")).to_have_text("exited")
    screenshot(page, "resume-after-gap")
    assert page.berth_errors == []


def test_the_events_socket_resumes_after_its_last_event_when_it_drops(
    logged_in_page: Callable[..., Any], berth_server: Server
) -> None:
    cid = run_ticker(berth_server, "drop")
    page = logged_in_page("viewer")
    routes: list[Any] = []

    def relay(ws: Any) -> None:
        routes.append(ws)
        ws.connect_to_server()

    page.route_web_socket(re.compile(r"/ws/events/"), relay)
    page.goto(f"/containers/{cid}/")
    header = page.locator("#container-header .badge")
    page.wait_for_function("() => document.documentElement.dataset.live === 'connected'")
    berth_server.berth("pause", PREFIX + "drop")
    expect(header).to_have_text("paused")
    applied = page.evaluate("() => window.berthLive.lastId()")

    routes[0].close(code=1011)  # dropped (a server restart looks the same to the page)
    page.wait_for_function("() => document.documentElement.dataset.live === 'disconnected'")
    berth_server.berth("unpause", PREFIX + "drop")
    expect(header).to_have_text("running", timeout=20_000)
    assert len(routes) == 2
    assert routes[1].url.endswith(f"?after={applied}")  # resumed from the last event it applied


def _create_user(server: Server, name: str, password: str) -> None:
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "berth",
            "user",
            "create",
            name,
            "--role",
            "viewer",
            "--password-stdin",
        ],
        cwd=REPO,
        env={**server.env, "BERTH_MONITOR": "0"},
        input=password + "\n",
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_berth_user_deactivate_from_a_shell_closes_the_users_open_logs_socket(
    new_page: Callable[..., Any], berth_server: Server
) -> None:
    cid = run_ticker(berth_server, "revoke")
    name, password = "lr-erin", "erins-Passw0rd-for-e2e"
    _create_user(berth_server, name, password)
    page = new_page()
    log_in(page, berth_server, name, password)
    page.wait_for_url(berth_server.url + "/")
    closed: list[int | None] = []
    page.on(
        "websocket",
        lambda ws: ws.on("close", lambda _: closed.append(1)) if "/logs/" in ws.url else None,
    )
    page.goto(f"/containers/{cid}/?tab=logs")
    status = page.locator("[data-logs-status]")
    expect(status).to_contain_text("Live")
    expect(page.locator(".log-line", has_text="tick").first).to_be_visible()
    assert closed == []

    done = berth_server.berth(
        "user", "deactivate", name
    )  # another process: the server learns of it from the table
    assert done.stdout.strip() == f"Deactivated {name}"
    # Within a few monitor polls both the logs socket and the page's events socket are closed for good.
    expect(status).to_have_text("The log cannot be shown (not allowed).", timeout=5_000)
    expect(page.locator("html")).to_have_attribute("data-live", "disconnected", timeout=5_000)
    assert closed == [1]
    screenshot(page, "resume-revoked-logs")
