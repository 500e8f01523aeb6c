"""Dashboard pages: the containers list, a container's detail tabs, and their actions.

URL names other pages link to: `containers` (list), `container` (detail, `?tab=`), `container_row`
(one list row), `containers_counts` and `container_part` (what live.js fetches again on events, see
dashboard/livestate.py); the Run form (`container_run`) is in views_run,
the terminal token and the log download in views_container_io. Every action is a POST that runs as the
signed-in user (`events.acting_as`) after `policy.check`; EngineError is mapped by
dashboard/errors.py. The list reads rows straight from the Container model (read only) because it
needs SQL paging and search that `containers.list_containers` (built for `ps`) does not offer; CPU and
memory are sampled later, only for the running rows on the page (`containers_usage`).
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_GET, require_POST

from dashboard import livestate, policy, terminals
from dashboard.errors import is_htmx, toast_trigger
from dashboard.portlinks import browser_host, port_links
from dashboard.responses import go, page
from dashboard.security import allow_inline_style_elements
from engine import events
from engine.errors import ContainerNotFound, EngineError, InvalidArgument, InvalidState
from engine.models import Container
from engine.services import containerinfo, containers, lifecycle, networks

PAGE_SIZE = 50
STATE_FILTERS = livestate.STATE_FILTERS
TABS = ("overview", "logs", "terminal", "stats", "processes", "changes", "files", "revisions", "inspect")
LOG_TAILS = (100, 1000, 10000, 100000)
MAX_DIFF = 2000
_SECRET = re.compile(r"pass|secret|token|key|credential|auth|private|api_?key|cookie|session", re.I)
# action → (service call, policy action, past tense for the toast)
ACTIONS: dict[str, tuple[Any, str, str]] = {
    "start": (lifecycle.start, "container.lifecycle", "Started"),
    "stop": (lifecycle.stop, "container.lifecycle", "Stopped"),
    "restart": (lifecycle.restart, "container.lifecycle", "Restarted"),
    "pause": (lifecycle.pause, "container.lifecycle", "Paused"),
    "unpause": (lifecycle.unpause, "container.lifecycle", "Unpaused"),
    "kill": (lifecycle.kill, "container.lifecycle", "Killed"),
    "remove": (lambda ref: lifecycle.remove(ref, force=True), "container.remove", "Removed"),
}
BULK_ACTIONS = ("start", "stop", "restart", "kill", "remove")  # run by views_bulk


available_actions = livestate.available_actions


def _annotate(container: Container, request: HttpRequest) -> Container:
    """Attach what the templates need to decide buttons (not saved: attributes for rendering only)."""
    container.actions = available_actions(container.state)  # type: ignore[attr-defined]
    container.active = container.state in livestate.ACTIVE  # type: ignore[attr-defined]
    container.port_links = port_links(container, browser_host(request))  # type: ignore[attr-defined]
    return container


def _perms(user: Any) -> dict[str, bool]:
    return {
        "lifecycle": policy.allowed(user, "container.lifecycle"),
        "remove": policy.allowed(user, "container.remove"),
        "create": policy.allowed(user, "container.create"),
        "terminal": policy.allowed(user, "terminal"),
        "admin": policy.role_of(user) == policy.ADMIN,
    }


# -- list ----------------------------------------------------------------------------------------


def _list_context(request: HttpRequest, params: Any) -> dict[str, Any]:
    state = params.get("state") if params.get("state") in STATE_FILTERS else "all"
    query = (params.get("q") or "").strip()[:200]
    # defer(None): the rows also need `ports` (the PORTS column), in the same query.
    rows = containers.search(query, states=STATE_FILTERS[state]).defer(None)
    page = Paginator(rows, PAGE_SIZE).get_page(params.get("page"))
    chips = livestate.chip_counts()
    items = [_annotate(c, request) for c in page.object_list]
    return {
        "page": page,
        "containers": items,
        "row_ids": [c.id for c in items],
        "state": state,
        "q": query,
        "chips": chips,
        "total": chips["all"],
        "perms": _perms(request.user),
        "bulk_actions": BULK_ACTIONS,
    }


@login_required
@require_GET
def container_list(request: HttpRequest) -> HttpResponse:
    policy.check(request.user, "view")
    context = _list_context(request, request.GET)
    return page(request, "dashboard/containers.html", "dashboard/partials/_container_table.html", context)


def _refreshed_context(container: Container, request: HttpRequest) -> dict[str, Any]:
    """A row's or a header's context when it refreshes itself after an event (it flashes once)."""
    return {"c": _annotate(container, request), "perms": _perms(request.user), "flash": True}


@login_required
@require_GET
def container_row(request: HttpRequest, ref: str) -> HttpResponse:
    policy.check(request.user, "view")
    try:
        container = containers.resolve(ref)
    except ContainerNotFound:
        return HttpResponse("")  # removed meanwhile: the row disappears
    return render(request, "dashboard/partials/_container_row.html", _refreshed_context(container, request))


@login_required
@require_GET
def container_counts(request: HttpRequest) -> HttpResponse:
    """The heading count and the chips' counts, as out-of-band parts (live.js refreshes them on events)."""
    policy.check(request.user, "view")
    chips = livestate.chip_counts()
    return render(
        request,
        "dashboard/partials/_container_counts.html",
        {"chips": chips, "total": chips["all"], "oob": True},
    )


