"""The audit log and the terminal in the browser (issue 9 items 3 and 4).

Audit: a refused action (a viewer's stop, an operator's volume removal) is a `denied` row and a
failed one (removing a volume in use) an `error` row, each with the real object type and name, the
action, the user and the reason; the filter menus list each value once; pruning (page and CLI) is
itself an event. Terminal: on busybox only the shells it has are offered, a custom command and user
work, a missing command gives one readable sentence, and Attach shows a -t container's own output.

Screenshots: tests/e2e/screenshots/audit-*.png and terminal-*.png.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import require_root
from tests.e2e.conftest import PHONE, Server, screenshot

TTY_TICKER = "i=0; while true; do i=$((i+1)); echo tty-tick $i; sleep 0.3; done"


@pytest.fixture(scope="module", autouse=True)
def _objects(berth_server: Server) -> Iterator[None]:
    """Root is required; what the tests create is force-removed at the end, whatever happened."""
    require_root()
    yield
    berth_server.berth("rm", "-f", "e2e-aud-ctr", "e2e-aud-user", "e2e-term", "e2e-tty", check=False)
    for name in ("e2e-aud-vol", "e2e-aud-busy"):
        berth_server.berth("volume", "rm", "-f", name, check=False)


def post(page: Any, url: str) -> int:
    """POST from the page as htmx would (CSRF token, HX-Request); return the status."""
    return int(
        page.evaluate(
            """async (url) => {
                const token = JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRFToken'];
                const r = await fetch(url, {method: 'POST', headers: {'X-CSRFToken': token, 'HX-Request': 'true'}});
                return r.status;
            }""",
            url,
        )
    )


def rows(page: Any, query: str) -> list[dict[str, str]]:
    """The audit table's rows for a filter query, as {label: text}."""
    page.goto(f"/events/?{query}")
    return list(
        page.evaluate(
            """() => [...document.querySelectorAll('#event-table tbody tr')].map(tr =>
                Object.fromEntries([...tr.querySelectorAll('td')].map(td =>
                    [td.dataset.label, td.innerText.trim()])))"""
        )
    )


def options(page: Any, name: str) -> list[str]:
    return list(
        page.evaluate(
            "n => [...document.querySelectorAll(`select[name=${n}] option`)].map(o => o.value).filter(Boolean)",
            name,
        )
    )


def test_refused_and_failed_actions_are_audited_with_type_name_result_and_reason(
    logged_in_page: Callable[..., Any], berth_server: Server
) -> None:
    berth_server.berth("create", "--name", "e2e-aud-ctr", "busybox", "true")
    berth_server.berth("volume", "create", "e2e-aud-vol")
    berth_server.berth("create", "--name", "e2e-aud-user", "-v", "e2e-aud-busy:/data", "busybox", "true")

    viewer = logged_in_page("viewer")
    assert post(viewer, "/containers/e2e-aud-ctr/actions/stop/") == 403
    operator = logged_in_page("operator")
    assert post(operator, "/volumes/e2e-aud-vol/remove/") == 403
    admin = logged_in_page("admin")
    assert post(admin, "/volumes/e2e-aud-busy/remove/") == 409  # in use by e2e-aud-user

    denied = rows(admin, "result=denied")
    # The finding: these were "web" rows with no object, result error, so this filter found nothing.
    stop = next(r for r in denied if r["User"] == "viewer")
    assert (stop["Object"], stop["Action"], stop["Name"], stop["Result"]) == (
        "container",
        "stop",
        "e2e-aud-ctr",
        "denied",
    )
    assert "needs the operator role; you are a viewer" in stop["Message"]
    removal = next(r for r in denied if r["User"] == "operator")
    assert (removal["Object"], removal["Action"], removal["Name"]) == ("volume", "remove", "e2e-aud-vol")
    assert "needs the admin role; you are an operator" in removal["Message"]
    assert all(r["Result"] == "denied" for r in denied)

    failed = rows(admin, "result=error&type=volume")
    busy = next(r for r in failed if r["Name"] == "e2e-aud-busy")
    assert (busy["User"], busy["Action"], busy["Result"]) == ("admin", "remove", "error")
    assert "e2e-aud-user" in busy["Message"]  # the reason: which container uses it
    # One row for one failure, even though the engine could have recorded it too.
    assert len([r for r in failed if r["Name"] == "e2e-aud-busy"]) == 1
    # The same filter finds a done and a refused removal of volumes: one vocabulary.
    assert {r["Object"] for r in rows(admin, "type=volume&action=remove")} == {"volume"}
    screenshot(admin, "audit-denied-and-errors")


