"""Reading back through the log view while lines still arrive (static/js/logs.js):

- the first older page keeps the reader's place: the line at the view's top edge, and how far into it
  the edge cuts, are the same before and after the page loads, with new lines arriving meanwhile;
- the merged view (/logs/?c=…) loads older lines too: scrolling up reaches the first line of every
  container, merged by time with no gap or repeat.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import require_root
from tests.e2e.conftest import Server, remove_leftovers, run_script, screenshot
from tests.polling import wait_until

PREFIX = "e2e-lr-"
ROW = 18
LAST_ROW = "() => document.querySelector('[data-logs-view]').lastElementChild?.textContent || ''"
TWO_FRAMES = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
# The reader scrolls to `top` (a wheel event first: only the reader's own scrolling pauses) and the
# model says which line is then at the top edge, and how many px of it are above the edge.
SCROLL_AND_READ = """top => { const v = document.querySelector('[data-logs-view]');
  const l = document.querySelector('[data-logs]').berthLogs;
  v.dispatchEvent(new WheelEvent('wheel')); v.scrollTop = top;
  return l.at(v.scrollTop); }"""
# What the reader sees: the row under the view's top edge, and how many px of it are above the edge.
AT_TOP_EDGE = """() => { const v = document.querySelector('[data-logs-view]'); const r = v.getBoundingClientRect();
  const row = document.elementFromPoint(r.left + 30, r.top + 1)?.closest('.log-line');
  return row ? [row.textContent, Math.round(r.top - row.getBoundingClientRect().top)] : null; }"""


@pytest.fixture(scope="module", autouse=True)
def _root_and_cleanup(berth_server: Server) -> Iterator[None]:
    """Root is required; the containers these tests made are removed at the end."""
    require_root()
    yield
    remove_leftovers(berth_server, PREFIX)


def run(server: Server, name: str, script: str) -> str:
    return run_script(server, PREFIX + name, script)


def first_line(page: Any) -> str:
    return str(page.evaluate("() => document.querySelector('[data-logs]').berthLogs.line(0)"))


@pytest.mark.parametrize("wrap", [False, True], ids=["rows", "wrap"])
def test_the_first_older_page_keeps_the_line_at_the_top_edge_while_lines_arrive(
    logged_in_page: Callable[..., Any], berth_server: Server, wrap: bool
) -> None:
    # 5,000 old lines (with Wrap, of 1 to 4 rows each), then a steady stream through the whole test.
    old = (
        'awk \'BEGIN { for (n = 1; n <= 5000; n++) { s = "old " n; for (i = 0; i < n % 4; i++)'
        ' s = s " " sprintf("%0200d", n); print s } }\''
        if wrap
        else "seq 1 5000 | sed 's/.*/old & x/'"
    )
    script = f"{old}; i=0; while true; do i=$((i+1)); echo new $i; usleep 3000; done"
    cid = run(berth_server, "arrive-" + ("w" if wrap else "r"), script)
    page = logged_in_page("viewer")
    if wrap:
        page.add_init_script("window.localStorage.setItem('berth-logs-wrap', '1');")
    page.goto(f"/containers/{cid}/?tab=logs")
    page.wait_for_function(f"() => /new \\d+/.test(({LAST_ROW})())", timeout=30_000)
    # The page holds the last 1,000 lines; the reader scrolls to 30 rows (and 7 px) from the top,
    # close enough to the top that an older page is asked for at once.
    before_first = first_line(page)
    expected = page.locator("[data-logs-view]").evaluate(
        "(v, top) => { const l = v.closest('[data-logs]').berthLogs;"
        " v.dispatchEvent(new WheelEvent('wheel')); v.scrollTop = top; return l.at(v.scrollTop); }",
        30 * ROW + 7,
    )
    # The model's line at the top edge and how far into it the edge cuts (7 px, or more with Wrap).
    assert (
        0
        <= expected[1]
        < page.evaluate("i => document.querySelector('[data-logs]').berthLogs.rows(i)", expected[0]) * ROW
    ), expected
    expected_text = page.evaluate("i => document.querySelector('[data-logs]').berthLogs.line(i)", expected[0])
    assert expected_text, expected
    wait_until(lambda: first_line(page) != before_first, timeout=15, what="the first older page")
    received = page.evaluate("() => document.querySelector('[data-logs]').berthLogs.received()")
    page.wait_for_function(
        f"() => document.querySelector('[data-logs]').berthLogs.received() > {received + 20}", timeout=15_000
    )
    page.evaluate(TWO_FRAMES)
    seen = page.evaluate(AT_TOP_EDGE)
    # The same line at the top edge, cut at the same place: the reader did not move.
    assert seen is not None
    assert seen[0].endswith(expected_text), (seen, expected_text)
    assert abs(seen[1] - expected[1]) <= 1, (seen, expected)
    if wrap:
        # The older page's lines above the reader take several rows each: the sums were used.
        assert page.evaluate(
            "() => { const l = document.querySelector('[data-logs]').berthLogs;"
            " return Array.from({length: 1000}, (_, i) => l.rows(i)).some(r => r > 1); }"
        )
    screenshot(page, "logs-readback-" + ("wrap" if wrap else "rows"), full_page=False)


def test_the_merged_view_scrolls_back_to_the_first_line_of_every_container(
    logged_in_page: Callable[..., Any], berth_server: Server
) -> None:
    # Two logs that overlap in time, the second's last 1,000 lines (what its socket sends first)
    # newer than most of the first's: older pages must be merged in between, not only above.
    a = run(
        berth_server,
        "merge-a",
        "seq 1 3000 | sed 's/.*/alpha &/'; sleep 1; seq 3001 3500 | sed 's/.*/alpha &/'; sleep 600",
    )
    b = run(berth_server, "merge-b", "sleep 0.5; seq 1 2500 | sed 's/.*/beta &/'; sleep 600")
    page = logged_in_page("viewer")
    page.goto(f"/logs/?c={a}&c={b}")
    page.wait_for_function(
        "() => { const l = document.querySelector('[data-logs]').berthLogs; return l.received() >= 2000; }",
        timeout=30_000,
    )
    note = page.locator("[data-logs-note]")
    assert "open one container" not in note.inner_text()
    page.wait_for_function(
        "() => { const v = document.querySelector('[data-logs-view]');"
        " v.dispatchEvent(new WheelEvent('wheel')); v.scrollTop = 0;"
        " return document.querySelector('[data-logs-note]').textContent.startsWith('Start of the log.'); }",
        timeout=120_000,
        polling=100,
    )
    entries = page.evaluate(
        "() => { const l = document.querySelector('[data-logs]').berthLogs; const out = [];"
        " for (let i = 0; l.entry(i) !== null; i++) out.push(l.entry(i)); return out; }"
    )
    # Every line of both logs, each once, each log in its order, all of them in time order.
    alpha = [int(text.split()[1]) for _, src, text in entries if src == PREFIX + "merge-a"]
    beta = [int(text.split()[1]) for _, src, text in entries if src == PREFIX + "merge-b"]
    assert alpha == list(range(1, 3501)), f"alpha: {len(alpha)} lines, from {alpha[:3]}"
    assert beta == list(range(1, 2501)), f"beta: {len(beta)} lines, from {beta[:3]}"
    stamps = [stamp for stamp, _, _ in entries]
    assert stamps == sorted(stamps), "the merged lines are out of time order"
    first = page.locator(".log-line").first.inner_text()
    assert first.endswith("alpha 1"), first
    screenshot(page, "logs-merged-start", full_page=False)
