"""Dashboard page: the registries this engine is logged in to — list, log in, log out.

Credentials are stored exactly as `berth login` stores them (engine.services.registry, the 0600 auth
file under BERTH_ROOT) and are the engine's, used by every pull: everyone signed in sees which registries
and user names there are, only admins log in or out. A password is sent once, checked against the
registry, stored, and never shown, logged or put back into a form. Each login (also a refused one) and
logout is an event, written by the service.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.views.decorators.http import require_GET, require_POST

from dashboard import policy
from dashboard.errors import is_htmx
from dashboard.forms_registries import LoginForm
from dashboard.responses import page, refreshed
from engine import events
from engine.errors import InvalidArgument, RegistryError
from engine.services import registry

TEMPLATE = "dashboard/registries.html"


def _context(request: HttpRequest, form: LoginForm | None = None) -> dict[str, Any]:
    # oob: a table refreshed by htmx also brings the heading's count (never stale after a logout).
    return {"rows": registry.logins(), "form": form or LoginForm(), "oob": is_htmx(request)}


@login_required
@require_GET
def registry_list(request: HttpRequest) -> HttpResponse:
    policy.check(request.user, "view")
    return page(request, TEMPLATE, "dashboard/partials/_registries_table.html", _context(request))


@login_required
@require_POST
def registry_login(request: HttpRequest) -> HttpResponse:
    """`berth login`: check the credentials with the registry, store them, go back to the list."""
    policy.check(request.user, "registry.login")
    form = LoginForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            with events.acting_as(request.user.get_username()):
                server = registry.login(data["server"], data["username"], data["password"])
        except (RegistryError, InvalidArgument) as exc:
            # Said next to the password: a refusal is nearly always the wrong password or token.
            form.add_error("password", str(exc))
        else:
            messages.success(request, f"Logged in to {server} as {data['username']}")
            return HttpResponseRedirect(reverse("registries"))
    return render(request, TEMPLATE, _context(request, form), status=400)


@login_required
@require_POST
def registry_logout(request: HttpRequest) -> HttpResponse:
    """`berth logout SERVER`: forget the stored credentials."""
    policy.check(request.user, "registry.login")
    server = request.POST.get("server", "").strip()
    if not server:
        raise InvalidArgument("say which registry to log out of")
    with events.acting_as(request.user.get_username()):
        removed = registry.logout(server)
    message = f"Logged out of {server}" if removed else f"Not logged in to {server}"
    return refreshed(request, message, event="registries-changed", target=reverse("registries"))


urlpatterns = [
    path("registries/", registry_list, name="registries"),
    path("registries/login/", registry_login, name="registry_login"),
    path("registries/logout/", registry_logout, name="registry_logout"),
]