# Parts of the container page that show state, each refreshed alone by live.js on this container's events.
PARTS = {"state": "_container_state.html", "ports": "_container_ports.html"}


@login_required
@require_GET
def container_part(request: HttpRequest, ref: str, part: str) -> HttpResponse:
    """One state-showing part of the overview (the State facts, the published ports); empty once removed."""
    policy.check(request.user, "view")
    if part not in PARTS:
        raise InvalidArgument(f"unknown container page part {part!r}")
    try:
        container = containers.resolve(ref)
    except ContainerNotFound:
        return HttpResponse("")
    context = {"c": _annotate(container, request)}
    return render(request, f"dashboard/partials/{PARTS[part]}", context)


# CPU % needs two samples; the last one per container is kept here (bounded, per process).
_samples: dict[str, tuple[float, int]] = {}
_samples_lock = threading.Lock()


@login_required
@require_GET
def container_usage(request: HttpRequest) -> HttpResponse:
    """CPU and memory of the rows on a page that run now, as out-of-band swaps (lazy: after the page renders)."""
    policy.check(request.user, "view")
    ids = [i for i in request.GET.get("ids", "").split(",") if re.fullmatch(r"[0-9a-f]{64}", i)][:PAGE_SIZE]
    # The poller names every row on the page; only those running now are sampled, so a row that
    # stopped or went since the table was drawn gets nothing (its cells are the row's business).
    ids = list(Container.objects.filter(id__in=ids, state="running").values_list("id", flat=True))
    first = {cid: _sample(cid) for cid in ids}
    fresh = [cid for cid, (sample, prev) in first.items() if sample is not None and prev is None]
    if fresh:
        time.sleep(0.25)  # containers never sampled before: take a second sample for a CPU figure
        first.update({cid: _sample(cid) for cid in fresh})
    usage = []
    for cid, (sample, prev) in first.items():
        cpu = None
        if sample is not None and prev is not None and sample.time > prev[0]:
            cpu = max(0.0, (sample.cpu_ns - prev[1]) / ((sample.time - prev[0]) * 1e9) * 100)
        usage.append({"id": cid, "sample": sample, "cpu": cpu})
    return render(request, "dashboard/partials/_container_usage.html", {"usage": usage})


def _sample(container_id: str) -> tuple[Any, tuple[float, int] | None]:
    try:
        sample = containerinfo.stats(container_id)
    except EngineError:
        return None, None
    if not sample.memory_limit:
        return None, None
    with _samples_lock:
        previous = _samples.get(container_id)
        if len(_samples) > 5000:
            _samples.clear()
        _samples[container_id] = (sample.time, sample.cpu_ns)
    return sample, previous


