"""Dashboard: a container's Files tab — browse, view text, download (tar), upload (operators).

Who may do what: viewers may browse folders and view text files, because they may already read
the same kind of data (the volume browser, logs, inspect); downloading a tar (every byte, with owners
and modes: more than the viewer shows, like a volume backup) and uploading are for operators
(`container.download`, `container.upload`). Nobody browses a live container's /proc or /sys here
(engine.services.filebrowser refuses kernel filesystems: they hold the environment the dashboard
masks). Listing and viewing are not events (like the volume browser); a download is the event
"archive-path" and an upload "upload", both with the user; a refused upload is a "web" error event
(dashboard.errors).

Every path is resolved inside the container's root by the engine (openat2 RESOLVE_IN_ROOT); a
symlink is shown with its text and where it leads inside the root, never followed out of it.
"""

from __future__ import annotations

import posixpath
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.files.uploadhandler import StopUpload
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.utils.http import content_disposition_header, urlencode
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_POST

from dashboard import policy
from dashboard.errors import is_htmx, toast_trigger
from dashboard.forms_images import EngineUploadHandler
from dashboard.views_containers import TABS, _annotate, _perms
from engine import events
from engine.errors import EngineError, InvalidArgument
from engine.models import Container
from engine.services import containerinfo, filebrowser, files

PAGE_SIZE = 250  # entries per page of a listing
# Multipart framing around the files (boundaries, headers, the path field) on top of the cap.
_FORM_OVERHEAD = 64 * 1024


def _acting(request: HttpRequest) -> events.acting_as:
    return events.acting_as(request.user.get_username())


def _path(request: HttpRequest, source: Any = None) -> str:
    raw = (source if source is not None else request.GET).get("path", "/") or "/"
    return filebrowser.normalise(str(raw))


def _crumbs(path: str) -> list[dict[str, str]]:
    parts = [p for p in path.split("/") if p]
    return [{"name": part, "path": "/" + "/".join(parts[: i + 1])} for i, part in enumerate(parts)]


def _q(path: str) -> str:
    return urlencode({"path": path})


def tab_context(request: HttpRequest, container: Container) -> dict[str, Any]:
    """The context of the Files tab (`?tab=files&path=…`) on the container's page.

    An engine error (a missing path, not a directory) is shown in the tab, not as an error page.
    """
    try:
        return listing_context(request, container, _path(request), page=request.GET.get("page", 1))
    except EngineError as exc:
        return {"files_error": str(exc), "files_path": "/", "files_crumbs": [], **_perm_context(request)}


def _perm_context(request: HttpRequest) -> dict[str, Any]:
    return {
        "can_upload": policy.allowed(request.user, "container.upload"),
        "can_download": policy.allowed(request.user, "container.download"),
    }


def listing_context(
    request: HttpRequest, container: Container, where: str, *, page: Any = 1
) -> dict[str, Any]:
    """One page (PAGE_SIZE entries) of a directory: rendering thousands of rows is what is slow."""
    listing = filebrowser.list_dir(container, where)
    shown = Paginator(listing.entries, PAGE_SIZE).get_page(page)
    rows = [
        {
            "e": e,
            "path": posixpath.join(listing.path, e.name),
            "mtime": datetime.fromtimestamp(e.mtime, UTC),
        }
        for e in shown
    ]
    return {
        "listing": listing,
        "rows": rows,
        "page": shown,
        "files_path": listing.path,
        "files_crumbs": _crumbs(listing.path),
        "files_parent": posixpath.dirname(listing.path) if listing.path != "/" else None,
        "changed_count": sum(1 for e in listing.entries if e.change),
        "upload_limit": filebrowser.upload_limit(),
        **_perm_context(request),
    }


@login_required
@require_GET
def container_files(request: HttpRequest, ref: str) -> HttpResponse:
    """One directory's listing: the tab's section for htmx, else a redirect to the tab."""
    policy.check(request.user, "view")
    container = containerinfo.get(ref)
    where = _path(request)
    if not is_htmx(request):
        url = reverse("container", args=[container.name]) + "?" + urlencode({"tab": "files", "path": where})
        return HttpResponseRedirect(url)
    context = {"c": container, **listing_context(request, container, where, page=request.GET.get("page", 1))}
    return render(request, "dashboard/partials/_container_files.html", context)


