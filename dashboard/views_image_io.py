"""Dashboard pages: an image's Export (a `berth save` archive as a streamed download) and a container's
Commit (`berth commit` as a form on its own page, which goes to the new image when done).

Both are for operators and up; both are events (the services record `image save` and `container commit`),
as the signed-in user.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import render
from django.urls import path, re_path
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_http_methods

from dashboard import policy
from dashboard.forms_registries import CommitForm
from dashboard.views_files import relay_archive
from dashboard.views_images import IMAGE_ID, image_url
from engine import events
from engine.errors import InvalidArgument
from engine.services import builds, containerinfo, imageexport, images


def _acting(request: HttpRequest) -> events.acting_as:
    return events.acting_as(request.user.get_username())


# ---------- export ----------


@login_required
@require_GET
def image_export(request: HttpRequest, image_id: str) -> StreamingHttpResponse:
    """The image as a tar that `berth load` reads, named after `?name=` (one of its tags) if given."""
    policy.check(request.user, "image.export")
    name = request.GET.get("name", "").strip()[:512]
    if name and not images.resolve(name).id.removeprefix("sha256:").startswith(image_id):
        raise InvalidArgument(f"{name} is not the name of image {image_id[:12]}")
    name = name or image_id
    with _acting(request):
        stream = imageexport.export(name)
    response = StreamingHttpResponse(relay_archive(stream), content_type="application/x-tar")
    response["Content-Disposition"] = content_disposition_header(True, stream.filename)
    return response


# ---------- commit ----------


@login_required
@require_http_methods(["GET", "POST"])
def container_commit(request: HttpRequest, ref: str) -> HttpResponse:
    """`berth commit`: GET shows the form, POST makes the image and goes to its page."""
    policy.check(request.user, "container.commit")
    container = containerinfo.get(ref)
    status = 200
    if request.method == "POST":
        form = CommitForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                with _acting(request):
                    image = builds.commit(
                        container.id,
                        data["reference"] or None,
                        message=data["message"],
                        author=data["author"],
                        pause=data["pause"],
                    )
            except InvalidArgument as exc:
                form.add_error(None, str(exc))
            else:
                name = data["reference"] or image.short_id
                messages.success(request, f"Committed {container.name} as {name}")
                return HttpResponseRedirect(image_url(image))
        status = 400
    else:
        form = CommitForm()
    context: dict[str, Any] = {"c": container, "form": form}
    return render(request, "dashboard/container_commit.html", context, status=status)


urlpatterns = [
    re_path(rf"^images/{IMAGE_ID}/export/$", image_export, name="image_export"),
    path("containers/<str:ref>/commit/", container_commit, name="container_commit"),
]
