"""The vendored front-end files load from our origin and work under our Content-Security-Policy.

No page uses xterm.js or uPlot yet, so each test serves a small page (through Playwright's router,
with the CSP header the middleware would send) that loads the vendored files from /static/.
"""

from __future__ import annotations

from typing import Any

from dashboard.security import content_security_policy
from tests.e2e.conftest import screenshot

PAGE = """<!doctype html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="/static/css/berth.css">
<link rel="stylesheet" href="/static/vendor/xterm/xterm.css">
<link rel="stylesheet" href="/static/vendor/uplot/uPlot.min.css">
<script src="/static/vendor/htmx/htmx.min.js"></script>
<script src="/static/vendor/htmx/ext-ws.min.js"></script>
<script src="/static/vendor/xterm/xterm.js"></script>
<script src="/static/vendor/xterm/addon-fit.js"></script>
<script src="/static/vendor/uplot/uPlot.iife.min.js"></script>
</head><body><div id="term" class="terminal"></div><div id="chart" class="panel chart"></div></body></html>"""

START = """() => {
    const term = new Terminal({fontSize: 13, convertEol: true});
    const fit = new FitAddon.FitAddon();
    term.loadAddon(fit);
    term.open(document.getElementById('term'));
    fit.fit();
    term.write('\\x1b[32mgreen\\x1b[0m and plain \\u00e9\\u4e2d\\r\\n$ ');
    new uPlot({width: 400, height: 160, series: [{}, {stroke: 'blue'}]},
              [[1, 2, 3, 4], [3, 1, 4, 1]], document.getElementById('chart'));
    return {cols: term.cols, rows: term.rows};
}"""


def _serve(page: Any, url: str, *, inline_style_elements: bool) -> list[str]:
    violations: list[str] = []
    page.on(
        "console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None
    )
    csp = content_security_policy(inline_style_elements=inline_style_elements)
    page.route(
        "**/e2e-vendor",
        lambda route: route.fulfill(
            status=200, headers={"Content-Type": "text/html", "Content-Security-Policy": csp}, body=PAGE
        ),
    )
    page.goto(url + "/e2e-vendor")
    return violations


def test_xterm_fit_and_uplot_run_on_a_terminal_page(new_page: Any, berth_server: Any) -> None:
    page = new_page()
    violations = _serve(page, berth_server.url, inline_style_elements=True)
    size = page.evaluate(START)
    assert size["cols"] > 20 and size["rows"] > 2
    page.wait_for_function("() => document.querySelector('.xterm-rows').innerText.includes('green')")
    assert page.locator("#chart canvas").count() == 1
    screenshot(page, "vendor-xterm-uplot", full_page=False)
    assert violations == []


def test_xterm_needs_the_style_element_relaxation(new_page: Any, berth_server: Any) -> None:
    # Why @allow_inline_style_elements exists: under the strict policy xterm's <style> is refused.
    page = new_page()
    violations = _serve(page, berth_server.url, inline_style_elements=False)
    page.evaluate(START)
    if not any("style" in v for v in violations):
        # Playwright delivers console events only while it waits: no message can slip in between.
        page.wait_for_event("console", predicate=lambda msg: "style" in msg.text, timeout=5000)
    assert any("style" in v for v in violations), violations