@login_required
@require_GET
def container_file_view(request: HttpRequest, ref: str) -> HttpResponse:
    """Show the start of a text file (escaped by the template, never rendered as HTML)."""
    policy.check(request.user, "view")
    container = _annotate(containerinfo.get(ref), request)
    where = _path(request)
    text = filebrowser.read_text(container, where)
    context = {
        "c": container,
        "tab": "files",
        "tabs": TABS,
        "perms": _perms(request.user),
        "file": text,
        "text": text.data.decode("utf-8", "replace"),
        "limit": filebrowser.TEXT_LIMIT,
        "files_path": where,
        "files_crumbs": _crumbs(where),
        "files_parent": posixpath.dirname(where),
        **_perm_context(request),
    }
    return render(request, "dashboard/container_files_view.html", context)


@login_required
@require_GET
def container_file_download(request: HttpRequest, ref: str) -> StreamingHttpResponse:
    """A file or a folder as a tar, streamed (a stopped container stays locked while it streams)."""
    policy.check(request.user, "container.download")
    container = containerinfo.get(ref)
    where = _path(request)
    info = filebrowser.check_path(container, where)
    with _acting(request):
        _, stream = files.get_archive(container.id, where)
    base = info.name if info.name not in ("/", ".") else "rootfs"
    response = StreamingHttpResponse(relay_archive(stream), content_type="application/x-tar")
    response["Content-Disposition"] = content_disposition_header(True, f"{container.name}-{base}.tar")
    return response


async def relay_archive(stream: Any) -> AsyncIterator[bytes]:
    """Stream an archive (iterable of bytes with close()) to the client; its blocking reads run in worker threads."""
    chunks = iter(stream)
    take = sync_to_async(_take, thread_sensitive=False)
    try:
        while True:
            chunk = await take(chunks)
            if not chunk:
                return
            yield chunk
    finally:
        await sync_to_async(stream.close, thread_sensitive=False)()


def _take(chunks: Any, size: int = 1 << 20) -> bytes:
    out = bytearray()
    for chunk in chunks:
        out += chunk
        if len(out) >= size:
            break
    return bytes(out)


class _CappedUploadHandler(EngineUploadHandler):
    """Stage uploaded files under the engine's tmp dir, all files together under the Files cap."""

    def __init__(self, request: Any = None) -> None:
        super().__init__(request)
        self.limit = filebrowser.upload_limit()
        self.total = 0
        self.exceeded = False

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self.total += len(raw_data)
        if self.total > self.limit:
            self.exceeded = True  # the view turns this into a clear "too large" error
            raise StopUpload(connection_reset=True)
        return super().receive_data_chunk(raw_data, start)


def _too_large(limit: int) -> InvalidArgument:
    return InvalidArgument(
        f"upload too large: the limit is {filebrowser.human_size(limit)} for all files together"
    )


@csrf_exempt  # checked by _upload once the upload handler is in place
@login_required
@require_POST
def container_file_upload(request: HttpRequest, ref: str) -> HttpResponse:
    """Upload files into a folder (operators): checked before the body is read, staged, then renamed in."""
    policy.check(request.user, "container.upload")
    container = containerinfo.get(ref)
    limit = filebrowser.upload_limit()
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit + _FORM_OVERHEAD:
        raise _too_large(limit)
    handler = _CappedUploadHandler(request)
    request.upload_handlers = [handler]
    try:
        return _upload(request, container, handler)
    finally:
        handler.discard()


@csrf_protect
def _upload(request: HttpRequest, container: Container, handler: _CappedUploadHandler) -> HttpResponse:
    # csrf_protect reads request.POST, which parses the body: the handler must be set before.
    where = _path(request, request.POST)
    if handler.exceeded:
        raise _too_large(handler.limit)
    uploaded = request.FILES.getlist("files")
    if not uploaded:
        raise InvalidArgument("choose at least one file to upload")
    opened: list[tuple[str, Any]] = []
    try:
        for item in uploaded:
            opened.append((item.name or "", item))
        with _acting(request):
            written = filebrowser.upload(container, where, opened)
    finally:
        for _, stream in opened:
            stream.close()
    names = ", ".join(posixpath.basename(p) for p in written)
    message = f"Uploaded {names} to {where}"
    if is_htmx(request):
        context = {"c": container, **listing_context(request, container, where)}
        response = render(request, "dashboard/partials/_container_files.html", context)
        response["HX-Trigger"] = toast_trigger(message, level="success")
        return response
    messages.success(request, message)
    url = reverse("container", args=[container.name]) + "?" + urlencode({"tab": "files", "path": where})
    return HttpResponseRedirect(url)


urlpatterns = [
    path("containers/<str:ref>/files/", container_files, name="container_files"),
    path("containers/<str:ref>/files/view/", container_file_view, name="container_file_view"),
    path("containers/<str:ref>/files/download/", container_file_download, name="container_file_download"),
    path("containers/<str:ref>/files/upload/", container_file_upload, name="container_file_upload"),
]
