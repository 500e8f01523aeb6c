"""The shared layout's components (table, badges, chips, toasts, confirm dialog) in both themes.

The list pages do not exist yet, so the test puts a sample table into the overview's content the
way those pages will render it, and screenshots it at desktop and phone width, light and dark.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import PHONE, screenshot

SAMPLE = """
<div class="toolbar">
  <input type="search" class="search" name="q" placeholder="Search containers" aria-label="Search" data-search>
  <div class="chips" role="group" aria-label="State">
    <button type="button" class="chip" aria-pressed="true">Running</button>
    <button type="button" class="chip" aria-pressed="false">Exited</button>
    <button type="button" class="chip" aria-pressed="false">All</button>
  </div>
  <span class="toolbar__spacer"></span>
  <button type="button" class="btn btn--primary">Run container</button>
</div>
<div class="table-wrap">
<table class="table table-cards">
  <thead><tr><th>Name</th><th>Image</th><th>State</th><th>ID</th><th class="num">CPU</th>
  <th class="num">Memory</th><th>Created</th><th class="actions"><span class="visually-hidden">Actions</span></th></tr></thead>
  <tbody>
    <tr><td class="name" data-label="Name"><a href="#">web</a></td><td data-label="Image" class="mono">nginx:1.27</td>
      <td data-label="State"><span class="badge badge--running">running</span></td>
      <td data-label="ID"><code data-copy="3f2a9c1d0b7e">3f2a9c1d0b7e</code></td><td class="num" data-label="CPU">2.4 %</td>
      <td class="num" data-label="Memory">48.2 MB</td><td data-label="Created"><time datetime="__T1__">2025</time></td>
      <td class="actions" data-label=""><form class="inline-form" method="post" action="/">
        <button class="btn btn--small" data-confirm="Stop container web?" data-confirm-action="Stop">Stop</button></form></td></tr>
    <tr><td class="name" data-label="Name"><a href="#">db</a></td><td data-label="Image" class="mono">postgres:16</td>
      <td data-label="State"><span class="badge badge--paused">paused</span></td>
      <td data-label="ID"><code>a81b44e0f93c</code></td><td class="num" data-label="CPU">0.0 %</td>
      <td class="num" data-label="Memory">120.0 MB</td><td data-label="Created"><time datetime="__T2__">2025</time></td>
      <td class="actions" data-label=""><button class="btn btn--small">Unpause</button></td></tr>
    <tr><td class="name" data-label="Name"><a href="#">worker</a></td><td data-label="Image" class="mono">busybox:latest</td>
      <td data-label="State"><span class="badge badge--restarting">restarting</span></td>
      <td data-label="ID"><code>0c9d1e2f3a4b</code></td><td class="num" data-label="CPU">—</td>
      <td class="num" data-label="Memory">—</td><td data-label="Created"><time datetime="__T2__">2025</time></td>
      <td class="actions" data-label=""><button class="btn btn--small">Stop</button></td></tr>
    <tr><td class="name" data-label="Name"><a href="#">job</a></td><td data-label="Image" class="mono">busybox:latest</td>
      <td data-label="State"><span class="badge badge--exited">exited</span></td>
      <td data-label="ID"><code>77aa00bb11cc</code></td><td class="num" data-label="CPU">—</td>
      <td class="num" data-label="Memory">—</td><td data-label="Created"><time datetime="__T3__">2025</time></td>
      <td class="actions" data-label=""><button class="btn btn--small">Start</button></td></tr>
    <tr><td class="name" data-label="Name"><a href="#">&lt;img src=x onerror=alert(1)&gt;</a></td>
      <td data-label="Image" class="mono">busybox:latest</td>
      <td data-label="State"><span class="badge badge--failed">exited (137)</span></td>
      <td data-label="ID"><code>deadbeef0001</code></td><td class="num" data-label="CPU">—</td>
      <td class="num" data-label="Memory">—</td><td data-label="Created"><time datetime="__T3__">2025</time></td>
      <td class="actions" data-label=""><button class="btn btn--small btn--danger">Remove</button></td></tr>
    <tr><td class="name" data-label="Name"><a href="#">old</a></td><td data-label="Image" class="mono">alpine:3</td>
      <td data-label="State"><span class="badge badge--dead">dead</span></td>
      <td data-label="ID"><code>0123456789ab</code></td><td class="num" data-label="CPU">—</td>
      <td class="num" data-label="Memory">—</td><td data-label="Created"><time datetime="__T3__">2025</time></td>
      <td class="actions" data-label=""><button class="btn btn--small btn--danger">Remove</button></td></tr>
  </tbody>
