"""Dashboard pages: images — list, detail, import and load by upload, tag, remove, prune.

Import and load stream the upload to a file under the engine's tmp dir (forms_images.EngineUploadHandler),
then start a Job that runs the engine call and removes the file; the browser goes to the job's page.
Every action asks dashboard.policy first and runs as the signed-in user (engine.events.acting_as).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import path, re_path, reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from dashboard import policy
from dashboard.errors import is_htmx, toast_trigger
from dashboard.forms_images import EngineUploadHandler, ImportForm, LoadForm, PruneForm, RemoveForm, TagForm
from dashboard.responses import go, page, refreshed
from engine import events
from engine.errors import EngineError, InvalidArgument
from engine.models import Job
from engine.services import containers, images, imagetransfer, jobs

IMAGE_ID = r"(?P<image_id>[0-9a-f]{12,64})"


def _acting(request: HttpRequest) -> events.acting_as:
    return events.acting_as(request.user.get_username())


def wants_json(request: HttpRequest) -> bool:
    """progress.js posts uploads with XHR and asks for JSON; plain forms get pages and redirects."""
    return "application/json" in request.headers.get("Accept", "")


def image_url(image: Any) -> str:
    return reverse("image", args=[image.id.removeprefix("sha256:")])


# ---------- list ----------


def _rows(q: str, dangling: bool) -> list[dict[str, Any]]:
    found = images.list_images(filters={"dangling": ["true"]} if dangling else None)
    counts = containers.count_by_image()
    needle = q.strip().lower()
    rows = []
    for row in found:
        name = f"{row.repository}:{row.tag}"
        if needle and needle not in name.lower() and needle not in row.image.id:
            continue
        tagged = row.repository != "<none>"
        rows.append(
            {
                "image": row.image,
                "repository": row.repository,
                "tag": row.tag,
                "ref": name if tagged else row.image.short_id,
                "label": name if tagged else row.image.short_id,
                "created": row.image.created or row.image.loaded,
                "used_by": counts.get(row.image.id, 0),
                "url": image_url(row.image),
            }
        )
    return rows


@login_required
@require_GET
def image_list(request: HttpRequest) -> HttpResponse:
    policy.check(request.user, "view")
    q = request.GET.get("q", "")[:200]
    dangling = request.GET.get("dangling") == "1"
    context = {"rows": _rows(q, dangling), "q": q, "dangling": dangling}
    return page(request, "dashboard/images.html", "dashboard/partials/_images_table.html", context)


# ---------- detail ----------


def _layers(image_id: str) -> list[dict[str, Any]]:
    """History steps oldest first, each with its layer size as a percentage of the biggest layer."""
    steps = list(reversed(images.history(image_id)))
    biggest = max((s["Size"] for s in steps), default=0)
    out = []
    for number, step in enumerate(steps, start=1):
        size = int(step["Size"] or 0)
        pct = (size / biggest * 100) if biggest else 0.0
        out.append(
            {
                "number": number,
                "created_by": _instruction(step.get("CreatedBy") or ""),
                "created": step.get("Created") or "",
                "comment": step.get("Comment") or "",
                "size": size,
                # Nonzero layers stay visible however small; the SVG takes the width as an attribute.
                "width": f"{max(pct, 0.6) if size else 0:.2f}",
            }
        )
    return out


def _instruction(created_by: str) -> str:
    """`/bin/sh -c #(nop) CMD ["sh"]` → `CMD ["sh"]`, as `docker history` shows it."""
    text = created_by.strip()
    for prefix in ("/bin/sh -c #(nop) ", "/bin/sh -c #(nop)"):
        if text.startswith(prefix):
            return text[len(prefix) :].strip()
    if text.startswith("/bin/sh -c "):
        return "RUN " + text[len("/bin/sh -c ") :]
    return text


def _detail_context(image_id: str) -> dict[str, Any]:
    image = images.resolve(image_id)
    data = images.inspect(image.id)
    config = data.get("Config") or {}
    return {
        "image": image,
        "data": data,
        "config": config,
        "env": config.get("Env") or [],
        "labels": sorted((config.get("Labels") or {}).items()),
        "ports": sorted(config.get("ExposedPorts") or {}),
        "volumes": sorted(config.get("Volumes") or {}),
        "layers": _layers(image.id),
        "containers": list(image.containers.order_by("name")),
        "tag_form": TagForm(),
    }


@login_required
@require_GET
def image_detail(request: HttpRequest, image_id: str) -> HttpResponse:
    policy.check(request.user, "view")
    return render(request, "dashboard/image_detail.html", _detail_context(image_id))


@login_required
@require_POST
def image_tag(request: HttpRequest, image_id: str) -> HttpResponse:
    policy.check(request.user, "image.tag")
    form = TagForm(request.POST)
    if form.is_valid():
        try:
            with _acting(request):
                image = images.tag(image_id, form.cleaned_data["target"])
        except InvalidArgument as exc:
            form.add_error("target", str(exc))
        else:
            messages.success(request, f"Tagged {image.short_id} as {form.cleaned_data['target']}")
            return HttpResponseRedirect(image_url(image))
    context = _detail_context(image_id)
    context["tag_form"] = form
    return render(request, "dashboard/image_detail.html", context, status=400)


# ---------- remove and prune ----------


def _summary(result: list[dict[str, str]]) -> str:
    untagged = [v for item in result for k, v in item.items() if k == "Untagged"]
    deleted = [v for item in result for k, v in item.items() if k == "Deleted"]
    parts = []
    if untagged:
        parts.append("untagged " + ", ".join(untagged))
    if deleted:
        parts.append(f"deleted {len(deleted)} layer(s) and image(s)")
    return "; ".join(parts) or "nothing to remove"


@login_required
@require_POST
def image_remove(request: HttpRequest) -> HttpResponse:
    """Remove by name (untag; the image goes with its last name) or by ID, as `docker rmi` does.

    The engine's conflict (an image in use) propagates as an EngineError: a toast for htmx, the
    error page otherwise, with the engine's words.
    """
    policy.check(request.user, "image.remove")
    ref = request.POST.get("ref", "").strip()
    if not ref:
        raise InvalidArgument("say which image to remove")
    force = RemoveForm(request.POST).is_valid() and bool(request.POST.get("force"))
    with _acting(request):
        result = images.remove(ref, force=force)
    message = f"Removed {ref}: {_summary(result)}"
    if is_htmx(request) and request.POST.get("next") == "list":
        response = HttpResponse(status=204)
        response["HX-Trigger"] = json.dumps(
            {**json.loads(toast_trigger(message, level="success")), "images-changed": True}
        )
        return response
    messages.success(request, message)
    target = reverse("images")
    if images.exists(ref):  # only a name went; the image stays under its other names
        target = image_url(images.resolve(ref))
    return go(request, target)


@login_required
@require_POST
def images_prune(request: HttpRequest) -> HttpResponse:
    policy.check(request.user, "image.prune")
    form = PruneForm(request.POST)
    everything = form.is_valid() and form.cleaned_data["all"]
    with _acting(request):
        result = images.prune(all=everything)
    deleted = sum(1 for item in result.deleted if "Deleted" in item)
    message = f"Pruned images: {deleted} item(s) deleted, {_human(result.reclaimed)} reclaimed"
    return refreshed(request, message, event="images-changed", target=reverse("images"))


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


# ---------- import and load (uploads that become jobs) ----------


def refuse_upload_early(request: HttpRequest, action: str = "image.import") -> HttpResponse | None:
    """Check the right to upload before the body is parsed: a viewer's upload never reaches the disk.

    Returns the refusal for XHR uploads (JSON); raises PermissionDenied for plain forms.
    """
    try:
        policy.check(request.user, action)
    except EngineError as exc:
        if wants_json(request):
            return JsonResponse({"error": str(exc)}, status=exc.status)
        raise
    return None


def with_upload(request: HttpRequest, start: Callable[[], HttpResponse]) -> HttpResponse:
    """Run `start` with the body streamed to a file under BERTH_ROOT; the file goes unless a job kept it.

    `start` must be csrf_protect'ed itself: the CSRF check parses the body, and the upload handler
    has to be in place before that.
    """
    handler = EngineUploadHandler(request)
    request.upload_handlers = [handler]
    try:
        return start()
    except EngineError as exc:
        if wants_json(request):
            return JsonResponse({"error": str(exc)}, status=exc.status)
        raise
    finally:
        handler.discard(keep=getattr(request, "_berth_kept_upload", None))


def job_started(request: HttpRequest, job: Job, upload_path: str | None) -> HttpResponse:
    """The answer to a form that started a job: its page (or its URL, for XHR uploads).

    The job owns `upload_path` from now on: `with_upload` leaves it in place.
    """
    request._berth_kept_upload = upload_path  # type: ignore[attr-defined]
    url = reverse("job", args=[job.pk])
    if wants_json(request):
        return JsonResponse({"redirect": url, "job": str(job.pk)})
    return HttpResponseRedirect(url)


def _upload_view(request: HttpRequest, *, kind: str) -> HttpResponse:
    """Shared body of image_import and image_load: stream the upload, validate, start the job."""
    form_class = ImportForm if kind == "import" else LoadForm
    template = "dashboard/image_upload.html"
    refused = refuse_upload_early(request)
    if refused is not None:
        return refused
    if request.method == "GET":
        return render(request, template, {"form": form_class(), "kind": kind})
    return with_upload(request, lambda: _start_upload_job(request, form_class, template, kind))


@csrf_protect
def _start_upload_job(request: HttpRequest, form_class: type, template: str, kind: str) -> HttpResponse:
    # csrf_protect runs here, after the upload handler was set: the CSRF check reads request.POST,
    # which parses the body, and the handlers cannot change once parsing has started.
    form = form_class(request.POST, request.FILES)
    if not form.is_valid():
        if wants_json(request):
            return JsonResponse({"errors": {k: list(v) for k, v in form.errors.items()}}, status=400)
        return render(request, template, {"form": form, "kind": kind}, status=400)
    upload = form.cleaned_data["archive"]
    path = upload.temporary_file_path()
    size = upload.size or 0
    filename = Path(upload.name or "archive").name
    upload.close()
    if kind == "load":
        title = f"Load {filename}"
        work = _load_work(path)
    else:
        ref = form.cleaned_data["reference"] or None
        title = f"Import {filename}" + (f" as {ref}" if ref else "")
        work = _import_work(path, ref, form.cleaned_data["changes"], form.cleaned_data["message"], size)
    job = jobs.start(
        kind=kind,
        title=title,
        work=work,
        actor=request.user.get_username(),
        cleanup=lambda: Path(path).unlink(missing_ok=True),
    )
    return job_started(request, job, path)


def _load_work(path: str) -> Any:
    def work(*, progress: Any) -> dict[str, Any]:
        loaded = imagetransfer.load(Path(path), progress=progress)
        return {
            "images": [
                {"id": image.id, "short_id": image.short_id, "tags": tags, "url": image_url(image)}
                for image, tags in loaded
            ]
        }

    return work


def _import_work(path: str, ref: str | None, changes: list[str], message: str, size: int) -> Any:
    def work(*, progress: Any) -> dict[str, Any]:
        with open(path, "rb") as stream:
            image = imagetransfer.import_tarball(
                stream, ref, changes_=changes, message=message, size=size, progress=progress
            )
        return {
            "images": [
                {
                    "id": image.id,
                    "short_id": image.short_id,
                    "tags": [ref] if ref else [],
                    "url": image_url(image),
                }
            ]
        }

    return work


@csrf_exempt  # checked by _protected_upload once the upload handler is in place
@login_required
@require_http_methods(["GET", "POST"])
def image_import(request: HttpRequest) -> HttpResponse:
    return _upload_view(request, kind="import")


@csrf_exempt  # checked by _protected_upload once the upload handler is in place
@login_required
@require_http_methods(["GET", "POST"])
def image_load(request: HttpRequest) -> HttpResponse:
    return _upload_view(request, kind="load")


urlpatterns = [
    path("images/", image_list, name="images"),
    path("images/import/", image_import, name="image_import"),
    path("images/load/", image_load, name="image_load"),
    path("images/remove/", image_remove, name="image_remove"),
    path("images/prune/", images_prune, name="images_prune"),
    re_path(rf"^images/{IMAGE_ID}/$", image_detail, name="image"),
    re_path(rf"^images/{IMAGE_ID}/tag/$", image_tag, name="image_tag"),
]
