"""Registries and image transfer in the browser: log in to a registry and out again, run an image that is
only in a registry (the Run form pulls it as a job first), export an image as a download that `berth load`
takes back, and commit a container from its page.

The registries are Debian's docker-registry on 127.0.0.1 (tests/registry.py, the fixtures of
tests/integration/test_pull_push.py): one with an htpasswd login, one open. Screenshots at 1280 and
390 px, light and dark, go to tests/e2e/screenshots/registries-*.png and images-*.png.
"""

from __future__ import annotations

import json
import re
import stat
import tarfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_root
from tests.e2e.conftest import PHONE, Server, screenshot
from tests.integration.test_pull_push import (  # noqa: F401 (fixtures)
    PASSWORD,
    real_registry,
    secured_registry,
)
from tests.polling import wait_until
from tests.registry import RunningRegistry


@pytest.fixture(scope="module", autouse=True)
def _root() -> None:
    require_root()


@pytest.fixture
def leftovers(berth_server: Server) -> Iterator[dict[str, list[str]]]:
    """Containers and images a test makes on the shared server, removed afterwards (others count rows)."""
    made: dict[str, list[str]] = {"containers": [], "images": [], "logins": []}
    yield made
    for name in made["containers"]:
        berth_server.berth("rm", "-f", name, check=False)
    for name in made["images"]:
        berth_server.berth("rmi", "-f", name, check=False)
    for server in made["logins"]:
        berth_server.berth("logout", server, check=False)


def state(server: Server, name: str) -> str:
    found = server.berth("inspect", "--type", "container", name, check=False)
    return str(json.loads(found.stdout)[0]["State"]["Status"]) if found.returncode == 0 else ""


def confirm(page: Any) -> None:
    dialog = page.locator("#confirm-dialog")
    dialog.wait_for(state="visible")
    dialog.locator("[data-confirm-ok]").click()


def shots(page: Any, name: str) -> None:
    """The page as it is, at 1280 and 390 px, light and dark (the viewport and scheme are put back)."""
    size = page.viewport_size
    for width, scheme in ((size, "light"), (size, "dark"), (PHONE, "light"), (PHONE, "dark")):
        page.set_viewport_size(width)
        page.emulate_media(color_scheme=scheme)
        page.wait_for_function("s => document.documentElement.dataset.theme === s", arg=scheme)
        suffix = ("" if width == size else "-phone") + ("-dark" if scheme == "dark" else "")
        screenshot(page, f"{name}{suffix}")
    page.set_viewport_size(size)
    page.emulate_media(color_scheme="light")


# -- registries ---------------------------------------------------------------------------------------


def test_an_admin_logs_in_to_a_registry_sees_it_listed_and_logs_out(
    logged_in_page: Callable[..., Any],
    berth_server: Server,
    secured_registry: RunningRegistry,  # noqa: F811
    leftovers: dict[str, list[str]],
) -> None:
    server = secured_registry.netloc
    leftovers["logins"].append(server)
    page = logged_in_page("admin")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Registries").click()
    page.wait_for_url("**/registries/")
    assert "Not logged in to any registry" in page.locator("#registry-table").inner_text()
    shots(page, "registries-empty")

    # A wrong password: the registry's refusal is shown by the password field, which comes back empty.
    page.get_by_label("Registry", exact=True).fill(server)
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password or token").fill("wrong-password")
    page.get_by_role("button", name="Log in", exact=True).click()
    error = page.locator(".field__error").first
    error.wait_for()
    assert "unauthorized" in error.inner_text().lower()
    assert page.get_by_label("Password or token").input_value() == ""
    assert page.get_by_label("Registry", exact=True).input_value() == server
    shots(page, "registries-login-error")
    page.berth_errors.clear()  # the console notes that 400 answer; only what follows must be clean

    page.get_by_label("Password or token").fill(PASSWORD)
    page.get_by_role("button", name="Log in", exact=True).click()
    row = page.locator(f'tr[data-registry="{server}"]')
    row.wait_for()
    assert "alice" in row.inner_text()
    assert page.locator("#registry-count").inner_text() == "1"
    # Never a secret: not on the page, and stored as `berth login` stores it (mode 0600).
    assert PASSWORD not in page.content()
    auth = berth_server.root / "auth.json"
    assert stat.S_IMODE(auth.stat().st_mode) == 0o600
    listed = berth_server.berth("login", "--list").stdout
    assert re.search(rf"^{re.escape(server)}\s+alice$", listed, re.M), listed
    shots(page, "registries-list")

    # The credentials work for the engine: a pull of a missing repository is a 404, not a 401.
    pulled = berth_server.berth("pull", f"{server}/nothing/here:1", check=False)
    assert "authentication required" not in pulled.stderr, pulled.stderr

    row.get_by_role("button", name=f"Log out of {server}").click()
    confirm(page)
    page.locator("#registry-table", has_text="Not logged in to any registry").wait_for()
    assert page.locator("#registry-count").inner_text() == "0"  # the heading's count follows the table
    assert server not in berth_server.berth("login", "--list").stdout
    assert page.berth_errors == []

    # Each action is in the audit log, the refused login too, with the user who did it.
    page.goto("/events/?type=registry")
    rows = [r.inner_text() for r in page.locator("tr.event").all()]
    assert any("login" in r and "error" in r and server in r and "admin" in r for r in rows), rows
    assert any("login" in r and "ok" in r and server in r for r in rows), rows
    assert any("logout" in r and "ok" in r and server in r for r in rows), rows
    assert PASSWORD not in page.content()