</table>
</div>
"""


def _fill(page: Any) -> None:
    page.evaluate(
        """(html) => {
            const now = Date.now();
            const iso = (ms) => new Date(now - ms).toISOString();
            document.querySelector('#content').innerHTML = html
              .replaceAll('__T1__', iso(3 * 60e3)).replaceAll('__T2__', iso(2 * 3600e3))
              .replaceAll('__T3__', iso(3 * 86400e3));
            window.Berth.updateTimes(document);
            window.Berth.toast({level: 'success', message: 'Started web'});
            window.Berth.toast({level: 'error', title: 'Conflict', message: 'cannot remove container web: it is running (stop it first)'});
        }""",
        SAMPLE,
    )


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_sample_list_renders_at_desktop_width(logged_in_page: Any, scheme: str) -> None:
    page = logged_in_page("admin", color_scheme=scheme)
    _fill(page)
    # Relative times replace the server's text, with the exact time kept on hover.
    first = page.locator("time").first
    assert first.inner_text() == "3 minutes ago"
    assert first.get_attribute("title")
    screenshot(page, f"components-{scheme}", full_page=False)
    assert page.berth_errors == []


def test_the_sample_list_collapses_to_cards_on_a_phone(logged_in_page: Any) -> None:
    page = logged_in_page("admin", viewport=PHONE)
    _fill(page)
    header = page.locator(".table-cards thead")
    assert header.bounding_box()["height"] <= 1  # type: ignore[index]
    screenshot(page, "components-phone")


def test_a_data_confirm_button_asks_with_the_objects_name(logged_in_page: Any) -> None:
    page = logged_in_page("admin")
    _fill(page)
    page.get_by_role("button", name="Stop").first.click()
    dialog = page.locator("#confirm-dialog")
    assert dialog.is_visible()
    assert "Stop container web?" in dialog.inner_text()
    screenshot(page, "confirm-dialog", full_page=False)
    dialog.get_by_role("button", name="Cancel").click()
    assert not dialog.is_visible()
    assert page.url.endswith("/")  # nothing was submitted


def test_an_htmx_action_confirms_then_shows_the_servers_refusal_as_a_toast(logged_in_page: Any) -> None:
    page = logged_in_page("operator")
    page.evaluate(
        """() => {
            const b = document.createElement('button');
            b.className = 'btn'; b.textContent = 'Remove all';
            b.setAttribute('hx-post', '/');
            b.setAttribute('data-confirm', 'Remove 2 containers?');
            b.setAttribute('data-confirm-items', JSON.stringify(['web', '<b>db</b>']));
            document.querySelector('#content').prepend(b);
            htmx.process(b);
        }"""
    )
    page.get_by_role("button", name="Remove all").click()
    dialog = page.locator("#confirm-dialog")
    # Bulk confirmations list the objects, as text (the <b> is not markup).
    assert dialog.locator("li").all_inner_texts() == ["web", "<b>db</b>"]
    with page.expect_response(lambda r: r.request.method == "POST") as response:
        dialog.get_by_role("button", name="Confirm").click()
    assert response.value.status == 405  # the overview is GET-only; the CSRF header was accepted
    toast = page.locator(".toast--error")
    toast.wait_for()
    assert "405" in toast.inner_text()


def test_an_engine_error_toast_from_the_server_is_shown_verbatim_and_nothing_is_swapped(
    logged_in_page: Any,
) -> None:
    from dashboard.errors import toast_trigger

    page = logged_in_page("admin")
    message = "cannot remove image busybox: used by container <web> (remove it first)"
    # Exactly the headers dashboard/errors.py sends for an htmx request that hit an EngineError.
    page.route(
        "**/e2e-conflict",
        lambda route: route.fulfill(
            status=409,
            headers={
                "HX-Reswap": "none",
                "HX-Trigger": toast_trigger(message, level="error", title="Conflict"),
            },
            body="<p>should not be swapped in</p>",
        ),
    )
    page.evaluate(
        """() => {
            const form = document.createElement('form');
            form.setAttribute('hx-post', '/e2e-conflict');
            form.setAttribute('hx-target', '#content');
            form.innerHTML = '<button class="btn btn--danger" data-confirm="Remove image busybox?">Remove</button>';
            document.querySelector('#content').prepend(form);
            htmx.process(form);
        }"""
    )
    page.get_by_role("button", name="Remove").click()
    # The confirmation comes from the submit button's data-confirm, through htmx:confirm.
    page.locator("#confirm-dialog").get_by_role("button", name="Confirm").click()
    toast = page.locator(".toast--error")
    toast.wait_for()
    assert message in toast.inner_text()
    assert page.locator(".toast").count() == 1  # no second, generic "request failed" toast
    assert "should not be swapped in" not in page.content()
    screenshot(page, "toast-conflict", full_page=False)