def test_the_filter_menus_list_each_value_once(
    logged_in_page: Callable[..., Any], berth_server: Server
) -> None:
    for n in range(3):  # many events of the same type and action
        berth_server.berth("volume", "create", f"e2e-aud-dup{n}")
        berth_server.berth("volume", "rm", f"e2e-aud-dup{n}")
    admin = logged_in_page("admin")
    admin.goto("/events/")
    types, actions = options(admin, "type"), options(admin, "action")
    assert len(types) == len(set(types)) and "volume" in types
    assert len(actions) == len(set(actions)) and {"create", "remove"} <= set(actions)
    assert types == sorted(types) and actions == sorted(actions)
    assert options(admin, "result") == ["ok", "error", "denied"]
    # Choosing "denied" in the menu narrows the live table to refusals.
    admin.select_option("select[name=result]", "denied")
    admin.wait_for_url(re.compile(r"result=denied"))
    admin.locator("#event-table").wait_for()
    results = admin.locator("#event-table td[data-label=Result]").all_inner_texts()
    assert results and set(results) == {"denied"}
    screenshot(admin, "audit-filters")
    for scheme in ("light", "dark"):
        phone = logged_in_page("admin", viewport=PHONE, color_scheme=scheme)
        phone.goto("/events/")
        screenshot(phone, f"audit-events-phone-{scheme}")
        wide = logged_in_page("admin", color_scheme=scheme)
        wide.goto("/events/")
        screenshot(wide, f"audit-events-{scheme}", full_page=False)


def test_pruning_the_audit_log_is_itself_an_event(
    logged_in_page: Callable[..., Any], berth_server: Server
) -> None:
    out = berth_server.berth("events", "prune", "--older-than", "30", "-f").stdout
    assert out.startswith("Deleted 0 event(s) from before ")
    admin = logged_in_page("admin")
    pruned = rows(admin, "type=event&action=prune")
    assert pruned and pruned[0]["Name"] == "older than 30 days" and pruned[0]["User"].startswith("cli:")
    admin.goto("/events/")
    admin.get_by_text("Prune…").click()
    admin.get_by_label("Delete events older than (days)").fill("7")
    screenshot(admin, "audit-prune-popover", full_page=False)
    admin.get_by_role("button", name="Prune events").click()
    admin.locator("#confirm-dialog").wait_for(state="visible")
    admin.locator("#confirm-dialog [data-confirm-ok]").click()
    admin.locator(".toast", has_text="Pruned 0 events").wait_for()
    # The new row arrives live in the open table.
    admin.locator("#event-table tr", has_text="older than 7 days").wait_for()
    row = rows(admin, "type=event&action=prune")[0]
    assert (row["User"], row["Name"], row["Result"]) == ("admin", "older than 7 days", "ok")
    # Operators may not prune: no button, and the server refuses (and records the refusal).
    operator = logged_in_page("operator")
    operator.goto("/events/")
    assert operator.get_by_text("Prune…").count() == 0
    assert post(operator, "/events/prune/") == 403
    refused = rows(admin, "type=event&result=denied")
    assert refused[0]["User"] == "operator" and refused[0]["Action"] == "prune"


def _terminal_page(logged_in_page: Callable[..., Any], name: str) -> Any:
    page = logged_in_page("operator")
    page.goto(f"/containers/{name}/?tab=terminal")
    return page


def _state(page: Any) -> Any:
    return page.locator("[data-terminal-state]")


