"""Docker API: images (list, inspect, history, tag, remove, prune, pull, push, load, save, import).
Registry login (`/auth`) and the credentials a pull or push carries are in registryauth.py.

Handlers translate Docker's query parameters into calls to engine.services.images, imagetransfer and
registry, and their answers into Docker's JSON shapes. Long work (pull, push, load, import) streams
JSON lines through progressstream.Pump; `save` streams the tar the service writes through a pipe.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from engine.api.http import ApiError, Request, Response, Stream, json_lines
from engine.api.progressstream import (
    LayerThrottle,
    Pump,
    error_message,
    layer_message,
    spool_body,
    status_message,
)
from engine.api.registryauth import registry_credentials
from engine.api.router import route
from engine.errors import EngineError, InUse, InvalidArgument
from engine.models import Image
from engine.progress import LayerProgress, OutputLine, ProgressEvent, StepProgress
from engine.services import images, imagetransfer, refs, registry

log = logging.getLogger(__name__)

TAR_TYPE = "application/x-tar"
PIPE_CHUNK = 256 * 1024


# -- list, inspect, history -------------------------------------------------------------------------


@route("GET", "/images/json")
def list_images(request: Request) -> Response:
    filters = request.filters()
    if request.version < (1, 25) and request.arg("filter") and "reference" not in filters:
        filters["reference"] = [request.arg("filter") or ""]
    rows = images.list_images(all=request.flag("all"), filters=filters)
    by_id: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = by_id.get(row.image.id)
        if entry is None:
            entry = by_id[row.image.id] = _summary(row.image, request.version)
        if row.repository != "<none>":
            entry["RepoTags"].append(f"{row.repository}:{row.tag}")
    for entry in by_id.values():
        if request.version < (1, 43) and not entry["RepoTags"] and not entry["RepoDigests"]:
            entry["RepoTags"] = ["<none>:<none>"]
            entry["RepoDigests"] = ["<none>@<none>"]
    return Response(body=list(by_id.values()))


def _summary(image: Image, version: tuple[int, int]) -> dict[str, Any]:
    labels = (image.config.get("config") or {}).get("Labels") or {}
    out: dict[str, Any] = {
        "Id": image.id,
        "ParentId": image.parent_id or "",
        "RepoTags": [],
        "RepoDigests": images.familiar_digests(image),
        "Created": _unix(image.created or image.config.get("created")),
        "Size": image.size,
        "SharedSize": -1,
        "Labels": labels,
        "Containers": -1,
    }
    if version < (1, 44):
        out["VirtualSize"] = image.size
    return out


def _unix(value: datetime | str | None) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return 0
    return int(value.timestamp())


@route("GET", "/images/{name:path}/json")
def inspect_image(request: Request) -> Response:
    data = images.inspect(request.params["name"])
    data.setdefault("DockerVersion", "")
    data["GraphDriver"] = {"Name": "overlay2", "Data": None}
    if request.version < (1, 44):
        data["VirtualSize"] = data.get("Size", 0)
    if request.version < (1, 45):
        data["Container"] = ""
        data["ContainerConfig"] = {}
    return Response(body=data)


@route("GET", "/images/{name:path}/history")
def image_history(request: Request) -> Response:
    entries = images.history(request.params["name"])
    for entry in entries:
        entry["Created"] = _unix(entry.get("Created"))
    return Response(body=entries)


# -- tag, remove, prune -----------------------------------------------------------------------------


@route("POST", "/images/{name:path}/tag")
def tag_image(request: Request) -> Response:
    repo = request.arg("repo") or ""
    tag = request.arg("tag") or ""
    if not repo:
        raise InvalidArgument(
            "repository name must have at least one component (the repo parameter is empty)"
        )
    if tag and not refs.is_valid_tag(tag):
        raise InvalidArgument(f"invalid tag format: {tag!r}")
    parsed = refs.parse_image(repo, default_tag=None)
    if parsed.digest or (parsed.tag and tag):
        raise InvalidArgument(f"invalid repository name {repo!r}: give the tag in the tag parameter")
    if parsed.familiar_repository() == "sha256":
        raise InvalidArgument("refusing to create an ambiguous tag using digest algorithm as name")
    target = f"{repo}:{tag}" if tag else repo
    images.tag(request.params["name"], target)
    return Response(status=201)


@route("DELETE", "/images/{name:path}")
def remove_image(request: Request) -> Response:
    name = request.params["name"]
    if not name.strip():
        raise InvalidArgument("image name cannot be blank")
    try:
        removed = images.remove(name, force=request.flag("force"))
    except InUse as exc:
        raise ApiError(409, f"conflict: {exc}") from None
    return Response(body=removed)


@route("POST", "/images/prune")
def prune_images(request: Request) -> Response:
    filters = request.filters()
    unknown = set(filters) - {"dangling"}
    if unknown:
        raise InvalidArgument(f"invalid filter {sorted(unknown)[0]!r} (images prune supports dangling)")
    dangling = [v.lower() for v in filters.get("dangling", [])]
    for value in dangling:
        if value not in ("true", "false", "1", "0"):
            raise InvalidArgument(f"invalid filter 'dangling={value}'")
    everything = bool(dangling) and all(v in ("false", "0") for v in dangling)
    result = images.prune(all=everything)
    return Response(body={"ImagesDeleted": result.deleted or None, "SpaceReclaimed": result.reclaimed})


# -- pull and import ----------------------------------------------------------------------------------


@route("POST", "/images/create")
def create_image(request: Request) -> Stream:
    from_image = request.arg("fromImage") or ""
    from_src = request.arg("fromSrc") or ""
    if from_image:
        return _pull(request, from_image)
    if from_src:
        return _import(request, from_src)
    raise InvalidArgument("either fromImage (pull) or fromSrc (import) is required")


def _pull(request: Request, from_image: str) -> Stream:
    name = from_image.removesuffix(":")  # `pull -a` sends "name:"
    tag = request.arg("tag") or ""
    parsed = refs.parse_image(name, default_tag=None)
    if tag:
        parsed = refs.parse_image(
            f"{parsed.repository}@{tag}" if tag.startswith("sha256:") else f"{parsed.repository}:{tag}"
        )
    elif parsed.tag is None and parsed.digest is None:
        parsed = refs.parse_image(parsed.repository)
    ref = str(parsed)
    platform = request.arg("platform") or None
    credentials = registry_credentials(request)
    pump: Pump[Image] = Pump(
        lambda progress: registry.pull(ref, platform=platform, progress=progress, credentials=credentials),
        name="pull",
        committal=lambda event: not isinstance(event, OutputLine),
    )
    pump.start()
    return Stream(chunks=json_lines(_registry_messages(pump, request)), close=pump.abandon)


def _import(request: Request, from_src: str) -> Stream:
    if from_src != "-":
        raise InvalidArgument(
            "importing from a URL is not supported: send the tarball as the body (fromSrc=-)"
        )
    repo = request.arg("repo") or ""
    tag = request.arg("tag") or ""
    target: str | None = None
    if repo:
        target = str(refs.parse_image(f"{repo}:{tag}" if tag else repo))
    changes = request.query.get("changes", [])
    message = request.arg("message") or ""
    path = spool_body(request.body, prefix="import-")

    def work(progress: Callable[[ProgressEvent], None]) -> Image:
        try:
            with open(path, "rb") as stream:
                return imagetransfer.import_tarball(
                    stream,
                    target,
                    changes_=changes,
                    message=message,
                    size=path.stat().st_size,
                    progress=progress,
                )
        finally:
            path.unlink(missing_ok=True)

    pump: Pump[Image] = Pump(work, name="import")
    pump.start()

    def messages() -> Iterator[dict[str, Any]]:
        throttle = LayerThrottle()
        for event in pump.events(request.gone):
            if isinstance(event, LayerProgress) and throttle.allow(event):
                yield layer_message(event)
        if pump.error is not None:
            yield error_message(pump.error)
        elif pump.result is not None:
            yield status_message(pump.result.id)

    return Stream(chunks=json_lines(messages()), close=pump.abandon)


def _registry_messages(pump: Pump[Any], request: Request) -> Iterator[dict[str, Any]]:
    """Pull and push progress as Docker's JSON messages, then its error line if the work failed."""
    seen: set[str] = set()
    throttle = LayerThrottle()
    for event in pump.events(request.gone):
        if isinstance(event, LayerProgress):
            if not throttle.allow(event):
                continue
            if event.id not in seen and event.status == "Downloading":
                yield {"status": "Pulling fs layer", "progressDetail": {}, "id": event.id}
            if event.id not in seen and event.status == "Pushing":
                yield {"status": "Preparing", "progressDetail": {}, "id": event.id}
            seen.add(event.id)
            yield layer_message(event)
        elif isinstance(event, OutputLine):
            where, sep, rest = event.text.partition(": Pulling from ")
            yield status_message(f"Pulling from {rest}", id=where) if sep else status_message(event.text)
        elif isinstance(event, StepProgress):
            yield status_message(event.text)
    if pump.error is not None:
        yield error_message(pump.error)
        return
    result = pump.result
    if isinstance(result, registry.PushResult):
        tag = refs.parse_image(result.reference).tag or "latest"
        yield {"progressDetail": {}, "aux": {"Tag": tag, "Digest": result.digest, "Size": result.size}}


