"""Docker API: container records and lifecycle (list, create, inspect, start … prune, top, changes).

Streams (wait, logs, stats) are in containerstreams.py; attach, exec, archive, export and update
belong to their own modules. Each handler resolves first, so an unknown container is a 404 in
Docker's words ("No such container: x") before anything else happens.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from typing import Any

from django.utils import timezone

from engine.api import containerformat as fmt
from engine.api import createspec
from engine.api.http import ApiError, Request, Response, no_content, not_modified
from engine.api.router import route
from engine.errors import CommandNotRunnable, ContainerNotFound, EngineError, ImageNotFound, InvalidArgument
from engine.models import Container, ContainerState
from engine.services import bundle, containerinfo, containers, lifecycle, netsetup, networks, volumes

# Filters the containers service applies itself; the rest are applied here.
SERVICE_FILTERS = ("status", "label", "ancestor", "id", "exited")
LIST_FILTERS = (
    *SERVICE_FILTERS,
    "name",
    "before",
    "since",
    "network",
    "volume",
    "publish",
    "expose",
    "health",
    "is-task",
    "isolation",
)
PRUNE_FILTERS = ("until", "label", "label!")
PRUNABLE = (ContainerState.CREATED, ContainerState.EXITED, ContainerState.DEAD)
TOP_TITLES = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
_PORT_FILTER = re.compile(r"^(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp))?$")


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


def current(ref: str) -> Container:
    """The container reconciled with the runtime (its state is the truth now)."""
    with docker_not_found(ref):
        return containerinfo.get(ref)


# -- list -----------------------------------------------------------------------------------------


@route("GET", "/containers/json")
def list_containers(request: Request) -> Response:
    filters = request.filters(LIST_FILTERS)
    show_all = request.flag("all")
    limit = max(request.int_arg("limit", 0) or 0, 0)
    found = containers.list_containers(
        all=show_all, filters={k: v for k, v in filters.items() if k in SERVICE_FILTERS}, last=limit
    )
    rows = []
    for c in found:
        try:
            rows.append(lifecycle.refresh(c))
        except ContainerNotFound:
            continue  # removed while we listed
    if not show_all and not filters.get("status") and not limit:
        rows = [c for c in rows if c.state in lifecycle.ACTIVE]
    rows = _apply_filters(rows, filters)
    size = request.flag("size")
    return Response(body=[list_entry(c, size=size) for c in rows])


def _apply_filters(rows: list[Container], filters: dict[str, list[str]]) -> list[Container]:
    for value in filters.get("name", []):
        rows = [c for c in rows if _name_matches(c.name, value)]
    for key, keep in (
        ("before", lambda c, ref: c.created < ref.created),
        ("since", lambda c, ref: c.created > ref.created),
    ):
        for value in filters.get(key, []):
            pivot = resolve(value)
            rows = [c for c in rows if keep(c, pivot)]
    for value in filters.get("network", []):
        rows = [c for c in rows if value in _network_keys(c)]
    for value in filters.get("volume", []):
        rows = [c for c in rows if any(value in (m.source, m.destination) for m in c.mounts.all())]
    for key in ("publish", "expose"):
        for value in filters.get(key, []):
            wanted = _port_filter(key, value)
            rows = [c for c in rows if wanted & _port_keys(c, published=key == "publish")]
    for value in filters.get("health", []):
        if value not in ("starting", "healthy", "unhealthy", "none"):
            raise InvalidArgument(f"invalid filter 'health={value}'")
        rows = rows if value == "none" else []  # no container has a health check yet
    for value in filters.get("is-task", []):
        if value not in ("true", "false"):
            raise InvalidArgument(f"invalid filter 'is-task={value}'")
        rows = rows if value == "false" else []
    for value in filters.get("isolation", []):
        rows = rows if value in ("default", "") else []
    return rows


def _name_matches(name: str, pattern: str) -> bool:
    # Docker matches the name, with its leading slash, against the value as a regular expression.
    try:
        return re.search(pattern, f"/{name}") is not None
    except re.error:
        return pattern.lstrip("/") in name


def _network_keys(c: Container) -> set[str]:
    keys = {c.host_config.get("NetworkMode") or "bridge"}
    for endpoint in c.endpoints.select_related("network"):
        keys.update((endpoint.network.name, endpoint.network.id))
    return keys


def _port_filter(key: str, value: str) -> set[str]:
    match = _PORT_FILTER.fullmatch(value.strip())
    if not match:
        raise InvalidArgument(f"invalid filter '{key}={value}': use PORT[-PORT][/PROTO]")
    first = int(match.group(1))
    last = int(match.group(2) or first)
    proto = match.group(3) or "tcp"
    if last < first or last - first > 65535:
        raise InvalidArgument(f"invalid filter '{key}={value}': bad port range")
    return {f"{p}/{proto}" for p in range(first, last + 1)}


def _port_keys(c: Container, *, published: bool) -> set[str]:
    if published:
        return set((c.host_config.get("PortBindings") or {}).keys())
    return set((c.config.get("ExposedPorts") or {}).keys())


def list_entry(c: Container, *, size: bool = False) -> dict[str, Any]:
    """One element of Docker's container list."""
    ports: list[dict[str, Any]] = []
    bound = set()
    for b in netsetup.bindings(c):
        ports.append(
            {
                "IP": b.host_ip or "0.0.0.0",
                "PrivatePort": b.container_port,
                "PublicPort": b.host_port,
                "Type": b.proto,
            }
        )
        bound.add(f"{b.container_port}/{b.proto}")
    for key in sorted(c.config.get("ExposedPorts") or {}):
        number, _, proto = key.partition("/")
        if key not in bound and number.isdigit():
            ports.append({"PrivatePort": int(number), "Type": proto or "tcp"})
    entry: dict[str, Any] = {
        "Id": c.id,
        "Names": [f"/{c.name}"],
        "Image": c.image_ref,
        "ImageID": c.image_id,
        "Command": " ".join((c.config.get("Entrypoint") or []) + (c.config.get("Cmd") or [])),
        "Created": int(c.created.timestamp()),
        "Ports": ports,
        "Labels": c.labels or {},
        "State": c.state,
        "Status": fmt.status_text(
            c.state,
            started_at=c.started_at,
            finished_at=c.finished_at,
            exit_code=c.exit_code,
            now=timezone.now(),
        ),
        "HostConfig": {"NetworkMode": c.host_config.get("NetworkMode") or "bridge"},
        "NetworkSettings": {"Networks": netsetup.container_networks(c)},
        "Mounts": mounts(c),
    }
    if size:
        rw = layer_size(c)
        entry["SizeRw"] = rw
        entry["SizeRootFs"] = rw + (c.image.size or 0)
    return entry


