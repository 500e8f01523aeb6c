"""Dashboard pages: networks — list, create, remove, prune, detail, connect and disconnect.

Everything goes through engine.services.networks, as the signed-in user (`events.acting_as`) after
`policy.check`; an EngineError is mapped by dashboard/errors.py (a toast for htmx, which is how a
network in use shows the engine's own words). Connect and disconnect are also offered on a
container's overview tab, so they send the browser back to the page they came from (`next`).
Collection actions live under `networks/_…/`: a network name cannot start with "_".
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from dashboard import policy
from dashboard.errors import is_htmx
from dashboard.forms_networks import ConnectForm, NetworkCreateForm
from dashboard.responses import changed, go, page, refreshed
from engine import events
from engine.errors import EngineError, InvalidArgument
from engine.models import Network
from engine.services import containers, networks


def _acting(request: HttpRequest) -> events.acting_as:
    return events.acting_as(request.user.get_username())


def _go(request: HttpRequest, message: str, target: str) -> HttpResponse:
    """Finish an action: a toast on the next page, which is `target` (htmx follows HX-Redirect)."""
    messages.success(request, message)
    return go(request, target)


def _back(request: HttpRequest, default: str) -> str:
    """The page an action came from (`next`, same site only), else `default`."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=False):
        return target
    return default


# ---------- list ----------


def _list_context(q: str) -> dict[str, Any]:
    found = networks.list_networks(filters={"name": [q]} if q else None)
    rows: list[dict[str, Any]] = [{"network": n, "members": len(networks.members(n))} for n in found]
    return {"rows": rows, "q": q, "unused": [r["network"].name for r in rows if _prunable(r)]}


def _prunable(row: dict[str, Any]) -> bool:
    return not row["network"].predefined and not row["members"]


@login_required
@require_GET
def network_list(request: HttpRequest) -> HttpResponse:
    policy.check(request.user, "view")
    context = _list_context(request.GET.get("q", "").strip()[:200])
    return page(request, "dashboard/networks.html", "dashboard/partials/_networks_table.html", context)


# ---------- create, remove, prune ----------


@login_required
@require_http_methods(["GET", "POST"])
def network_create(request: HttpRequest) -> HttpResponse:
    policy.check(request.user, "network.create")
    if request.method == "GET":
        return render(request, "dashboard/network_create.html", {"form": NetworkCreateForm()})
    form = NetworkCreateForm(request.POST)
    if form.is_valid():
        d = form.cleaned_data
        try:
            with _acting(request):
                network = networks.create(
                    d["name"],
                    subnet=d["subnet"],
                    gateway=d["gateway"],
                    ip_range=d["ip_range"],
                    internal=d["internal"],
                    labels=d["labels"],
                )
        except EngineError as exc:
            form.engine_error(exc)
        else:
            messages.success(request, f"Created network {network.name}")
            return HttpResponseRedirect(reverse("network", args=[network.id]))
    return render(request, "dashboard/network_create.html", {"form": form}, status=400)


@login_required
@require_POST
def network_remove(request: HttpRequest, ref: str) -> HttpResponse:
    """Remove a network; one in use is the engine's conflict, shown as it words it."""
    policy.check(request.user, "network.remove")
    with _acting(request):
        network = networks.remove(ref)
    message = f"Removed network {network.name}"
    if is_htmx(request) and request.POST.get("next") == "list":
        return changed(message, "networks-changed")
    return _go(request, message, reverse("networks"))


@login_required
@require_POST
def networks_prune(request: HttpRequest) -> HttpResponse:
    policy.check(request.user, "network.prune")
    with _acting(request):
        removed = networks.prune()
    message = f"Pruned {len(removed)} network(s)" + (f": {', '.join(removed)}" if removed else "")
    return refreshed(request, message, event="networks-changed", target=reverse("networks"))


# ---------- detail, connect, disconnect ----------


def _connectable(network: Network) -> list[Any]:
    """Containers that may join `network`: not on it yet, and not in host/none/container: mode."""
    joined = {e.container_id for e in networks.members(network)}
    return [
        c
        for c in containers.search("").defer(None)
        if c.id not in joined and _joins_networks(c.host_config.get("NetworkMode") or "bridge")
    ]


def _joins_networks(mode: str) -> bool:
    return mode not in ("host", "none") and not mode.startswith("container:")


@login_required
@require_GET
def network_detail(request: HttpRequest, ref: str) -> HttpResponse:
    policy.check(request.user, "view")
    network = networks.resolve(ref)
    can_connect = network.driver == "bridge" and policy.allowed(request.user, "network.connect")
    context = {
        "network": network,
        "members": networks.members(network),
        "labels": sorted((network.labels or {}).items()),
        "options": sorted((network.options or {}).items()),
        "candidates": _connectable(network) if can_connect else [],
        "can_connect": can_connect,
    }
    return render(request, "dashboard/network_detail.html", context)


@login_required
@require_POST
def network_connect(request: HttpRequest) -> HttpResponse:
    """`network connect`: the network and the container both come from the form (either page)."""
    policy.check(request.user, "network.connect")
    form = ConnectForm(request.POST)
    if not form.is_valid():
        raise InvalidArgument("; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in form.errors.items()))
    d = form.cleaned_data
    network = networks.resolve(d["network"])
    container = containers.resolve(d["container"])
    aliases = (d["alias"],) if d["alias"] else ()
    with _acting(request):
        networks.connect(network.id, container.id, ip=d["ip"] or None, aliases=aliases)
    message = f"Connected {container.name} to {network.name}"
    return _go(request, message, _back(request, reverse("network", args=[network.id])))


@login_required
@require_POST
def network_disconnect(request: HttpRequest, ref: str, container: str) -> HttpResponse:
    policy.check(request.user, "network.connect")
    network = networks.resolve(ref)
    found = containers.resolve(container)
    with _acting(request):
        networks.disconnect(network.id, found.id)
    message = f"Disconnected {found.name} from {network.name}"
    return _go(request, message, _back(request, reverse("network", args=[network.id])))


urlpatterns = [
    path("networks/", network_list, name="networks"),
    path("networks/_create/", network_create, name="network_create"),
    path("networks/_prune/", networks_prune, name="networks_prune"),
    path("networks/_connect/", network_connect, name="network_connect"),
    path("networks/<str:ref>/", network_detail, name="network"),
    path("networks/<str:ref>/remove/", network_remove, name="network_remove"),
    path("networks/<str:ref>/disconnect/<str:container>/", network_disconnect, name="network_disconnect"),
]
