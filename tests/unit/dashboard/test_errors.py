"""dashboard.errors: engine errors become a toast for htmx and an error page otherwise."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory

from dashboard.errors import EngineErrorMiddleware, engine_error_response, handles_engine_errors
from engine.errors import ContainerNotFound, InUse, RuntimeFailure


def _request(htmx: bool = False) -> Any:
    headers = {"HX-Request": "true"} if htmx else {}
    request = RequestFactory().post("/containers/web/remove", headers=headers)
    request.user = AnonymousUser()
    return request


def test_an_htmx_request_gets_a_toast_and_no_swap() -> None:
    response = engine_error_response(_request(htmx=True), InUse("volume data is in use by container web"))
    assert response.status_code == 409
    assert response["HX-Reswap"] == "none"
    toast = json.loads(response["HX-Trigger"])["toast"]
    assert toast == {
        "level": "error",
        "title": "Conflict",
        "message": "volume data is in use by container web",
    }
    assert b"volume data is in use by container web" in response.content


def test_the_toast_header_is_ascii_even_for_non_latin_names() -> None:
    response = engine_error_response(
        _request(htmx=True), ContainerNotFound("no such container: \u0432\u0435\u0431")
    )
    header = response["HX-Trigger"]
    assert header.isascii()
    assert json.loads(header)["toast"]["message"] == "no such container: \u0432\u0435\u0431"


@pytest.mark.django_db
def test_a_plain_request_gets_the_error_page_with_the_status() -> None:
    response = engine_error_response(
        _request(), ContainerNotFound("no such container: web", hint="check the name")
    )
    assert response.status_code == 404
    assert b"no such container: web (check the name)" in response.content
    assert "HX-Trigger" not in response


def test_engine_messages_are_escaped() -> None:
    response = engine_error_response(_request(htmx=True), ContainerNotFound("no such container: <img src=x>"))
    assert b"<img src=x>" not in response.content
    assert b"&lt;img src=x&gt;" in response.content


def test_the_decorator_maps_an_engine_error() -> None:
    @handles_engine_errors
    def view(request: Any) -> Any:
        raise RuntimeFailure("runc failed", argv=["runc", "start"], exit_code=1)

    assert view(_request(htmx=True)).status_code == 500


def test_the_decorator_works_on_async_views() -> None:
    @handles_engine_errors
    async def view(request: Any) -> Any:
        raise InUse("busy")

    # In its own thread: Playwright's session fixtures may leave an event loop running in this one.
    with ThreadPoolExecutor(1) as pool:
        response = pool.submit(asyncio.run, view(_request(htmx=True))).result()
    assert response.status_code == 409


def test_the_middleware_maps_engine_errors_and_ignores_others() -> None:
    middleware = EngineErrorMiddleware(lambda request: None)
    assert middleware.process_exception(_request(htmx=True), InUse("busy")).status_code == 409
    assert middleware.process_exception(_request(htmx=True), ValueError("bug")) is None


def test_a_page_that_shows_toasts_gets_an_expected_refusal_in_band() -> None:
    # berth.js sends X-Berth-Toasts: a 4xx would be logged by Chromium as a console error although
    # the page shows it as a toast; the real status travels in X-Berth-Status.
    request = RequestFactory().post(
        "/volumes/data/remove/", headers={"HX-Request": "true", "X-Berth-Toasts": "1"}
    )
    request.user = AnonymousUser()
    response = engine_error_response(request, InUse("volume data is in use by container web"))
    assert response.status_code == 200 and response["X-Berth-Status"] == "409"
    assert response["HX-Reswap"] == "none" and "toast" in response["HX-Trigger"]
    # An engine failure is not expected: it keeps its status whoever asks.
    failure = engine_error_response(request, RuntimeFailure("runc failed", argv=["runc"], exit_code=1))
    assert failure.status_code == 500 and "X-Berth-Status" not in failure
