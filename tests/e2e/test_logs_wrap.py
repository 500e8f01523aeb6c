"""Wrap in the log view (static/js/logs.js): long lines wrap instead of scrolling sideways.

- on, a long line takes as many rows as it needs, all of its text is shown, the rows below start
  where it ends (no overlap), nothing scrolls sideways, and the choice is remembered; off, the line
  is one row again and scrolls sideways;
- on during a flood of long lines, Pause holds the view still, Follow returns to the last line (the
  last row sits at the view's bottom edge), only the rows in sight are in the DOM, and search jumps
  to a wrapped line out of the window and shows all of it.
Screenshots: tests/e2e/screenshots/logs-wrap-*.png at 1280 and 390 px, light and dark.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import require_root
from tests.e2e.conftest import PHONE, Server, remove_leftovers, run_script, screenshot
from tests.polling import wait_until

PREFIX = "e2e-lw-"
ROW = 18
LONG = "long-start " + "abcdefghij" * 60 + " long-end"
TWO_FRAMES = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
# The row shown at the bottom edge of the view (what the reader sees).
AT_BOTTOM_EDGE = """() => { const r = document.querySelector('[data-logs-view]').getBoundingClientRect();
  return document.elementFromPoint(r.left + 30, r.bottom - 6)?.closest('.log-line')?.textContent || ''; }"""
LAST_ROW = "() => document.querySelector('[data-logs-view]').lastElementChild?.textContent || ''"
# Each drawn row's [text, top, height, cut below?, wider than the view or cut sideways?] relative to the view, and whether the view scrolls sideways.
ROWS = """() => { const v = document.querySelector('[data-logs-view]'); const top = v.getBoundingClientRect().top;
  return { sideways: v.scrollWidth > v.clientWidth + 1, rows: [...v.querySelectorAll('.log-line')].map(r => {
    const b = r.getBoundingClientRect();
    return [r.textContent, b.top - top, b.height, r.scrollHeight > r.clientHeight + 1,
      r.scrollWidth > r.clientWidth + 1 || b.width > v.clientWidth + 1];
  }) }; }"""


@pytest.fixture(scope="module", autouse=True)
def _root_and_cleanup(berth_server: Server) -> Iterator[None]:
    """Root is required; the containers these tests made are removed at the end."""
    require_root()
    yield
    remove_leftovers(berth_server, PREFIX)


def run(server: Server, name: str, script: str) -> str:
    return run_script(server, PREFIX + name, script)


def long_row(page: Any) -> tuple[list[Any], list[Any]]:
    """The long line's row and the row after it."""
    state = page.evaluate(ROWS)
    rows = state["rows"]
    at = next(i for i, r in enumerate(rows) if "long-start" in r[0])
    return rows[at], rows[at + 1]


def test_wrap_shows_a_long_line_on_several_rows_and_is_remembered(
    logged_in_page: Callable[..., Any], berth_server: Server
) -> None:
    script = f"for i in 1 2 3; do echo short $i; done; echo '{LONG}'; for i in 4 5 6; do echo short $i; done; sleep 600"
    cid = run(berth_server, "long", script)
    page = logged_in_page("viewer")
    page.goto(f"/containers/{cid}/?tab=logs")
    page.wait_for_function(f"() => ({LAST_ROW})().endsWith('short 6')", timeout=30_000)
    wrap = page.get_by_label("Wrap")
    assert not wrap.is_checked()
    # Off: one row, the line runs on sideways.
    line, after = long_row(page)
    assert line[2] == ROW and line[4], line
    assert page.evaluate(ROWS)["sideways"]

    wrap.check()
    page.wait_for_function("() => document.querySelector('[data-logs-view]').classList.contains('is-wrap')")
    wait_until(lambda: long_row(page)[0][2] > ROW, timeout=5, what="the long line to wrap")
    line, after = long_row(page)
    rows = round(line[2] / ROW)
    # 620 characters at about 7.5 px in a ~1,230 px row: 4 rows (the count is the model's, exact).
    assert line[2] == rows * ROW and 3 <= rows <= 5, line
    assert not line[3] and not line[4], "the wrapped line is cut"
    assert after[1] == line[1] + line[2], "the next row overlaps the wrapped line (or leaves a gap)"
    assert after[0].endswith("short 4")
    assert not page.evaluate(ROWS)["sideways"]
    # Following: the last line sits at the bottom edge.
    page.wait_for_function(f"() => ({LAST_ROW})().endsWith('short 6')")
    screenshot(page, "logs-wrap-desktop", full_page=False)

    # Remembered: a new page (same browser storage) opens with Wrap on.
    page.reload()
    page.wait_for_function(f"() => ({LAST_ROW})().endsWith('short 6')", timeout=30_000)
    assert page.get_by_label("Wrap").is_checked()
    wait_until(lambda: long_row(page)[0][2] == rows * ROW, timeout=5, what="the long line wrapped again")

    # Off again: one row.
    page.get_by_label("Wrap").uncheck()
    wait_until(lambda: long_row(page)[0][2] == ROW, timeout=5, what="the long line on one row")
    line, after = long_row(page)
    assert after[1] == line[1] + ROW

    for scheme in ("light", "dark"):
        phone = logged_in_page("viewer", viewport=PHONE, color_scheme=scheme)
        phone.goto(f"/containers/{cid}/?tab=logs")
        phone.wait_for_function(f"() => ({LAST_ROW})().endsWith('short 6')", timeout=30_000)
        phone.get_by_label("Wrap").check()
        # About 45 characters a row at 390 px: the line takes many rows, none overlapping.
        wait_until(lambda p=phone: long_row(p)[0][2] >= 10 * ROW, timeout=5, what="the line wrapped narrow")
        line, after = long_row(phone)
        assert not line[3] and not line[4], "the wrapped line is cut"
        assert after[1] == line[1] + line[2]
        assert not phone.evaluate(ROWS)["sideways"]
        phone.locator("[data-logs-view]").evaluate(
            "v => { v.dispatchEvent(new WheelEvent('wheel')); v.scrollTop = 0; }"
        )
        phone.wait_for_function("() => document.querySelector('.log-line')?.textContent.includes('short 1')")
        screenshot(phone, f"logs-wrap-phone-{scheme}", full_page=False)
        phone.close()