# -- push ------------------------------------------------------------------------------------------


@route("POST", "/images/{name:path}/push")
def push_image(request: Request) -> Stream:
    name = request.params["name"]
    tag = request.arg("tag") or ""
    parsed = refs.parse_image(name)
    if tag:
        if not refs.is_valid_tag(tag):
            raise InvalidArgument(f"invalid tag format: {tag!r}")
        parsed = refs.parse_image(f"{parsed.repository}:{tag}")
    ref = str(parsed)
    credentials = registry_credentials(request)
    # registry.push resolves the image before its first event, so an unknown one is still a 404.
    pump: Pump[registry.PushResult] = Pump(
        lambda progress: registry.push(ref, progress=progress, credentials=credentials), name="push"
    )
    pump.start()
    return Stream(chunks=json_lines(_registry_messages(pump, request)), close=pump.abandon)


# -- load and save -----------------------------------------------------------------------------------


@route("POST", "/images/load")
def load_images(request: Request) -> Stream:
    quiet = request.flag("quiet", default=True)
    path = spool_body(request.body, prefix="load-")

    def work(progress: Callable[[ProgressEvent], None]) -> list[tuple[Image, list[str]]]:
        try:
            return imagetransfer.load(path, progress=progress)
        finally:
            path.unlink(missing_ok=True)

    pump: Pump[list[tuple[Image, list[str]]]] = Pump(work, name="load")
    try:
        pump.start()
    except EngineError as exc:
        # The archive's temp name means nothing to the client.
        raise ApiError(
            exc.status, str(exc).replace(f"{path}: ", "").replace(str(path), "the archive")
        ) from None

    def messages() -> Iterator[dict[str, Any]]:
        throttle = LayerThrottle()
        for event in pump.events(request.gone):
            if isinstance(event, LayerProgress) and not quiet and throttle.allow(event):
                yield layer_message(event)
        if pump.error is not None:
            yield error_message(str(pump.error).replace(str(path), "the archive"))
            return
        for image, tags in pump.result or []:
            if tags:
                for tag in tags:
                    yield {"stream": f"Loaded image: {tag}\n"}
            else:
                yield {"stream": f"Loaded image ID: {image.id}\n"}

    return Stream(chunks=json_lines(messages()), close=pump.abandon)