def test_a_viewer_sees_the_registries_but_cannot_log_in(
    logged_in_page: Callable[..., Any], berth_server: Server
) -> None:
    page = logged_in_page("viewer")
    page.goto("/registries/")
    assert page.get_by_role("heading", name=re.compile("^Registries")).is_visible()
    assert page.get_by_role("button", name="Log in", exact=True).count() == 0
    # The server refuses too, whatever the page shows.
    status = page.evaluate(
        """async () => {
            const token = document.cookie.match(/csrftoken=([^;]+)/);
            const body = new URLSearchParams({server: "127.0.0.1:1", username: "u", password: "p"});
            const r = await fetch("/registries/login/", {method: "POST", body,
                headers: {"X-CSRFToken": token ? token[1] : ""}});
            return r.status;
        }"""
    )
    assert status == 403


# -- run an image that is only in a registry ------------------------------------------------------------


def test_the_run_form_pulls_a_missing_image_as_a_job_then_runs_it(
    logged_in_page: Callable[..., Any],
    berth_server: Server,
    real_registry: RunningRegistry,  # noqa: F811
    leftovers: dict[str, list[str]],
) -> None:
    tag = uuid.uuid4().hex[:8]
    ref = f"{real_registry.netloc}/e2e/onlythere:{tag}"
    maker, name = f"mk-{tag}", f"pr-{tag}"
    leftovers["containers"].extend([maker, name])
    leftovers["images"].append(ref)
    # An image with a layer of its own, pushed to the registry and then removed here: only there now.
    berth_server.berth(
        "run", "--name", maker, "busybox", "sh", "-c", f"echo from-the-registry-{tag} > /marker"
    )
    berth_server.berth("commit", maker, ref)
    berth_server.berth("push", ref)
    berth_server.berth("rm", maker)
    berth_server.berth("rmi", ref)
    assert berth_server.berth("image", "inspect", ref, check=False).returncode != 0

    page = logged_in_page("operator")
    page.goto("/containers/run/")
    page.get_by_label("Image", exact=True).fill(ref)
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Command", exact=True).fill("sh -c 'cat /marker; exec sleep 300'")
    page.get_by_role("button", name="Run container").click()
    offer = page.locator(".run-pull")
    offer.wait_for()
    assert ref in offer.inner_text()
    assert "no such image" in page.locator(".field--invalid .field__error").first.inner_text()
    shots(page, "images-run-pull-offer")
    page.berth_errors.clear()  # the 400 of the form with the offer

    offer.get_by_role("button", name="Pull and run").click()
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f-]{36}/$"))
    # The pull's own progress (the layer that only the registry had), then the container it ran.
    page.locator(".job-layer__status", has_text="Pull complete").first.wait_for(timeout=60_000)
    page.locator("[data-job-container]", has_text=f"Started container {name}").wait_for()
    screenshot(page, "images-run-pull-job")
    # The page follows the job and then goes to the running container, as a plain Run does.
    page.wait_for_url(re.compile(r"/containers/[0-9a-f]{64}/\?tab=logs$"), timeout=60_000)
    wait_until(lambda: state(berth_server, name) == "running", timeout=20, what=f"{name} to run")
    wait_until(
        lambda: f"from-the-registry-{tag}" in berth_server.berth("logs", name).stdout,
        timeout=20,
        what="the container to print the file of the pulled layer",
    )
    assert berth_server.berth("image", "inspect", ref).returncode == 0
    assert page.berth_errors == []


