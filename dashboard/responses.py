"""The answers dashboard views give, the same for every page: htmx requests get partials and HX-* headers,
plain requests get full pages and redirects."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render

from dashboard.errors import is_htmx, toast_trigger


def page(request: HttpRequest, template: str, partial: str, context: dict[str, Any]) -> HttpResponse:
    """Render `partial` for htmx (a table or panel refreshing itself), else the full `template`."""
    return render(request, partial if is_htmx(request) else template, context)


def go(request: HttpRequest, target: str) -> HttpResponse:
    """Send the browser to `target`: a 204 with HX-Redirect for htmx (which follows it), else a redirect."""
    if is_htmx(request):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = target
        return response
    return HttpResponseRedirect(target)


def changed(message: str, event: str) -> HttpResponse:
    """An htmx answer that shows a success toast and fires `event` so the page's table refreshes itself."""
    response = HttpResponse(status=204)
    response["HX-Trigger"] = json.dumps({**json.loads(toast_trigger(message, level="success")), event: True})
    return response


def refreshed(request: HttpRequest, message: str, *, event: str, target: str) -> HttpResponse:
    """Finish an action on a list: for htmx a toast and `event` (the table refreshes in place), else a
    redirect to `target` with the message shown there."""
    if is_htmx(request):
        return changed(message, event)
    messages.success(request, message)
    return HttpResponseRedirect(target)