def test_wrap_during_a_flood_still_follows_to_the_last_line(
    logged_in_page: Callable[..., Any], berth_server: Server
) -> None:
    pad = "w" * 300
    cid = run(
        berth_server,
        "flood",
        f"while [ ! -e /tmp/go ]; do sleep 0.1; done; seq 1 120000 | sed 's/.*/{pad} &/'; sleep 600",
    )
    page = logged_in_page("operator", color_scheme="dark")
    page.add_init_script("window.localStorage.setItem('berth-logs-wrap', '1');")
    page.add_init_script(
        "window.__gaps = []; (function () { var last = performance.now(); setInterval(function () {"
        " var now = performance.now(); window.__gaps.push(now - last); last = now; }, 50); })();"
    )
    page.goto(f"/containers/{cid}/?tab=logs")
    page.locator("[data-logs-status]", has_text="Live").wait_for()
    assert page.get_by_label("Wrap").is_checked()
    berth_server.berth("exec", cid, "touch", "/tmp/go")
    logs = "document.querySelector('[data-logs]').berthLogs"
    page.wait_for_function(f"() => {logs}.received() > 22000", timeout=60_000)
    # Following a flood with Wrap on, the window stays at 20,000 lines.
    assert page.evaluate(f"() => {logs}.held()") == 20_000
    # Pause mid-flood: the view stays where it is while lines keep arriving.
    page.get_by_role("button", name="Following").click()
    page.wait_for_function(f"() => !{logs}.following()")
    page.evaluate(TWO_FRAMES)
    frozen = page.evaluate(AT_BOTTOM_EDGE)
    received = page.evaluate(f"() => {logs}.received()")
    page.wait_for_function(f"() => {logs}.received() > {received + 3000}", timeout=60_000)
    assert frozen and page.evaluate(AT_BOTTOM_EDGE) == frozen, "the view moved while paused"
    # Follow: back to the live end, to the last line.
    page.get_by_role("button", name=re.compile("^Paused")).click()
    page.wait_for_function(f"() => ({LAST_ROW})().endsWith(' 120000')", timeout=120_000, polling=50)
    # The last line (more than one row) is drawn whole at the view's bottom edge, and only the rows
    # in sight are in the DOM.
    state = page.evaluate(
        "() => { const v = document.querySelector('[data-logs-view]'); const r = v.querySelector('.log-line:last-child');"
        " return [v.getBoundingClientRect().bottom - r.getBoundingClientRect().bottom, v.querySelectorAll('.log-line').length,"
        " document.querySelector('[data-logs]').berthLogs.held(), r.getBoundingClientRect().height]; }"
    )
    assert abs(state[0]) <= 1, f"the last row is {state[0]} px from the bottom edge"
    assert state[3] >= 2 * ROW, f"the last line did not wrap ({state[3]} px)"
    assert 0 < state[1] <= 120 and state[2] <= 20_000, state
    gaps = page.evaluate("() => window.__gaps")
    assert max(gaps) < 1000, f"the main thread stalled {max(gaps):.0f} ms"
    screenshot(page, "logs-wrap-flood-dark", full_page=False)

    # Search jumps to a wrapped line far back (out of the window) and shows all of it.
    page.locator("[data-logs-search]").fill("w 31337")
    wait_until(lambda: page.locator("[data-logs-matches]").inner_text() == "1 of 1", timeout=15)
    current = page.locator(".log-line.is-current")
    current.wait_for()
    assert current.inner_text().endswith("w 31337")
    box = current.evaluate(
        "r => { const a = r.closest('[data-logs-view]').getBoundingClientRect(), b = r.getBoundingClientRect();"
        " return [b.top - a.top, a.bottom - b.bottom, b.height]; }"
    )
    assert box[0] >= 0 and box[1] >= 0 and box[2] >= 2 * ROW, box
    page.get_by_role("button", name=re.compile("^Paused")).click()
    page.wait_for_function(f"() => ({LAST_ROW})().endsWith(' 120000')", timeout=30_000)