@route("GET", "/images/get")
def save_images(request: Request) -> Stream:
    names = [n for value in request.query.get("names", []) for n in value.split(",") if n]
    return _save(request, names)


@route("GET", "/images/{name:path}/get")
def save_image(request: Request) -> Stream:
    return _save(request, [request.params["name"]])


def _save(request: Request, names: list[str]) -> Stream:
    """Stream `imagetransfer.save` through a pipe: the archive is never held whole in memory."""
    if not names:
        raise InvalidArgument("no images given: use names=NAME (repeatable)")
    for name in names:
        images.resolve(name)  # an unknown name is a 404 before the tar starts
    read_fd, write_fd = os.pipe()
    reader = os.fdopen(read_fd, "rb")
    context = contextvars.copy_context()

    def write() -> None:
        from django.db import connections

        try:
            with os.fdopen(write_fd, "wb") as out:
                imagetransfer.save(names, out)
        except (EngineError, OSError) as exc:
            log.warning("image save of %s stopped: %s", ", ".join(names), exc)
        finally:
            connections.close_all()

    threading.Thread(target=context.run, args=(write,), name="api-save", daemon=True).start()

    def chunks() -> Iterator[bytes]:
        while True:
            data = reader.read1(PIPE_CHUNK)
            if not data:
                return
            yield data

    def close() -> None:
        with contextlib.suppress(OSError):
            reader.close()  # the writer then fails with EPIPE and stops

    return Stream(chunks=chunks(), content_type=TAR_TYPE, close=close)