@login_required
@require_POST
def container_bulk(request: HttpRequest) -> HttpResponse:
    policy.check(request.user, "container.lifecycle")  # refuse before reading anything
    action = request.POST.get("action", "")
    if action not in BULK_ACTIONS:
        raise InvalidArgument(f"unknown bulk action {action!r}")
    call, needed, done = ACTIONS[action]
    targets = [containers.resolve(ref) for ref in request.POST.getlist("ids")[:500]]
    if not targets:
        raise InvalidArgument("select at least one container")
    for container in targets:
        policy.check(request.user, needed, container)
    ok, failed = [], []
    with events.acting_as(request.user.get_username()):
        for container in targets:
            try:
                call(container.id)
                ok.append(container.name)
            except EngineError as exc:
                failed.append(f"{container.name}: {exc}")
    message = f"{done} {len(ok)} container{'s' if len(ok) != 1 else ''}" + (
        f": {', '.join(ok)}" if ok else ""
    )
    if failed:
        message += ". Failed: " + "; ".join(failed)
    level = "error" if failed else "success"
    if not is_htmx(request):
        messages.add_message(request, messages.ERROR if failed else messages.SUCCESS, message)
        return redirect("containers")
    response = render(
        request, "dashboard/partials/_container_table.html", _list_context(request, request.POST)
    )
    response["HX-Trigger"] = toast_trigger(message, level=level)
    return response


@login_required
@require_POST
def container_action(request: HttpRequest, ref: str, action: str) -> HttpResponse:
    if action not in ACTIONS:
        raise InvalidArgument(f"unknown container action {action!r}")
    call, needed, done = ACTIONS[action]
    container = containers.resolve(ref)
    policy.check(request.user, needed, container)
    name = container.name
    with events.acting_as(request.user.get_username()):
        call(container.id)
    message = f"{done} {name}"
    if action == "remove":
        if is_htmx(request):
            response = HttpResponse("")
            if request.POST.get("view") == "header":
                response["HX-Redirect"] = reverse("containers")
            response["HX-Trigger"] = toast_trigger(message, level="success")
            return response
        messages.success(request, message)
        return redirect("containers")
    if not is_htmx(request):
        messages.success(request, message)
        return redirect("container", ref=container.id)
    container = containers.resolve(container.id)
    context = {"c": _annotate(container, request), "perms": _perms(request.user), "flash": True}
    template = "_container_header.html" if request.POST.get("view") == "header" else "_container_row.html"
    response = render(request, f"dashboard/partials/{template}", context)
    response["HX-Trigger"] = toast_trigger(message, level="success")
    return response


@login_required
@require_POST
def container_rename(request: HttpRequest, ref: str) -> HttpResponse:
    """`docker rename`: the new name comes from the form; the page reloads under it."""
    container = containers.resolve(ref)
    policy.check(request.user, "container.lifecycle", container)
    old = container.name
    with events.acting_as(request.user.get_username()):
        container = containers.rename(container.id, request.POST.get("name", "").strip())
    messages.success(request, f"Renamed {old} to {container.name}")
    target = reverse("container", kwargs={"ref": container.id})
    return go(request, target)


# -- detail --------------------------------------------------------------------------------------


def mask_env(env: list[str]) -> list[tuple[str, str, bool]]:
    """(key, value, masked) per KEY=value; values of keys that look like secrets are hidden."""
    out = []
    for item in env or []:
        key, _, value = str(item).partition("=")
        secret = bool(_SECRET.search(key)) and value != ""
        out.append((key, "••••••••" if secret else value, secret))
    return out


def _masked_inspect(data: dict[str, Any]) -> str:
    config = data.get("Config") or {}
    if config.get("Env"):
        config["Env"] = [f"{k}={v}" for k, v, _ in mask_env(config["Env"])]
    return json.dumps(data, indent=2, sort_keys=False, default=str)


