"""Dashboard pages: volumes — list (sizes computed lazily per row), create, remove, prune, detail, files.

The file browser is read-only and goes through engine.services.volumes.browse/read_file, which walk
the volume with O_NOFOLLOW from its _data directory: a symlink a container planted is shown as a
symlink, never followed. Collection actions live under `volumes/_…/`: a volume name cannot start
with "_", so no volume's page is ever shadowed by an action.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.template.defaultfilters import filesizeformat
from django.urls import path, reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from dashboard import livestate, policy
from dashboard.errors import is_htmx
from dashboard.forms_volumes import VolumeCreateForm, VolumePruneForm
from dashboard.responses import changed, go, page, refreshed
from engine import events
from engine.errors import InvalidArgument, VolumeNotFound
from engine.services import volumes

FILE_VIEW_LIMIT = 64 * 1024


def _acting(request: HttpRequest) -> events.acting_as:
    return events.acting_as(request.user.get_username())


def _users_by_volume() -> dict[int, list[str]]:
    return volumes.users_by_volume()


# ---------- list ----------


def _list_context(q: str) -> dict[str, Any]:
    found = volumes.list_volumes(filters={"name": [q]} if q else None)
    users = _users_by_volume()
    rows: list[dict[str, Any]] = [{"volume": v, "users": users.get(v.pk, [])} for v in found]
    # The heading and Prune count every volume, whatever the search shows (livestate: one source).
    return {"rows": rows, "q": q, "prune_form": VolumePruneForm(), **livestate.volume_summary()}


@login_required
@require_GET
def volume_list(request: HttpRequest) -> HttpResponse:
    policy.check(request.user, "view")
    context = _list_context(request.GET.get("q", "").strip()[:200])
    return page(request, "dashboard/volumes.html", "dashboard/partials/_volumes_table.html", context)


@login_required
@require_GET
def volume_counts(request: HttpRequest) -> HttpResponse:
    """The heading count and Prune's numbers as out-of-band parts (live.js refreshes them on events)."""
    policy.check(request.user, "view")
    context = {**livestate.volume_summary(), "oob": True}
    return render(request, "dashboard/partials/_volume_counts.html", context)


@login_required
@require_GET
def volume_size(request: HttpRequest, name: str) -> HttpResponse:
    """The size cell of one row, fetched lazily by htmx: walking a volume can take a while."""
    policy.check(request.user, "view")
    return render(request, "dashboard/partials/_volume_size.html", {"size": volumes.size(volumes.get(name))})


# ---------- create, remove, prune ----------


@login_required
@require_http_methods(["GET", "POST"])
def volume_create(request: HttpRequest) -> HttpResponse:
    policy.check(request.user, "volume.create")
    if request.method == "GET":
        return render(request, "dashboard/volume_create.html", {"form": VolumeCreateForm()})
    form = VolumeCreateForm(request.POST)
    if form.is_valid():
        name = form.cleaned_data["name"]
        if name is not None and _exists(name):
            # The engine returns an existing volume as Docker does; from a form that would read as
            # "Created" while nothing was created, so say so instead.
            form.add_error("name", f"a volume named {name} already exists; choose another name")
        else:
            try:
                with _acting(request):
                    volume = volumes.create(
                        name, labels=form.cleaned_data["labels"], options=form.cleaned_data["options"]
                    )
            except InvalidArgument as exc:
                # Names were checked above, so what is left is about the driver options.
                form.add_error("options", str(exc))
            else:
                messages.success(request, f"Created volume {volume.name}")
                return HttpResponseRedirect(reverse("volume", args=[volume.name]))
    return render(request, "dashboard/volume_create.html", {"form": form}, status=400)


@login_required
@require_POST
def volume_remove(request: HttpRequest, name: str) -> HttpResponse:
    """Remove a volume; one in use is the engine's conflict, shown as it words it."""
    policy.check(request.user, "volume.remove")
    with _acting(request):
        volumes.remove(name)
    message = f"Removed volume {name}"
    if is_htmx(request) and request.POST.get("next") == "list":
        return changed(message, "volumes-changed")
    messages.success(request, message)
    return go(request, reverse("volumes"))


