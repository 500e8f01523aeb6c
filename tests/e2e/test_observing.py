"""Observing in the browser: history charts on the Stats tab and the overview, the alerts page and its
rule form, the bell that lights up without a reload, and the health chip that follows the checks.

The metrics store is seeded through engine.runtime.metricstore (the sampler's own writer), so a day of
history exists without waiting a day. Screenshots go to tests/e2e/screenshots/observing-*.png.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from engine.runtime import metricstore
from tests.conftest import require_root
from tests.e2e.conftest import PHONE, Server, remove_leftovers, screenshot
from tests.polling import wait_until

DAY = 86400
STEP = 60.0  # one seeded sample a minute: the day window reads 1-minute rollups


@pytest.fixture(scope="module", autouse=True)
def _root_and_cleanup(berth_server: Server) -> Iterator[None]:
    """Root is required; containers and rules the tests made are removed at the end."""
    require_root()
    yield
    remove_leftovers(berth_server)


def create_container(server: Server, name: str, *args: str) -> str:
    """`berth create` (not started): a container the history endpoint can resolve. Returns its ID."""
    out = server.berth("create", "--name", name, *args, "busybox", "sleep", "600").stdout.strip()
    return out.splitlines()[-1]


def seed_history(server: Server, subject: str, *, seconds: float = DAY, busy: float = 40.0) -> None:
    """Write `seconds` of raw samples for `subject` (a container ID or the host), then roll them up
    (through the sampler's own writer, engine.runtime.metricstore).

    CPU follows a slow wave (so the chart has a shape), memory climbs through the day.
    """
    now = time.time()
    start = now - seconds
    samples = []
    t = start
    while t < now:
        phase = (t - start) / seconds
        cpu = busy * (0.5 + 0.5 * ((t // 3600) % 2))  # hour-long steps: visible at a day's width
        samples.append(
            metricstore.Sample(
                subject=subject,
                t=t,
                cpu=cpu,
                mem=(64 + 192 * phase) * 2**20,
                mem_limit=(512 if subject != metricstore.HOST else 8192) * 2**20,
                rx=2048 + 1024 * phase,
                tx=512.0,
                rd=4096 * phase,
                wr=1024.0,
                disk_free=(40 - 5 * phase) * 2**30 if subject == metricstore.HOST else None,
                disk_total=100 * 2**30 if subject == metricstore.HOST else None,
            )
        )
        t += STEP
    conn = metricstore.connect(server.root / metricstore.FILE_NAME)
    try:
        metricstore.add(conn, samples)
        # The store rolls up forwards from a cursor (the sampler never writes the past): rewind it so
        # these back-dated samples are rolled up too. Re-rolling a minute only rewrites the same row.
        with metricstore.Transaction(conn):
            conn.execute("DELETE FROM meta WHERE key LIKE 'rolled:%'")
        metricstore.maintain(conn, now)
    finally:
        conn.close()


def no_reload_marker(page: Any) -> None:
    page.evaluate("window.__berthNoReload = true")


def assert_not_reloaded(page: Any) -> None:
    # The marker lives in the page's JS world: a reload or navigation would have dropped it.
    assert page.evaluate("window.__berthNoReload === true")


def test_stats_tab_draws_a_day_of_history_zooms_and_shows_an_empty_state(
    logged_in_page: Callable[..., Any], berth_server: Server
) -> None:
    cid = create_container(berth_server, "obs-hist")
    seed_history(berth_server, cid)
    page = logged_in_page("viewer")
    page.goto(f"/containers/{cid}/?tab=stats")
    history = page.locator("[data-history]")
    history.get_by_role("button", name="Day").click()
    page.wait_for_selector('[data-history][data-history-loaded="day"]')
    charts = history.locator("[data-history-charts]")
    assert charts.is_visible()
    assert history.locator("[data-history-empty]").is_hidden()
    # Four charts (CPU, memory, network, block I/O), each a uPlot canvas with a legend.
    assert history.locator(".uplot").count() == 4
    assert "Last day" in history.locator("[data-history-status]").inner_text()
    assert history.get_by_role("button", name="Day").get_attribute("aria-pressed") == "true"

    # The endpoint behind it covers the day (1-minute points, bucketed to at most 600).
    data = page.request.get(f"/containers/{cid}/history/?window=day").json()
    assert data["window"] == "day"
    assert data["times"][0] <= time.time() - 0.9 * DAY
    assert 100 < len(data["times"]) <= 600
    assert max(v for v in data["cpu_percent"] if v is not None) == pytest.approx(40, rel=0.05)

    # Drag across the CPU chart: every chart zooms to the selection; a double-click resets.
    over = history.locator('[data-history-chart="cpu"] .u-over')
    box = over.bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.3, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, y, steps=8)
    page.mouse.up()
    page.wait_for_selector("[data-history][data-zoomed]")
    over.dblclick()
    page.wait_for_selector("[data-history]:not([data-zoomed])")
    screenshot(page, "observing-stats-day-1280")
    assert not page.berth_errors

    for scheme in ("light", "dark"):
        phone = logged_in_page("viewer", viewport=PHONE, color_scheme=scheme)
        phone.goto(f"/containers/{cid}/?tab=stats&window=day")
        phone.wait_for_selector('[data-history][data-history-loaded="day"]')
        screenshot(phone, f"observing-stats-day-390-{scheme}")
    dark = logged_in_page("viewer", color_scheme="dark")
    dark.goto(f"/containers/{cid}/?tab=stats&window=week")
    dark.wait_for_selector('[data-history][data-history-loaded="week"]')
    screenshot(dark, "observing-stats-week-1280-dark")

    # A container with no samples yet explains why the chart is empty.
    fresh = create_container(berth_server, "obs-fresh")
    page.goto(f"/containers/{fresh}/?tab=stats")
    page.wait_for_selector('[data-history][data-history-loaded="hour"]')
    empty = page.locator("[data-history-empty]")
    assert empty.is_visible()
    assert "Berth samples every 10 s; history appears after the first samples" in empty.inner_text()
    assert page.locator("[data-history-charts]").is_hidden()


def test_overview_shows_host_history_and_the_top_containers(
    logged_in_page: Callable[..., Any], berth_server: Server
) -> None:
    busy = create_container(berth_server, "obs-busy")
    calm = create_container(berth_server, "obs-calm")
    seed_history(berth_server, busy, seconds=3 * 3600, busy=80.0)
    seed_history(berth_server, calm, seconds=3 * 3600, busy=5.0)
    seed_history(berth_server, metricstore.HOST)
    page = logged_in_page("admin")
    page.wait_for_selector('[data-history][data-history-loaded="day"]')
    host = page.locator("[data-history]")
    data = page.request.get("/metrics/host/?window=day").json()
    assert len(data["times"]) > 100, {k: v[:3] if isinstance(v, list) else v for k, v in data.items()}
    assert host.locator(".uplot").count() == 3  # CPU, memory, disk free
    table = page.locator("#top-table")
    table.wait_for()
    names = table.locator("tbody tr td:first-child a").all_inner_texts()
    assert names.index("obs-busy") < names.index("obs-calm")
    page.locator("#top-containers").get_by_role("button", name="Memory").click()
    page.wait_for_selector('#top-containers [aria-pressed="true"]:text("Memory")')
    page.locator("#top-containers").get_by_role("button", name="Hour").click()
    page.wait_for_selector('#top-containers [aria-pressed="true"]:text("Hour")')
    assert page.locator("#top-table").is_visible()
    screenshot(page, "observing-overview-1280")
    assert not page.berth_errors
    for scheme in ("light", "dark"):
        phone = logged_in_page("admin", viewport=PHONE, color_scheme=scheme)
        phone.wait_for_selector('[data-history][data-history-loaded="day"]')
        phone.locator("#top-table").wait_for()
        screenshot(phone, f"observing-overview-390-{scheme}")
    dark = logged_in_page("admin", color_scheme="dark")
    dark.wait_for_selector('[data-history][data-history-loaded="day"]')
    dark.locator("#top-table").wait_for()
    screenshot(dark, "observing-overview-1280-dark")


def bell_count(page: Any) -> str:
    return str(page.locator("[data-bell]").get_attribute("data-unseen"))


def test_an_alert_rule_made_in_the_form_lights_the_bell_without_a_reload(
    logged_in_page: Callable[..., Any], berth_server: Server
) -> None:
    page = logged_in_page("admin")
    page.get_by_role("link", name="Alerts", exact=True).click()
    page.get_by_role("link", name="New rule").first.click()  # the header's (the empty state has one too)
    page.get_by_label("Rule name").fill("e2e-exit")
    page.get_by_label("When a container…").select_option("exit")
    # Threshold and minutes mean nothing for an exit rule: the form hides them.
    assert page.locator('[data-field="threshold"]').is_hidden()
    page.get_by_label("Applies to").select_option("name")
    page.get_by_label("Label or container name").fill("obs-exit")
    screenshot(page, "observing-rule-form-1280")
    page.get_by_role("button", name="Create rule").click()
    page.wait_for_url(re.compile(r"/alerts/$"))
    rules = page.locator("#rules-table")
    assert "e2e-exit" in rules.inner_text()
    assert "name obs-exit" in rules.inner_text()

    page.goto("/containers/")
    assert bell_count(page) == "0"
    assert page.locator("[data-bell-count]").is_hidden()
    no_reload_marker(page)
    berth_server.berth("run", "-d", "--name", "obs-exit", "busybox", "sh", "-c", "sleep 1; exit 3")
    # The monitor opens the alert, the server publishes the event, bell.js shows the count.
    page.wait_for_selector('[data-bell][data-unseen="1"]', timeout=40_000)
    assert page.locator("[data-bell-count]").inner_text() == "1"
    assert_not_reloaded(page)
    screenshot(page, "observing-bell-1280")

    page.locator("[data-bell]").click()
    page.wait_for_url(re.compile(r"/alerts/$"))
    opened = page.locator("#open-alerts")
    assert "obs-exit" in opened.inner_text()
    assert "e2e-exit" in opened.inner_text()
    assert bell_count(page) == "0"  # opening the page marked it seen
    screenshot(page, "observing-alerts-1280")
    assert not page.berth_errors

    # Disable, then enable again: both are buttons on the rule's row, each an event.
    row = page.locator('#rules-table tr[data-rule="e2e-exit"]')
    row.get_by_role("button", name="Disable rule e2e-exit").click()
    page.wait_for_selector('#rules-table tr[data-rule="e2e-exit"] .alert-state--disabled')
    page.locator('#rules-table tr[data-rule="e2e-exit"]').get_by_role(
        "button", name="Enable rule e2e-exit"
    ).click()
    page.wait_for_selector('#rules-table tr[data-rule="e2e-exit"] .badge--running')

    for scheme in ("light", "dark"):
        phone = logged_in_page("admin", viewport=PHONE, color_scheme=scheme)
        phone.goto("/alerts/")
        screenshot(phone, f"observing-alerts-390-{scheme}")
        phone.goto("/alerts/rules/new/")
        phone.get_by_label("When a container…").select_option("cpu")
        screenshot(phone, f"observing-rule-form-390-{scheme}")
    dark = logged_in_page("admin", color_scheme="dark")
    dark.goto("/alerts/")
    screenshot(dark, "observing-alerts-1280-dark")
    dark.get_by_role("link", name="Edit rule e2e-exit").click()
    assert dark.get_by_label("Label or container name").input_value() == "obs-exit"
    screenshot(dark, "observing-rule-edit-1280-dark")

    # A viewer reads the same page but has no form and no buttons.
    viewer = logged_in_page("viewer")
    viewer.goto("/alerts/")
    assert "e2e-exit" in viewer.locator("#rules-table").inner_text()
    assert viewer.get_by_role("link", name="New rule").count() == 0
    assert viewer.get_by_role("button", name=re.compile("Delete rule")).count() == 0
    assert viewer.goto("/alerts/rules/new/").status == 403

    # Delete the rule through its confirmation dialog.
    page.locator('#rules-table tr[data-rule="e2e-exit"]').get_by_role(
        "button", name="Delete rule e2e-exit"
    ).click()
    page.locator("#confirm-dialog").get_by_role("button", name="Delete").click()
    page.wait_for_selector('#rules-table tr[data-rule="e2e-exit"]', state="detached")


def test_health_chip_follows_the_checks_without_a_reload(
    logged_in_page: Callable[..., Any], berth_server: Server
) -> None:
    berth_server.berth(
        "run",
        "-d",
        "--name",
        "obs-health",
        "--health-cmd",
        "test -f /tmp/ok",
        "--health-interval",
        "1s",
        "--health-retries",
        "1",
        "busybox",
        "sh",
        "-c",
        "sleep 4; touch /tmp/ok; sleep 600",
    )
    page = logged_in_page("viewer")
    page.goto("/containers/")
    no_reload_marker(page)
    row = page.locator('tr[data-name="obs-health"]')
    row.wait_for()
    # starting → unhealthy (the file is missing) → healthy (it appears after 4 s), all in place.
    page.wait_for_selector('tr[data-name="obs-health"] [data-health="unhealthy"]', timeout=20_000)
    screenshot(page, "observing-health-unhealthy-1280")
    page.wait_for_selector('tr[data-name="obs-health"] [data-health="healthy"]', timeout=20_000)
    assert_not_reloaded(page)
    screenshot(page, "observing-containers-health-1280")
    phone = logged_in_page("viewer", viewport=PHONE, color_scheme="dark")
    phone.goto("/containers/")
    phone.locator('tr[data-name="obs-health"] [data-health]').wait_for()
    screenshot(phone, "observing-containers-health-390-dark")

    row.get_by_role("link", name="obs-health").click()
    panel = page.locator("#health-panel")
    wait_until(lambda: "Last results" in panel.inner_text(), timeout=10, what="the health panel")
    text = panel.inner_text()
    assert "test -f /tmp/ok" in text
    assert "exit 0" in text and "exit 1" in text  # the recent results, both kinds
    assert page.locator('#container-header [data-health="healthy"]').is_visible()
    screenshot(page, "observing-health-panel-1280")
    for scheme in ("light", "dark"):
        phone = logged_in_page("viewer", viewport=PHONE, color_scheme=scheme)
        phone.goto(page.url)
        phone.locator("#health-panel .kv").wait_for()
        screenshot(phone, f"observing-health-panel-390-{scheme}")
    assert not page.berth_errors