@login_required
@require_GET
def container_detail(request: HttpRequest, ref: str) -> HttpResponse:
    policy.check(request.user, "view")
    container = _annotate(containerinfo.get(ref), request)
    tab = request.GET.get("tab") if request.GET.get("tab") in TABS else "overview"
    context: dict[str, Any] = {"c": container, "tab": tab, "tabs": TABS, "perms": _perms(request.user)}
    if tab == "overview":
        context["env"] = mask_env(container.config.get("Env") or [])
        context["mounts"] = list(container.mounts.all())
        context["labels"] = sorted((container.labels or {}).items())
        context["host"] = container.host_config
        context["cpus"] = livestate.format_cpus(container.host_config.get("NanoCpus"))
        command = (container.config.get("Entrypoint") or []) + (container.config.get("Cmd") or [])
        context["command"] = " ".join(str(part) for part in command)
        context.update(_network_context(container))
    elif tab == "logs":
        policy.check(request.user, "logs", container)
        context["tails"] = LOG_TAILS
    elif tab == "processes":
        try:
            context["processes"] = containerinfo.top(container.id)
        except InvalidState as exc:
            context["not_running"] = str(exc)
    elif tab == "changes":
        changes = containerinfo.diff(container.id)
        context["changes"] = changes[:MAX_DIFF]
        context["changes_total"] = len(changes)
    elif tab == "files":
        from dashboard.views_files import tab_context  # the Files tab lives in its own module

        context.update(tab_context(request, container))
    elif tab == "inspect":
        context["inspect"] = _masked_inspect(containerinfo.inspect(container.id))
    elif tab == "revisions":
        from dashboard import views_revisions  # it imports this module

        context.update(views_revisions.tab_context(request, container))
    elif tab == "terminal":
        context.update(terminals.tab_context(container))
    response = render(request, "dashboard/container_detail.html", context)
    if tab == "terminal":
        # xterm.js's DOM renderer needs <style> elements (see dashboard/security.py).
        response = allow_inline_style_elements(lambda _request: response)(request)
    return response


def _network_context(container: Container) -> dict[str, Any]:
    """The overview's Networks section: each network with its addresses, and the ones it may join."""
    settings = containerinfo.network_settings(container)
    joined = settings["Networks"]
    mode = container.host_config.get("NetworkMode") or "bridge"
    own_stack = mode not in ("host", "none") and not mode.startswith("container:")
    others = [n for n in networks.list_networks() if n.driver == "bridge" and n.name not in joined]
    return {
        "networks": [{"name": name, **info} for name, info in joined.items()],
        "network_mode": mode,
        "joinable": others if own_stack else [],
        "own_stack": own_stack,
    }


@login_required
@require_GET
def container_header(request: HttpRequest, ref: str) -> HttpResponse:
    policy.check(request.user, "view")
    try:
        container = containers.resolve(ref)
    except ContainerNotFound:
        return render(request, "dashboard/partials/_container_header.html", {"removed": True, "ref": ref})
    return render(
        request, "dashboard/partials/_container_header.html", _refreshed_context(container, request)
    )


urlpatterns = [
    path("containers/", container_list, name="containers"),
    path("containers/usage/", container_usage, name="containers_usage"),
    path("containers/bulk/", container_bulk, name="containers_bulk"),
    path("containers/counts/", container_counts, name="containers_counts"),
    path("containers/<str:ref>/", container_detail, name="container"),
    path("containers/<str:ref>/row/", container_row, name="container_row"),
    path("containers/<str:ref>/header/", container_header, name="container_header"),
    path("containers/<str:ref>/part/<slug:part>/", container_part, name="container_part"),
    path("containers/<str:ref>/actions/<slug:action>/", container_action, name="container_action"),
    path("containers/<str:ref>/rename/", container_rename, name="container_rename"),
]