def test_the_terminal_on_busybox_offers_only_the_shells_it_has(
    logged_in_page: Callable[..., Any], berth_server: Server
) -> None:
    berth_server.berth("run", "-d", "--name", "e2e-term", "busybox", "sleep", "3600")
    # A link that only leads somewhere on the host proves nothing: resolved inside the container's
    # root, /usr/bin/python3 does not exist there (it does on this host).
    berth_server.berth("exec", "e2e-term", "ln", "-s", "/usr/bin/python3", "/bin/bash")
    page = _terminal_page(logged_in_page, "e2e-term")
    offered = options(page, "command")
    # busybox has sh and ash (links to busybox inside its root), never bash or zsh.
    assert offered == ["/bin/sh", "/bin/ash", "custom"]
    page.wait_for_function(
        "() => document.querySelector('[data-terminal-state]').textContent === 'Connected'"
    )
    page.locator(".xterm").click()
    page.keyboard.type("echo $((6*7))\n")
    page.wait_for_function("() => /^42\\s*$/m.test(document.querySelector('.xterm-rows').innerText)")
    screenshot(page, "terminal-busybox", full_page=False)


def test_a_custom_command_and_user_run_and_a_missing_one_is_explained(
    logged_in_page: Callable[..., Any], berth_server: Server
) -> None:
    berth_server.berth("run", "-d", "--name", "e2e-term", "busybox", "sleep", "3600", check=False)
    page = _terminal_page(logged_in_page, "e2e-term")
    page.wait_for_function(
        "() => document.querySelector('[data-terminal-state]').textContent === 'Connected'"
    )
    page.get_by_role("button", name="Disconnect").click()
    page.select_option("[data-terminal-command]", "custom")
    page.get_by_label("Custom command").fill("sh -c 'echo custom-$((6*7)) as $(id -un)'")
    page.get_by_label("User").fill("nobody")
    page.get_by_role("button", name=re.compile("Connect|Reconnect")).click()
    page.wait_for_function(
        "() => /custom-42 as nobody/.test(document.querySelector('.xterm-rows').innerText)"
    )
    page.wait_for_function(
        "() => /exited with code 0/.test(document.querySelector('[data-terminal-state]').textContent)"
    )

    page.get_by_label("Custom command").fill("/bin/bash")
    page.get_by_label("User").fill("")
    page.get_by_role("button", name=re.compile("Connect|Reconnect")).click()
    page.wait_for_function(
        "() => /not found/.test(document.querySelector('[data-terminal-state]').textContent)"
    )
    text = _state(page).inner_text()
    assert text.startswith("/bin/bash was not found in e2e-term.")
    for raw in ("msg=", "level=", "stat /bin/bash", "exec failed"):  # runc's log line, not for people
        assert raw not in text
    screenshot(page, "terminal-not-found", full_page=False)


def test_attach_shows_the_output_of_a_container_run_with_t(
    logged_in_page: Callable[..., Any], berth_server: Server
) -> None:
    berth_server.berth("run", "-d", "-t", "--name", "e2e-tty", "busybox", "sh", "-c", TTY_TICKER)
    page = _terminal_page(logged_in_page, "e2e-tty")
    assert "attach" in options(page, "command")
    page.wait_for_function(
        "() => document.querySelector('[data-terminal-state]').textContent === 'Connected'"
    )
    page.get_by_role("button", name="Disconnect").click()
    page.select_option("[data-terminal-command]", "attach")
    assert page.get_by_label("User").is_hidden()
    page.get_by_role("button", name=re.compile("Connect|Reconnect")).click()
    page.wait_for_function(
        "() => document.querySelector('[data-terminal-state]').textContent === 'Attached to the main process'"
    )
    page.wait_for_function("() => /tty-tick \\d+/.test(document.querySelector('.xterm-rows').innerText)")
    screenshot(page, "terminal-attached", full_page=False)
    page.get_by_role("button", name="Disconnect").click()
    _state(page).filter(has_text="Detached; the container keeps running.").wait_for()
    assert json.loads(berth_server.berth("inspect", "e2e-tty").stdout)[0]["State"]["Status"] == "running"
    admin = logged_in_page("admin")
    actions = [r["Action"] for r in rows(admin, "type=container&object=e2e-tty")]
    assert "attach" in actions
