"""Pull and build from the browser, as a person would: fill the form, watch the job page, find the image.

The pull goes to a real registry on 127.0.0.1 (Debian's docker-registry, filled by skopeo; the fixtures
come from tests/integration/test_pull_push.py). The build runs a pasted Dockerfile whose RUN step writes
a line a second, so the page is seen while the output arrives. Screenshots at 1280 and 390 px go to
tests/e2e/screenshots/.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.conftest import PHONE, Server, screenshot
from tests.integration.test_pull_push import Published, published, real_registry  # noqa: F401

SLOW_DOCKERFILE = (
    "FROM busybox\n"
    "RUN for i in 1 2 3 4 5 6; do echo output line $i; sleep 1; done; echo hi > /x\n"
    'CMD ["cat", "/x"]\n'
)


@pytest.fixture
def forget(berth_server: Server) -> Iterator[list[str]]:
    """Image names a test adds to the shared server's engine, removed afterwards (other tests count rows)."""
    names: list[str] = []
    yield names
    for name in names:
        berth_server.berth("rmi", name, check=False)


def test_pull_from_a_local_registry_through_the_form(
    logged_in_page: Callable[..., Any],
    berth_server: Server,
    published: Published,  # noqa: F811
    forget: list[str],
) -> None:
    forget.extend([published.ref, f"{published.netloc}/test/busybox@{published.manifest_digest}"])
    page = logged_in_page("operator")
    page.goto("/images/")
    page.get_by_role("link", name="Pull", exact=True).click()
    page.wait_for_url("**/images/pull/")
    screenshot(page, "image-pull-form")

    # A mistake first: the error is shown by the field, and what was typed stays.
    page.get_by_label("Image", exact=True).fill("Not/Valid")
    page.get_by_role("button", name="Pull", exact=True).click()
    error = page.locator(".field__error").first
    error.wait_for()
    assert "lowercase" in error.inner_text()
    assert page.get_by_label("Image", exact=True).input_value() == "Not/Valid"
    screenshot(page, "image-pull-form-error")
    page.berth_errors.clear()  # the console notes that 400 answer; only what follows must be clean

    page.get_by_label("Image", exact=True).fill(published.ref)
    page.get_by_role("button", name="Pull", exact=True).click()
    page.wait_for_url("**/jobs/**")
    page.locator("[data-job-state]").filter(has_text="succeeded").wait_for(timeout=60_000)
    assert page.locator(".job-layer progress").count() >= 1  # one bar per layer
    assert "Downloaded newer image" in page.locator("[data-job-lines]").inner_text()
    result = page.locator("[data-job-result] a").first
    assert "test/busybox:1" in result.inner_text()
    screenshot(page, "job-pull-done")
    assert not page.berth_errors, page.berth_errors

    result.click()
    page.wait_for_url(re.compile(r".*/images/[0-9a-f]{12,64}/$"))
    page.goto("/images/?q=test/busybox")
    assert page.locator("#image-table").get_by_text("test/busybox").count() >= 1

    phone = logged_in_page("operator", viewport=PHONE)
    phone.goto("/images/pull/")
    screenshot(phone, "image-pull-form-phone")


def test_build_a_pasted_dockerfile_and_watch_its_steps(
    logged_in_page: Callable[..., Any], berth_server: Server, forget: list[str]
) -> None:
    forget.extend(["e2e-built:1", "e2e-built:latest"])
    page = logged_in_page("operator")
    page.goto("/images/")
    page.get_by_role("link", name="Build", exact=True).click()
    page.wait_for_url("**/images/build/")
    screenshot(page, "image-build-form")

    page.get_by_label("Or paste a Dockerfile").fill(SLOW_DOCKERFILE)
    page.get_by_label("Tags").fill("e2e-built:1, e2e-built:latest")
    page.get_by_role("button", name="Build", exact=True).click()
    page.wait_for_url("**/jobs/**")

    # Live: the step counter and the RUN step's output arrive while the job is still running.
    step = page.locator("[data-job-step]")
    step.filter(has_text="Step 2/3: RUN").wait_for(timeout=30_000)
    lines = page.locator("[data-job-lines]")
    lines.filter(has_text="output line 2").wait_for(timeout=30_000)
    assert page.locator("[data-job-state]").inner_text() == "running"
    assert "Step 1/3 : FROM busybox" in lines.inner_text()
    assert page.get_by_role("button", name="Cancel build").is_visible()
    screenshot(page, "job-build-running")
    phone = logged_in_page("operator", viewport=PHONE)
    phone.goto(page.url)  # a second reader joins mid-build: the stored progress, then the live rest
    phone.locator("[data-job-lines]").filter(has_text="output line").wait_for()
    screenshot(phone, "job-build-running-phone")

    page.locator("[data-job-state]").filter(has_text="succeeded").wait_for(timeout=60_000)
    text = lines.inner_text()
    assert "output line 6" in text and "Successfully tagged e2e-built:1" in text
    assert not page.get_by_role("button", name="Cancel build").is_visible()  # nothing left to cancel
    result = page.locator("[data-job-result] a").first
    assert "e2e-built:1" in result.inner_text()
    screenshot(page, "job-build-done")
    phone.locator("[data-job-state]").filter(has_text="succeeded").wait_for()
    screenshot(phone, "job-build-done-phone")
    assert not page.berth_errors, page.berth_errors

    page.goto("/images/")
    assert page.locator("#image-table").get_by_text("e2e-built").count() >= 1
    phone.goto("/images/build/")
    screenshot(phone, "image-build-form-phone")
    phone.goto("/images/")
    screenshot(phone, "images-with-pull-and-build-phone", full_page=False)


def test_cancel_a_running_build_from_its_page(
    logged_in_page: Callable[..., Any], berth_server: Server
) -> None:
    page = logged_in_page("operator")
    page.goto("/images/build/")
    page.get_by_label("Or paste a Dockerfile").fill("FROM busybox\nRUN echo sleeping; sleep 60\n")
    page.get_by_role("button", name="Build", exact=True).click()
    page.wait_for_url("**/jobs/**")
    page.locator("[data-job-lines]").filter(has_text="sleeping").wait_for(timeout=30_000)
    page.get_by_role("button", name="Cancel build").click()
    page.locator("[data-job-error]").filter(has_text="cancelled").wait_for(timeout=15_000)
    assert page.locator("[data-job-state]").inner_text() in ("cancelled", "failed")
    screenshot(page, "job-build-cancelled")


def test_a_viewer_has_no_pull_or_build(logged_in_page: Callable[..., Any], berth_server: Server) -> None:
    page = logged_in_page("viewer")
    page.goto("/images/")
    assert page.get_by_role("link", name="Pull", exact=True).count() == 0
    assert page.get_by_role("link", name="Build", exact=True).count() == 0
    response = page.goto("/images/build/")
    assert response is not None and response.status == 403
