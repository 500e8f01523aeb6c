"""Dashboard pages: pull an image from a registry and build one from a Dockerfile, both as jobs.

Each POST validates its form (errors next to the field), starts one Job and sends the browser to the
job's page (/jobs/<uuid>/), which draws per-layer bars, the build's "Step n/N" and its output live.
A build context is an upload streamed to the engine's tmp dir by forms_images.EngineUploadHandler,
removed by the job's clean-up. A running build can be cancelled from its page: the threading.Event
handed to builds.build is registered with the job (engine.services.jobs.cancel_job sets it).
"""

from __future__ import annotations

import io
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods, require_POST

from dashboard import policy
from dashboard.errors import is_htmx, toast_trigger
from dashboard.forms_build import BuildForm, PullForm
from dashboard.views_images import image_url, job_started, refuse_upload_early, wants_json, with_upload
from engine.errors import PermissionDenied
from engine.models import Image
from engine.progress import OutputLine, Progress, ProgressEvent, StepProgress
from engine.services import builds, jobs, refs, registry


def _describe(image: Image, tags: list[str]) -> dict[str, Any]:
    return {"id": image.id, "short_id": image.short_id, "tags": tags, "url": image_url(image)}


# ---------- progress ----------


# ---------- pull ----------


def _pull_work(ref: str, platform: str | None) -> Callable[..., dict[str, Any]]:
    def work(*, progress: Progress) -> dict[str, Any]:
        image = registry.pull(ref, platform=platform, progress=progress)
        parsed = refs.parse_image(ref)
        tags = [parsed.familiar()] if parsed.tag and not parsed.digest else []
        return {"image": image.id, "images": [_describe(image, tags)]}

    return work


@login_required
@require_http_methods(["GET", "POST"])
def image_pull(request: HttpRequest) -> HttpResponse:
    """`docker pull`: GET shows the form (prefilled from ?ref=), POST starts a "pull" job."""
    policy.check(request.user, "image.import")
    template = "dashboard/image_pull.html"
    if request.method == "GET":
        form = PullForm(initial={"reference": request.GET.get("ref", "")[:512]})
        return render(request, template, {"form": form})
    form = PullForm(request.POST)
    if not form.is_valid():
        return render(request, template, {"form": form}, status=400)
    ref = form.cleaned_data["reference"]
    job = jobs.start(
        kind="pull",
        title=f"pull {ref}",
        work=_pull_work(ref, form.cleaned_data["platform"] or None),
        actor=request.user.get_username(),
    )
    return HttpResponseRedirect(reverse("job", args=[job.pk]))


# ---------- build ----------


def _empty_context() -> io.BytesIO:
    """A tar with no entries: the context of a pasted Dockerfile (`docker build - < Dockerfile`)."""
    buffer = io.BytesIO()
    tarfile.open(fileobj=buffer, mode="w").close()
    buffer.seek(0)
    return buffer


def _with_step_lines(progress: Progress) -> Progress:
    """Also write each step into the output, as `docker build` prints "Step 2/3 : RUN …"."""

    def report(event: ProgressEvent) -> None:
        if isinstance(event, StepProgress):
            progress(OutputLine(f"Step {event.step}/{event.total} : {event.text}"))
        progress(event)

    return report


def _build_work(options: dict[str, Any], context_path: str | None, cancel: threading.Event) -> Any:
    def work(*, progress: Progress) -> dict[str, Any]:
        kwargs = {
            "dockerfile": options["dockerfile"],
            "dockerfile_text": options["dockerfile_text"],
            "tags": options["tags"],
            "build_args": options["build_args"],
            "target": options["target"] or None,
            "no_cache": options["no_cache"],
            "progress": _with_step_lines(progress),
            "cancel": cancel,
        }
        if context_path is not None:
            with open(context_path, "rb") as stream:
                image = builds.build(stream, **kwargs)
        else:
            image = builds.build(_empty_context(), **kwargs)
        tags = [refs.parse_image(t).familiar() for t in options["tags"]]
        progress(OutputLine(f"Successfully built {image.short_id}"))
        for tag in tags:
            progress(OutputLine(f"Successfully tagged {tag}"))
        return {"image": image.id, "images": [_describe(image, tags)]}

    return work


def _build_title(options: dict[str, Any], filename: str | None) -> str:
    title = "build " + (", ".join(options["tags"]) or "(untagged)")
    return title + (f" from {filename}" if filename else " from a pasted Dockerfile")


@csrf_exempt  # checked by _start_build once the upload handler is in place
@login_required
@require_http_methods(["GET", "POST"])
def image_build(request: HttpRequest) -> HttpResponse:
    """`docker build`: GET shows the form, POST streams the context to disk and starts a "build" job."""
    template = "dashboard/image_build.html"
    refused = refuse_upload_early(request)
    if refused is not None:
        return refused
    if request.method == "GET":
        return render(request, template, {"form": BuildForm()})
    return with_upload(request, lambda: _start_build(request, template))


@csrf_protect
def _start_build(request: HttpRequest, template: str) -> HttpResponse:
    # csrf_protect runs here, after the upload handler was set: the CSRF check reads request.POST,
    # which parses the body, and the handlers cannot change once parsing has started.
    form = BuildForm(request.POST, request.FILES)
    if not form.is_valid():
        if wants_json(request):
            return JsonResponse({"errors": {k: list(v) for k, v in form.errors.items()}}, status=400)
        return render(request, template, {"form": form}, status=400)
    options = form.cleaned_data
    upload = options["context"]
    context_path: str | None = None
    filename: str | None = None
    if upload is not None:
        context_path = upload.temporary_file_path()
        filename = Path(upload.name or "context.tar").name
        upload.close()
    cancel = threading.Event()

    def cleanup() -> None:
        if context_path is not None:
            Path(context_path).unlink(missing_ok=True)

    job = jobs.start(
        kind="build",
        title=_build_title(options, filename),
        work=_build_work(options, context_path, cancel),
        actor=request.user.get_username(),
        cleanup=cleanup,
        cancel=cancel,
    )
    return job_started(request, job, context_path)


# ---------- cancel ----------


@login_required
@require_POST
def job_cancel(request: HttpRequest, job_id: str) -> HttpResponse:
    """Ask a running build to stop: only the user who started it, or an admin.

    The build notices within milliseconds, kills and removes its RUN container, and the job ends with
    "the build was cancelled". Raise InvalidState (409) for a job that is not a build running here.
    """
    policy.check(request.user, "view")
    job = jobs.get(job_id)
    if job.created_by != request.user.get_username() and policy.role_of(request.user) != policy.ADMIN:
        raise PermissionDenied("this job belongs to another user")
    jobs.cancel_job(job.pk)
    message = f"Cancelling {job.title or job.kind}…"
    if is_htmx(request):
        response = HttpResponse(status=204)
        response["HX-Trigger"] = toast_trigger(message, level="info")
        return response
    messages.info(request, message)
    return HttpResponseRedirect(reverse("job", args=[job.pk]))


urlpatterns = [
    path("images/pull/", image_pull, name="image_pull"),
    path("images/build/", image_build, name="image_build"),
    path("jobs/<uuid:job_id>/cancel/", job_cancel, name="job_cancel"),
]
