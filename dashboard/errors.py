"""The one place that maps engine errors to HTTP responses.

`EngineErrorMiddleware` is installed in settings, so an `EngineError` escaping any view becomes a
response with `exc.status`, and views need no try/except of their own. (The `@handles_engine_errors`
decorator does the same for a single view, for code that runs outside the middleware stack or that
wants to map errors before its own decorators see them; both call `engine_error_response`.)

- htmx requests (header `HX-Request`) get the toast partial with the error status, `HX-Reswap: none`
  (nothing on the page is replaced) and `HX-Trigger: {"toast": {...}}`, which berth.js shows. htmx
  processes HX-Trigger whatever the status, so the status can stay honest (404, 409, …). berth.js
  asks (X-Berth-Toasts: 1) for a 4xx as 200 + X-Berth-Status, so the console stays clean.
- Other requests get templates/dashboard/error.html with the same status.

The engine's message is shown verbatim (escaped): it was written to be read by the user.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.template.loader import render_to_string

from engine.errors import DiskFull, EngineError, PermissionDenied
from engine.services.disk import full_disk

log = logging.getLogger(__name__)

# Short headings per status, for the error page and the toast title.
TITLES: dict[int, str] = {
    400: "Invalid request",
    401: "Registry refused the credentials",
    403: "Not allowed",
    404: "Not found",
    409: "Conflict",
    429: "Too many requests",
    500: "Engine error",
    502: "Registry error",
    503: "Engine unavailable",
    507: "Disk full",
}


def is_htmx(request: HttpRequest) -> bool:
    """True for requests made by htmx (and not for history restores, which want a full page)."""
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
    )


def toast_trigger(message: str, *, level: str = "info", title: str = "") -> str:
    """Return an `HX-Trigger` header value that makes berth.js show a toast.

    ASCII-only JSON: Django would MIME-encode a non-latin-1 header, which htmx cannot parse.
    """
    return json.dumps({"toast": {"level": level, "title": title, "message": message}}, ensure_ascii=True)


def engine_error_response(request: HttpRequest, exc: EngineError) -> HttpResponse:
    """Turn `exc` into the response for `request`: a toast for htmx, the error page otherwise."""
    # Every refusal is recorded, whatever the method (SECURITY.md web checklist 9); a failure only
    # for a POST (an action), and not when there is no room left to record it.
    if isinstance(exc, PermissionDenied) or (request.method == "POST" and not isinstance(exc, DiskFull)):
        _record_failure(request, exc)
    status = int(getattr(exc, "status", 500) or 500)
    title = TITLES.get(status, "Error")
    message = str(exc)
    if status >= 500:
        log.error("engine error on %s %s: %s", request.method, request.path, message, exc_info=exc)
    else:
        log.info("engine error on %s %s: %s (%s)", request.method, request.path, message, status)
    level = "error" if status >= 500 or status in (403, 409) else "warning"
    context = {"status": status, "title": title, "message": message, "level": level, "error": exc}
    if is_htmx(request):
        body = render_to_string("dashboard/partials/_toast.html", context, request=request)
        # Chromium logs every 4xx as a console error, even one the page expects and shows as a toast.
        # berth.js says it shows the toast itself (X-Berth-Toasts: 1); an expected refusal then comes
        # as 200 with the real status in X-Berth-Status. Clients without the header get the status.
        in_band = status < 500 and request.headers.get("X-Berth-Toasts") == "1"
        response = HttpResponse(body, status=200 if in_band else status)
        if in_band:
            response["X-Berth-Status"] = str(status)
        response["HX-Reswap"] = "none"
        response["HX-Trigger"] = toast_trigger(message, level=level, title=title)
        return response
    body = render_to_string("dashboard/error.html", context, request=request)
    return HttpResponse(body, status=status)


def handles_engine_errors(view: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a function view (sync or async) so an `EngineError` becomes `engine_error_response`."""
    if iscoroutinefunction(view):

        @functools.wraps(view)
        async def async_wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            try:
                return await view(request, *args, **kwargs)
            except EngineError as exc:
                # Rendering may touch request.user (a DB query), which is sync-only.
                return await sync_to_async(engine_error_response)(request, exc)

        return async_wrapped

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            return view(request, *args, **kwargs)
        except EngineError as exc:
            return engine_error_response(request, exc)

    return wrapped


class EngineErrorMiddleware:
    """Map an `EngineError` raised by any view to `engine_error_response` (installed in settings)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        # A full disk surfaces raw (ENOSPC, SQLite's "database or disk is full") from anywhere.
        exception = full_disk(exception) or exception
        if isinstance(exception, EngineError):
            return engine_error_response(request, exception)
        return None


def _record_failure(request: HttpRequest, exc: EngineError) -> None:
    """A refused or failed action from the browser is an event too: who tried what on which object,
    and why. Refusals are `denied`, failures `error`; an error the engine recorded itself (a failed
    pull, a failed backup) is not recorded twice."""
    from datetime import timedelta

    from django.utils import timezone

    from dashboard.attempts import describe
    from engine import events
    from engine.models import Event

    user = (
        request.user.get_username()
        if getattr(request, "user", None) and request.user.is_authenticated
        else "anonymous"
    )
    result = "denied" if isinstance(exc, PermissionDenied) else "error"
    message = str(exc)
    try:
        attempt = describe(request)
        recorded = Event.objects.filter(
            time__gte=timezone.now() - timedelta(seconds=10),
            actor=user,
            object_type=attempt.object_type,
            action=attempt.action,
            result=result,
            message=message[:4000],
        )
        if result == "error" and recorded.exists():
            return
        events.record(
            attempt.object_type,
            attempt.action,
            object_id=attempt.object_id,
            object_name=attempt.object_name,
            result=result,
            message=message,
            attributes={"status": str(exc.status), "path": request.path[:200]},
            actor=user,
        )
    except Exception:  # noqa: BLE001 — recording must not hide the error the user should see
        log.warning("could not record the failed request %s %s", request.method, request.path, exc_info=True)
