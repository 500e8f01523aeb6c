"""Docker API: container records and lifecycle (list, create, inspect, start … prune, top, changes).

The list (`GET /containers/json`, its filters and entries) is in containerlist.py; streams (wait, logs,
stats) are in containerstreams.py; attach, exec, archive, export and update
belong to their own modules. Each handler resolves first, so an unknown container is a 404 in
Docker's words ("No such container: x") before anything else happens.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from django.utils import timezone

from engine.api import containerformat as fmt
from engine.api import createspec
from engine.api.containerlist import layer_size
from engine.api.http import ApiError, Request, Response, no_content, not_modified
from engine.api.router import route
from engine.errors import CommandNotRunnable, ContainerNotFound, EngineError, ImageNotFound, InvalidArgument
from engine.models import Container, ContainerState
from engine.services import containerinfo, containers, lifecycle, networks

PRUNE_FILTERS = ("until", "label", "label!")
PRUNABLE = (ContainerState.CREATED, ContainerState.EXITED, ContainerState.DEAD)
TOP_TITLES = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]


@contextlib.contextmanager
def docker_not_found(ref: str) -> Iterator[None]:
    """Say "No such container: x" as Docker does (the CLI's inspect fallback reads the 404 only)."""
    try:
        yield
    except ContainerNotFound:
        raise ApiError(404, f"No such container: {ref}") from None


def resolve(ref: str) -> Container:
    with docker_not_found(ref):
        return containers.resolve(ref)


def _act(request: Request, action: Callable[[str], object]) -> Response:
    """Run one lifecycle action on the container the path names; 204, or Docker's 404."""
    c = resolve(request.params["id"])
    with docker_not_found(request.params["id"]):
        action(c.id)
    return no_content()


def current(ref: str) -> Container:
    """The container reconciled with the runtime (its state is the truth now)."""
    with docker_not_found(ref):
        return containerinfo.get(ref)


# -- create and inspect ---------------------------------------------------------------------------


@route("POST", "/containers/create")
def create(request: Request) -> Response:
    name = request.arg("name") or None
    spec = createspec.parse_create(request.json_object(), name=name)
    try:
        container = containers.create(spec.options)
    except ImageNotFound:
        # The CLI pulls on a 404 and creates again: Docker's own words, with the name as given.
        raise ApiError(404, f"No such image: {spec.options.image}") from None
    try:
        for extra in spec.extra_networks:
            networks.connect(extra.name, container.id, ip=extra.ip, aliases=extra.aliases)
    except EngineError:
        lifecycle.remove(container.id, force=True, volumes=True)
        raise
    return Response(status=201, body={"Id": container.id, "Warnings": []})


@route("GET", "/containers/{id}/json")
def inspect(request: Request) -> Response:
    ref = request.params["id"]
    with docker_not_found(ref):
        data = containerinfo.inspect(ref)
    data.setdefault("ExecIDs", None)
    data.setdefault("MountLabel", "")
    data.setdefault("ProcessLabel", "")
    data.setdefault("AppArmorProfile", "")
    config = data.get("Config") or {}
    config.setdefault("Domainname", "")
    config.setdefault("AttachStdout", True)
    config.setdefault("AttachStderr", True)
    config.setdefault("OnBuild", None)
    log_config = data.setdefault("HostConfig", {}).setdefault("LogConfig", {"Config": {}})
    if log_config.get("Type") in (None, "", "k8s-file"):
        # docker-py's run() and compose read logs only from the drivers they know can be read
        # back; Berth's capped log file serves `logs` exactly as json-file does.
        log_config["Type"] = "json-file"
    if request.flag("size"):
        c = resolve(data["Id"])
        data["SizeRw"] = layer_size(c)
        data["SizeRootFs"] = data["SizeRw"] + (c.image.size or 0)
    return Response(body=data)


# -- lifecycle --------------------------------------------------------------------------------------


@route("POST", "/containers/{id}/start")
def start(request: Request) -> Response:
    c = current(request.params["id"])
    if c.state == ContainerState.RUNNING:
        return not_modified()
    try:
        with docker_not_found(request.params["id"]):
            lifecycle.start(c.id)
    except CommandNotRunnable as exc:
        # The command could not be run (not found, not executable): the request was at fault.
        raise ApiError(400, str(exc)) from None
    return no_content()


def _timeout(request: Request) -> int | None:
    return request.int_arg("t")


@route("POST", "/containers/{id}/stop")
def stop(request: Request) -> Response:
    c = current(request.params["id"])
    if c.state not in lifecycle.ACTIVE:
        return not_modified()
    with docker_not_found(request.params["id"]):
        lifecycle.stop(c.id, timeout=_timeout(request), signal=request.arg("signal") or None)
    return no_content()


@route("POST", "/containers/{id}/restart")
def restart(request: Request) -> Response:
    return _act(request, lambda cid: lifecycle.restart(cid, timeout=_timeout(request)))


@route("POST", "/containers/{id}/kill")
def kill(request: Request) -> Response:
    return _act(request, lambda cid: lifecycle.kill(cid, signal=request.arg("signal") or "KILL"))


@route("POST", "/containers/{id}/pause")
def pause(request: Request) -> Response:
    return _act(request, lifecycle.pause)


@route("POST", "/containers/{id}/unpause")
def unpause(request: Request) -> Response:
    return _act(request, lifecycle.unpause)


@route("POST", "/containers/{id}/rename")
def rename(request: Request) -> Response:
    c = resolve(request.params["id"])
    new_name = request.arg("name")
    if not new_name:
        raise InvalidArgument("the new name is required: POST /containers/{id}/rename?name=NEW")
    with docker_not_found(request.params["id"]):
        containers.rename(c.id, new_name)
    return no_content()


@route("DELETE", "/containers/{id}")
def remove(request: Request) -> Response:
    ref = request.params["id"]
    if request.flag("link"):
        raise InvalidArgument("links are not supported by Berth: there is no link to remove")
    c = resolve(ref)
    with docker_not_found(ref):
        lifecycle.remove(c.id, force=request.flag("force"), volumes=request.flag("v"))
    return no_content()


@route("POST", "/containers/prune")
def prune(request: Request) -> Response:
    filters = request.filters(PRUNE_FILTERS)
    now = timezone.now()
    until = [fmt.parse_until(v, now=now) for v in filters.get("until", [])]
    deleted = []
    reclaimed = 0
    for c in containers.list_containers(all=True):
        try:
            c = lifecycle.refresh(c)
        except ContainerNotFound:
            continue
        if c.state not in PRUNABLE:
            continue
        if any(c.created >= when for when in until):
            continue
        if not all(fmt.label_matches(c.labels, v) for v in filters.get("label", [])):
            continue
        if any(fmt.label_matches(c.labels, v) for v in filters.get("label!", [])):
            continue
        size = layer_size(c)
        try:
            lifecycle.remove(c.id)
        except EngineError:
            continue  # started or removed meanwhile: not ours to prune
        deleted.append(c.id)
        reclaimed += size
    return Response(body={"ContainersDeleted": deleted, "SpaceReclaimed": reclaimed})


# -- top and changes ------------------------------------------------------------------------------


@route("GET", "/containers/{id}/top")
def top(request: Request) -> Response:
    ref = request.params["id"]
    ps_args = (request.arg("ps_args") or "").strip()
    if ps_args not in ("", "-ef", "-e", "-f", "ef", "-A", "-Af"):
        raise InvalidArgument(f"ps_args {ps_args!r} is not supported: Berth lists processes as `ps -ef` does")
    c = resolve(ref)
    with docker_not_found(ref):
        processes = containerinfo.top(c.id)
    return Response(
        body={
            "Titles": TOP_TITLES,
            "Processes": [
                [p.uid, str(p.pid), str(p.ppid), str(p.c), p.stime, p.tty, p.time, p.cmd] for p in processes
            ],
        }
    )


@route("GET", "/containers/{id}/changes")
def changes(request: Request) -> Response:
    ref = request.params["id"]
    c = resolve(ref)
    with docker_not_found(ref):
        found = containerinfo.diff(c.id)
    return Response(body=[{"Path": path, "Kind": fmt.CHANGE_KINDS[kind]} for kind, path in found])