# -- export ---------------------------------------------------------------------------------------------


def test_export_downloads_a_tar_that_berth_load_accepts(
    logged_in_page: Callable[..., Any], berth_server: Server, tmp_path: Path, leftovers: dict[str, list[str]]
) -> None:
    image_id = berth_server.berth("images", "-q", "--no-trunc", "busybox").stdout.split()[0]
    page = logged_in_page("operator")
    page.goto(f"/images/{image_id.removeprefix('sha256:')}/")
    shots(page, "images-detail-export")
    with page.expect_download() as info:
        page.get_by_role("link", name="Export", exact=True).click()
    download = info.value
    assert download.suggested_filename == "busybox-latest.tar"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    with tarfile.open(saved) as archive:
        assert "manifest.json" in archive.getnames()
    # The export is an event, with the user who downloaded it.
    wait_until(
        lambda: re.search(
            r'<td data-label="User">operator</td>\s*<td data-label="Action"><span class="action-pill">save<',
            page.request.get("/events/?type=image&action=save").text(),
        ),
        timeout=10,
        what="the image save event",
    )

    # Loaded back under another name's absence: the same image ID comes back, tagged busybox:latest.
    loaded = berth_server.berth("load", "-i", str(saved))
    assert "busybox:latest" in loaded.stdout, loaded.stdout
    assert berth_server.berth("images", "-q", "--no-trunc", "busybox").stdout.split()[0] == image_id


def test_a_viewer_gets_no_export(logged_in_page: Callable[..., Any], berth_server: Server) -> None:
    image_id = (
        berth_server.berth("images", "-q", "--no-trunc", "busybox").stdout.split()[0].removeprefix("sha256:")
    )
    page = logged_in_page("viewer")
    page.goto(f"/images/{image_id}/")
    assert page.get_by_role("link", name="Export", exact=True).count() == 0
    response = page.request.get(f"/images/{image_id}/export/")
    assert response.status == 403


# -- commit ---------------------------------------------------------------------------------------------


def test_commit_from_the_container_page_makes_an_image_with_the_change(
    logged_in_page: Callable[..., Any], berth_server: Server, leftovers: dict[str, list[str]]
) -> None:
    tag = uuid.uuid4().hex[:8]
    name, ref, check = f"cm-{tag}", f"e2e-commit:{tag}", f"ck-{tag}"
    leftovers["containers"].extend([name, check])
    leftovers["images"].append(ref)
    berth_server.berth(
        "run",
        "-d",
        "--name",
        name,
        "busybox",
        "sh",
        "-c",
        f"echo changed-{tag} > /committed.txt; exec sleep 300",
    )
    wait_until(
        lambda: (
            berth_server.berth("exec", name, "cat", "/committed.txt", check=False).stdout.strip()
            == f"changed-{tag}"
        ),
        timeout=20,
        what="the container to write its file",
    )
    page = logged_in_page("operator")
    page.goto(f"/containers/{name}/")
    page.get_by_role("link", name="Commit", exact=True).click()
    page.wait_for_url(re.compile(r"/containers/[^/]+/commit/$"))
    page.get_by_label("Repository and tag").fill("Not Valid")
    page.get_by_role("button", name="Commit", exact=True).click()
    page.locator(".field__error").first.wait_for()
    page.berth_errors.clear()
    page.get_by_label("Repository and tag").fill(ref)
    page.get_by_label("Message").fill("from the e2e test")
    page.get_by_label("Author").fill("E2E <e2e@example.com>")
    shots(page, "images-commit-form")
    page.get_by_role("button", name="Commit", exact=True).click()

    # The new image's page: its name, and the message and author given.
    page.wait_for_url(re.compile(r"/images/[0-9a-f]{64}/$"))
    assert page.get_by_role("heading", level=1).inner_text().strip() == ref
    body = page.locator("main").inner_text()
    assert "from the e2e test" in body and "E2E <e2e@example.com>" in body
    shots(page, "images-committed")
    assert page.berth_errors == []

    # The committed image holds the container's change, and the container kept running.
    out = berth_server.berth("run", "--name", check, ref, "cat", "/committed.txt").stdout
    assert out.strip() == f"changed-{tag}"
    assert state(berth_server, name) == "running"
