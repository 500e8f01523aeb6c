"""Dashboard endpoints for a container's streams, which its detail page opens beside the HTML: a
terminal session token (for the websocket in dashboard/consumers/terminal.py) and the log download.

URL names: `container_terminal_token`, `container_logs_download`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.urls import path
from django.views.decorators.http import require_GET, require_POST

from dashboard import policy, terminals
from engine.errors import InvalidArgument
from engine.services import containerinfo, containers


@login_required
@require_POST
def terminal_token(request: HttpRequest, ref: str) -> JsonResponse:
    """Grant one terminal session: a single-use token for the websocket, valid TOKEN_TTL seconds."""
    policy.check(request.user, "terminal")
    container = containerinfo.get(ref)
    attach = request.POST.get("command", "") == terminals.ATTACH
    if attach:
        command: tuple[str, ...] = ()
        if not container.config.get("Tty"):
            raise InvalidArgument(
                f"container {container.name} was not run with -t: there is no terminal to attach to"
            )
    else:
        command = terminals.command_for(request.POST.get("command", ""), request.POST.get("custom", ""))
    policy.check(request.user, "terminal", container, spec={"command": list(command)})
    containers.check("exec", container)
    exec_user = request.POST.get("user", "").strip() or None
    if exec_user is not None and not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}(:[A-Za-z0-9_.-]{1,32})?", exec_user):
        raise InvalidArgument(f"invalid user {exec_user!r}: use a name, uid or uid:gid")
    assert request.user.pk is not None  # login_required
    token = terminals.manager.issue(
        user_id=request.user.pk,
        container_id=container.id,
        command=command,
        exec_user=exec_user,
        attach=attach,
    )
    url = f"/ws/containers/{container.id}/terminal/?token={token}"
    return JsonResponse({"token": token, "url": url, "expires_in": terminals.TOKEN_TTL})


@login_required
@require_GET
def logs_download(request: HttpRequest, ref: str) -> StreamingHttpResponse:
    """The whole log as text/plain, streamed (raw bytes, escapes kept: it is a download, not a page)."""
    container = containers.resolve(ref)
    policy.check(request.user, "logs", container)
    stamps = request.GET.get("timestamps") == "1"
    lines = containerinfo.logs(container.id, containerinfo.LogQuery())
    response = StreamingHttpResponse(_chunks(lines, stamps), content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{container.name}.log"'
    return response


async def _chunks(lines: Iterator[Any], stamps: bool) -> AsyncIterator[bytes]:
    take = sync_to_async(_take)
    while True:
        chunk = await take(lines, stamps)
        if not chunk:
            return
        yield chunk


def _take(lines: Iterator[Any], stamps: bool, count: int = 2000) -> bytes:
    out = bytearray()
    for line in lines:
        if stamps:
            out += f"{line.time.isoformat()} {line.stream} ".encode()
        out += line.data + b"\n"
        count -= 1
        if count <= 0:
            break
    return bytes(out)


urlpatterns = [
    path("containers/<str:ref>/terminal/token/", terminal_token, name="container_terminal_token"),
    path("containers/<str:ref>/logs/download/", logs_download, name="container_logs_download"),
]
