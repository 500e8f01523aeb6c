"""The log view (issue 9, item 2) in the browser, one test per finding:

- a 100,000-line flood: every line arrives, only the rows in sight are in the DOM, the main thread
  keeps answering (a 50 ms heartbeat) and Pause acts at once, mid-flood;
- "tail all" on a 100,001-line log: the count of earlier lines is exact and scrolling up brings
  back every line, in order, down to line 1, in pages from the server;
- search runs on the server over the whole log (not the lines the page holds) and jumps to the match;
- "Logs of these" on the containers list shows several containers' logs merged by time.

Figures (how fast, how long the longest gap) are bench/dashboard.py's; the bounds here are loose
enough for a loaded test machine and far below the findings (7.5 s, 843 ms tasks, 2.6–7.3 s Pause).
Screenshots: tests/e2e/screenshots/logs-*.png at 1280 and 390 px, light and dark.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import require_root
from tests.e2e.conftest import PHONE, Server, remove_leftovers, run_script, screenshot
from tests.polling import wait_until

PREFIX = "e2e-lg-"
HEARTBEAT = """window.__gaps = [];
(function () { var last = performance.now();
  setInterval(function () { var now = performance.now(); window.__gaps.push(now - last); last = now; }, 50); })();"""
PAUSE_PROBE = """() => new Promise(resolve => {
  const button = document.querySelector('[data-logs-follow]');
  let clicked = 0;
  button.addEventListener('click', e => { clicked = e.timeStamp; }, {capture: true, once: true});
  new MutationObserver((_, obs) => {
    if (button.textContent.startsWith('Paused')) { obs.disconnect(); resolve(performance.now() - clicked); }
  }).observe(button, {childList: true, characterData: true, subtree: true});
  button.click();
})"""
# The reader scrolls to the top (a wheel event first: only the reader's own scrolling pauses).
SCROLL_TO_TOP = "v => { v.dispatchEvent(new WheelEvent('wheel')); v.scrollTop = 0; }"
# The row shown at the bottom edge of the view (what the reader sees, not the rows kept below it).
AT_BOTTOM_EDGE = """() => { const r = document.querySelector('[data-logs-view]').getBoundingClientRect();
  return document.elementFromPoint(r.left + 30, r.bottom - 6)?.closest('.log-line')?.textContent || ''; }"""
LAST_ROW_SHOWN = """() => { const v = document.querySelector('[data-logs-view]');
  const row = v.querySelector('.log-line:last-child'); if (!row) return '';
  const a = v.getBoundingClientRect(), b = row.getBoundingClientRect();
  return b.top >= a.top && b.bottom <= a.bottom + 1 ? row.textContent : ''; }"""
LAST_ROW = "() => document.querySelector('[data-logs-view]').lastElementChild?.textContent || ''"
TWO_FRAMES = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"


@pytest.fixture(scope="module", autouse=True)
def _root_and_cleanup(berth_server: Server) -> Iterator[None]:
    """Root is required; the containers these tests made are removed at the end."""
    require_root()
    yield
    remove_leftovers(berth_server, PREFIX)


def run(server: Server, name: str, script: str) -> str:
    return run_script(server, PREFIX + name, script)


def log_has(server: Server, cid: str, text: str) -> bool:
    return text in server.berth("logs", "--tail", "1", cid).stdout


def settled_bottom_row(page: Any) -> str:
    """The row at the view's bottom edge once it is the same two frames apart ('' while it still moves).

    A frame or two after the click the browser may still apply the last scroll of the page's
    following; what must hold is that the view then stays put while lines keep arriving.
    """
    before = page.evaluate(AT_BOTTOM_EDGE)
    page.evaluate(TWO_FRAMES)
    after = page.evaluate(AT_BOTTOM_EDGE)
    return after if before == after else ""


def window_numbers(page: Any) -> list[int]:
    """The numbers of every line the page holds (its whole window, not only the rows in sight)."""
    texts = page.evaluate(
        "() => { const l = document.querySelector('[data-logs]').berthLogs; const out = [];"
        " for (let i = 0; l.line(i) !== null; i++) out.push(l.line(i)); return out; }"
    )
    return [int(re.findall(r"\d+", t)[0]) for t in texts]


def test_a_100000_line_flood_stays_fluid_and_pause_acts_at_once(
    logged_in_page: Callable[..., Any], berth_server: Server
) -> None:
    page = logged_in_page("operator")
    page.add_init_script(HEARTBEAT)
    cid = run(berth_server, "flood", "while [ ! -e /tmp/go ]; do sleep 0.1; done; seq 1 100000; sleep 600")
    page.goto(f"/containers/{cid}/?tab=logs")
    page.locator("[data-logs-status]", has_text="Live").wait_for()
    berth_server.berth("exec", cid, "touch", "/tmp/go")
    page.wait_for_function(f"() => ({LAST_ROW})().endsWith('100000')", timeout=120_000, polling=50)
    # A virtual list: a few dozen rows in the DOM, the newest lines consecutive in the window.
    rows = page.locator(".log-line").count()
    assert 0 < rows <= 120, rows
    numbers = window_numbers(page)
    assert numbers == list(range(100_001 - len(numbers), 100_001))
    assert "earlier lines" in page.locator("[data-logs-note]").inner_text()
    gaps = page.evaluate("() => window.__gaps")
    assert max(gaps) < 1000, f"the main thread stalled {max(gaps):.0f} ms (the finding: 843 ms tasks)"
    screenshot(page, "logs-flood", full_page=False)

    # Pause mid-flood: a second flood, and the click answers within a frame or two.
    cid2 = run(berth_server, "flood2", "while [ ! -e /tmp/go ]; do sleep 0.1; done; seq 1 300000; sleep 600")
    page.goto(f"/containers/{cid2}/?tab=logs")
    page.locator("[data-logs-status]", has_text="Live").wait_for()
    berth_server.berth("exec", cid2, "touch", "/tmp/go")
    page.wait_for_function("() => document.querySelector('[data-logs]').berthLogs.received() > 20000")
    answer = page.evaluate(PAUSE_PROBE)
    assert answer < 300, f"Pause took {answer:.0f} ms (the finding: 2.6–7.3 s)"
    frozen = wait_until(
        lambda: settled_bottom_row(page), timeout=5, what="a row at the bottom edge of the view"
    )
    received = page.evaluate("() => document.querySelector('[data-logs]').berthLogs.received()")
    page.wait_for_function(
        f"() => document.querySelector('[data-logs]').berthLogs.received() > {received + 5000}"
    )
    assert page.evaluate(AT_BOTTOM_EDGE) == frozen, "the view moved while paused"
    # Follow returns to the live end.
    page.get_by_role("button", name=re.compile("^Paused")).click()
    page.wait_for_function(f"() => ({LAST_ROW})().endsWith('300000')", timeout=120_000, polling=100)


def test_tail_all_counts_earlier_lines_exactly_and_scrolling_up_reaches_line_1(
    logged_in_page: Callable[..., Any], berth_server: Server
) -> None:
    cid = run(berth_server, "all", "seq 1 100001; sleep 600")
    wait_until(lambda: log_has(berth_server, cid, "100001"), timeout=120, what="the writer finished")
    page = logged_in_page("viewer")
    page.goto(f"/containers/{cid}/?tab=logs")
    page.locator("[data-logs-status]", has_text="Live").wait_for()
    page.locator("[data-logs-tail]").select_option("all")
    page.wait_for_function(f"() => ({LAST_ROW})().endsWith('100001')", timeout=60_000, polling=50)
    # The page holds the newest 20,000; the rest is counted exactly (the finding: 95,027 for 95,001).
    note = page.locator("[data-logs-note]")
    wait_until(lambda: note.inner_text() == "80,001 earlier lines — scroll up to load them.", timeout=10)
    assert window_numbers(page) == list(range(80_002, 100_002))

    # One page up: the seam between the websocket's lines and the server's page has no gap or repeat.
    page.locator("[data-logs-view]").evaluate(SCROLL_TO_TOP)
    wait_until(lambda: window_numbers(page)[0] == 79_002, timeout=10, what="the first page of older lines")
    assert window_numbers(page) == list(range(79_002, 99_002))
    assert note.inner_text().startswith("79,001 earlier lines") or "newer lines" in note.inner_text()

    # Keep scrolling up: pages come until the start of the log.
    page.wait_for_function(
        "() => { const v = document.querySelector('[data-logs-view]');"
        " v.dispatchEvent(new WheelEvent('wheel')); v.scrollTop = 0;"
        " return document.querySelector('[data-logs-note]').textContent.startsWith('Start of the log.'); }",
        timeout=300_000,  # 80 pages of 1,000 lines, one request each: generous for a loaded CI machine
        polling=50,
    )
    assert window_numbers(page) == list(range(1, 20_001))
    first_row = page.locator(".log-line").first.inner_text()
    assert first_row.strip().endswith("1") and "10" not in first_row
    screenshot(page, "logs-start-of-log", full_page=False)


def test_search_runs_over_the_whole_log_and_jumps_to_each_match(
    logged_in_page: Callable[..., Any], berth_server: Server
) -> None:
    script = "seq 1 100001 | sed 's/.*/row & end/'; echo 'needle at the end'; sleep 600"
    cid = run(berth_server, "search", script)
    wait_until(
        lambda: log_has(berth_server, cid, "needle at the end"), timeout=120, what="the writer finished"
    )
    page = logged_in_page("viewer")
    page.goto(f"/containers/{cid}/?tab=logs")
    page.wait_for_function(f"() => ({LAST_ROW})().endsWith('needle at the end')", timeout=60_000)
    # Line 17 left the page long ago (it holds 1,000 lines here); the server finds it.
    page.locator("[data-logs-search]").fill("row 17 end")
    matches = page.locator("[data-logs-matches]")
    wait_until(lambda: matches.inner_text() == "1 of 1", timeout=10, what="one match")
    current = page.locator(".log-line.is-current")
    current.wait_for()
    assert current.inner_text().strip().endswith("row 17 end")
    assert current.locator("mark.log-mark").inner_text() == "row 17 end"
    assert current.is_visible()
    # Several matches: Enter goes to the next one, and each is shown.
    page.locator("[data-logs-search]").fill("row 5000")
    wait_until(lambda: matches.inner_text() == "1 of 11", timeout=10, what="11 matches")
    wait_until(
        lambda: page.locator(".log-line.is-current").inner_text().strip().endswith("row 5000 end"), timeout=10
    )
    page.locator("[data-logs-search]").press("Enter")
    wait_until(lambda: matches.inner_text() == "2 of 11", timeout=10)
    wait_until(
        lambda: page.locator(".log-line.is-current").inner_text().strip().endswith("row 50000 end"),
        timeout=10,
    )
    screenshot(page, "logs-search", full_page=False)
    # Follow returns to the live end.
    page.get_by_role("button", name=re.compile("^Paused")).click()
    page.wait_for_function(f"() => ({LAST_ROW})().endsWith('needle at the end')", timeout=30_000)
    for scheme in ("light", "dark"):
        phone = logged_in_page("viewer", viewport=PHONE, color_scheme=scheme)
        phone.goto(f"/containers/{cid}/?tab=logs")
        # On screen inside the view, not only in the DOM (the phone's view ends below the fold).
        phone.wait_for_function(f"() => ({LAST_ROW_SHOWN})().endsWith('needle at the end')", timeout=30_000)
        screenshot(phone, f"logs-phone-{scheme}", full_page=False)
        phone.close()
    dark = logged_in_page("viewer", color_scheme="dark")
    dark.goto(f"/containers/{cid}/?tab=logs")
    dark.wait_for_function(f"() => ({AT_BOTTOM_EDGE})().endsWith('needle at the end')", timeout=30_000)
    screenshot(dark, "logs-desktop-dark", full_page=False)


def test_logs_of_these_merges_the_filtered_containers_by_time(
    logged_in_page: Callable[..., Any], berth_server: Server
) -> None:
    run(berth_server, "merge-a", "for i in 1 2 3 4 5; do echo alpha $i; sleep 0.4; done; sleep 600")
    run(berth_server, "merge-b", "sleep 0.2; for i in 1 2 3 4 5; do echo beta $i; sleep 0.4; done; sleep 600")
    page = logged_in_page("viewer")
    page.goto("/containers/?q=e2e-lg-merge")
    page.locator("#container-table tr[data-container]").nth(1).wait_for()
    page.get_by_role("link", name="Logs of these").click()
    page.wait_for_url(re.compile(r"/logs/\?c=[0-9a-f]{64}&c=[0-9a-f]{64}$"))
    page.wait_for_function(
        "() => (document.querySelector('[data-logs-view]').innerText.match(/(alpha|beta) 5/g) || []).length === 2",
        timeout=30_000,
    )
    rows = page.locator(".log-line").evaluate_all(
        "rows => rows.map(r => [r.querySelector('.log-ts').textContent, r.querySelector('.log-src').textContent,"
        " r.textContent])"
    )
    assert len(rows) == 10
    stamps = [stamp for stamp, _, _ in rows]
    assert stamps == sorted(stamps), stamps
    assert all(src == PREFIX + ("merge-a" if "alpha" in text else "merge-b") for _, src, text in rows)
    screenshot(page, "logs-merged", full_page=False)
    # With a selection (an operator has the checkboxes), only the chosen ones.
    operator = logged_in_page("operator", color_scheme="dark")
    operator.goto("/containers/?q=e2e-lg-merge")
    operator.get_by_label(f"Select {PREFIX}merge-b").check()
    operator.get_by_role("link", name="Logs of these").click()
    operator.wait_for_url(re.compile(r"/logs/\?c=[0-9a-f]{64}$"))
    operator.wait_for_function("() => /beta 5/.test(document.querySelector('[data-logs-view]').innerText)")
    assert "alpha" not in operator.locator("[data-logs-view]").inner_text()
    screenshot(operator, "logs-merged-dark", full_page=False)
    phone = logged_in_page("viewer", viewport=PHONE)
    phone.goto(page.url)
    phone.wait_for_function("() => /beta 5/.test(document.querySelector('[data-logs-view]').innerText)")
    screenshot(phone, "logs-merged-phone", full_page=False)
