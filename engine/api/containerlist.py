"""Docker API: the container list (`GET /containers/json`): Docker's list filters, and one list entry
(also used by `system/df`), with the mounts and writable-layer size that inspect and prune report too.
"""

from __future__ import annotations

import contextlib
import os
import re
from typing import Any

from django.utils import timezone

from engine.api import containerformat as fmt
from engine.api.http import Request, Response
from engine.api.router import route
from engine.errors import ContainerNotFound, InvalidArgument
from engine.models import Container
from engine.services import bundle, containers, healthconfig, lifecycle, netsetup, volumes

# Filters the containers service applies itself; the rest are applied here.
SERVICE_FILTERS = ("status", "label", "ancestor", "id", "exited", "health")
LIST_FILTERS = (
    *SERVICE_FILTERS,
    "name",
    "before",
    "since",
    "network",
    "volume",
    "publish",
    "expose",
    "is-task",
    "isolation",
)
_PORT_FILTER = re.compile(r"^(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp))?$")


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
    from engine.api.containers import resolve  # it imports this module

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
        )
        + healthconfig.status_suffix(c),
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