@login_required
@require_POST
def volumes_prune(request: HttpRequest) -> HttpResponse:
    policy.check(request.user, "volume.prune")
    form = VolumePruneForm(request.POST)
    everything = form.is_valid() and form.cleaned_data["all"]
    with _acting(request):
        result = volumes.prune(all=everything)
    message = f"Pruned {len(result.removed)} volume(s), {filesizeformat(result.reclaimed)} reclaimed"
    return refreshed(request, message, event="volumes-changed", target=reverse("volumes"))


def _exists(name: str) -> bool:
    try:
        volumes.get(name)
    except VolumeNotFound:
        return False
    return True


# ---------- detail and files ----------


def _detail_context(name: str, tab: str) -> dict[str, Any]:
    volume = volumes.get(name)
    mounts = list(volume.mounts.select_related("container").order_by("container__name"))
    return {
        "volume": volume,
        "tab": tab,
        "mountpoint": volumes.mountpoint(volume),
        "labels": sorted((volume.labels or {}).items()),
        "options": sorted((volume.options or {}).items()),
        "mounts": mounts,
    }


@login_required
@require_GET
def volume_detail(request: HttpRequest, name: str) -> HttpResponse:
    policy.check(request.user, "view")
    return render(request, "dashboard/volume_detail.html", _detail_context(name, "overview"))


def _crumbs(relpath: str) -> list[dict[str, str]]:
    parts = [p for p in relpath.split("/") if p not in ("", ".")]
    return [{"name": part, "path": "/".join(parts[: i + 1])} for i, part in enumerate(parts)]


def _join(base: str, name: str) -> str:
    return f"{base.strip('/')}/{name}".lstrip("/")


@login_required
@require_GET
def volume_files(request: HttpRequest, name: str) -> HttpResponse:
    """List one directory of the volume (`?path=a/b`), read-only; symlinks shown, never followed."""
    policy.check(request.user, "view")
    relpath = request.GET.get("path", "").strip("/")[:4096]
    context = _detail_context(name, "files")
    entries = volumes.browse(name, relpath)
    context.update(
        relpath=relpath,
        crumbs=_crumbs(relpath),
        parent="/".join(relpath.split("/")[:-1]) if relpath else None,
        entries=[
            {"entry": e, "path": _join(relpath, e.name), "mtime": datetime.fromtimestamp(e.mtime, UTC)}
            for e in entries
        ],
        truncated=len(entries) >= volumes.BROWSE_MAX_ENTRIES,
    )
    return page(request, "dashboard/volume_detail.html", "dashboard/partials/_volume_files.html", context)


@login_required
@require_GET
def volume_file(request: HttpRequest, name: str) -> HttpResponse:
    """Show the first 64 KiB of a regular file as text (escaped by the template, never as HTML)."""
    policy.check(request.user, "view")
    relpath = request.GET.get("path", "").strip("/")[:4096]
    data = volumes.read_file(name, relpath, FILE_VIEW_LIMIT + 1)
    context = _detail_context(name, "files")
    context.update(
        relpath=relpath,
        crumbs=_crumbs(relpath),
        parent="/".join(relpath.split("/")[:-1]),
        truncated=len(data) > FILE_VIEW_LIMIT,
        binary=b"\x00" in data[:8192],
        text=data[:FILE_VIEW_LIMIT].decode("utf-8", "replace"),
        shown=min(len(data), FILE_VIEW_LIMIT),
        limit=FILE_VIEW_LIMIT,
    )
    return render(request, "dashboard/volume_file.html", context)


urlpatterns = [
    path("volumes/", volume_list, name="volumes"),
    path("volumes/_create/", volume_create, name="volume_create"),
    path("volumes/_prune/", volumes_prune, name="volumes_prune"),
    path("volumes/_counts/", volume_counts, name="volumes_counts"),
    path("volumes/<str:name>/", volume_detail, name="volume"),
    path("volumes/<str:name>/remove/", volume_remove, name="volume_remove"),
    path("volumes/<str:name>/size/", volume_size, name="volume_size"),
    path("volumes/<str:name>/files/", volume_files, name="volume_files"),
    path("volumes/<str:name>/files/view/", volume_file, name="volume_file"),
]
