"""Dashboard page: the Run form (`berth run` as a form), with the live `berth run …` preview.

URL names: `container_run` (the form; on success it goes to the new container's logs tab) and
`container_run_preview`. The policy is checked against the whole spec before anything is created.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_http_methods, require_POST

from dashboard import policy, runpull
from dashboard.forms_containers import RunForm, cli_command
from dashboard.views_containers import _perms
from engine import events
from engine.errors import EngineError, ImageNotFound, PermissionDenied
from engine.models import Container, Job
from engine.services import containers, images, lifecycle, networks


def _user_networks() -> tuple[str, ...]:
    return tuple(n.name for n in networks.list_networks() if not n.predefined)


def _image_names() -> list[str]:
    names = {f"{row.repository}:{row.tag}" for row in images.list_images() if row.repository != "<none>"}
    return sorted(names)


@login_required
@require_http_methods(["GET", "POST"])
def container_run(request: HttpRequest) -> HttpResponse:
    policy.check(request.user, "container.create")
    status = 200
    choices: dict[str, Any] = {"networks": _user_networks(), "show_host": _perms(request.user)["admin"]}
    if request.method == "POST":
        form = RunForm(request.POST, **choices)
        if form.is_valid():
            if request.POST.get("pull") and not images.exists(form.cleaned_data["image"]):
                job = _start_pull_and_run(request, form)
                if job is not None:
                    return redirect(reverse("job", args=[job.pk]))
            else:
                created = _create_and_start(request, form)
                if created is not None:
                    return redirect(reverse("container", kwargs={"ref": created.id}) + "?tab=logs")
        status = 403 if getattr(form, "refused", False) else 400
    else:
        form = RunForm(**choices)
    context = {
        "form": form,
        "image_names": _image_names(),
        "cli": cli_command(
            form.data if form.is_bound else {**{k: f.initial for k, f in form.fields.items()}}
        ),
        "perms": _perms(request.user),
        "missing_image": getattr(form, "missing_image", ""),
    }
    return render(request, "dashboard/container_run.html", context, status=status)


def _start_pull_and_run(request: HttpRequest, form: RunForm) -> Job | None:
    """Pull the missing image, then run, as one job; on a refusal, put it on the form and return None."""
    try:
        policy.check(request.user, "container.create", spec=form.spec())
        policy.check(request.user, "image.import")
    except PermissionDenied as exc:
        form.refused = True  # type: ignore[attr-defined]
        form.refuse(exc)
        return None
    return runpull.start(form.cleaned_data["image"], form.to_options(), actor=request.user.get_username())


def _create_and_start(request: HttpRequest, form: RunForm) -> Container | None:
    """Check the policy, create and start; on a refusal or engine error, put it on the form and return None."""
    try:
        policy.check(request.user, "container.create", spec=form.spec())
    except PermissionDenied as exc:
        form.refused = True  # type: ignore[attr-defined]
        form.refuse(exc)
        return None
    with events.acting_as(request.user.get_username()):
        try:
            container = containers.create(form.to_options())
        except EngineError as exc:
            if isinstance(exc, ImageNotFound) and policy.allowed(request.user, "image.import"):
                form.missing_image = form.cleaned_data["image"]  # type: ignore[attr-defined]
            form.engine_error(exc)  # drops the field from cleaned_data
            return None
        try:
            lifecycle.start(container.id)
        except EngineError as exc:
            # Docker leaves the container created when start fails; so do we, and say why.
            messages.error(request, f"{container.name} was created but did not start: {exc}")
            return container
    messages.success(request, f"Started {container.name}")
    return container


@login_required
@require_POST
def container_run_preview(request: HttpRequest) -> HttpResponse:
    """The `berth run` line for what is typed so far (the form re-asks as you type)."""
    policy.check(request.user, "container.create")
    return render(request, "dashboard/partials/_container_cli.html", {"cli": cli_command(request.POST)})


urlpatterns = [
    path("containers/run/", container_run, name="container_run"),
    path("containers/run/preview/", container_run_preview, name="container_run_preview"),
]