def mounts(c: Container) -> list[dict[str, Any]]:
    out = []
    for m in c.mounts.all():  # the list prefetches mounts__volume
        entry: dict[str, Any] = {"Type": m.kind}
        if m.volume:
            entry["Name"] = m.volume.name
        entry.update(
            {
                "Source": volumes.mountpoint(m.volume) if m.volume else m.source,
                "Destination": m.destination,
                "Mode": "ro" if m.read_only else "",
                "RW": not m.read_only,
                "Propagation": "rprivate" if m.kind == "bind" else "",
            }
        )
        if m.volume:
            entry["Driver"] = "local"
        out.append(entry)
    return out


def layer_size(c: Container) -> int:
    """Bytes in the container's writable layer (what `ps -s` and prune report)."""
    total = 0
    for dirpath, _dirnames, filenames in os.walk(bundle.paths(c.id).upper):
        for name in filenames:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


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
    c = resolve(request.params["id"])
    with docker_not_found(request.params["id"]):
        lifecycle.restart(c.id, timeout=_timeout(request))
    return no_content()


@route("POST", "/containers/{id}/kill")
def kill(request: Request) -> Response:
    c = resolve(request.params["id"])
    with docker_not_found(request.params["id"]):
        lifecycle.kill(c.id, signal=request.arg("signal") or "KILL")
    return no_content()


@route("POST", "/containers/{id}/pause")
def pause(request: Request) -> Response:
    c = resolve(request.params["id"])
    with docker_not_found(request.params["id"]):
        lifecycle.pause(c.id)
    return no_content()


@route("POST", "/containers/{id}/unpause")
def unpause(request: Request) -> Response:
    c = resolve(request.params["id"])
    with docker_not_found(request.params["id"]):
        lifecycle.unpause(c.id)
    return no_content()


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
