"""Docker API: volumes endpoints (ls, create, inspect, rm, prune) over services/volumes.py."""

from __future__ import annotations

from typing import Any

from engine.api import fields
from engine.api.http import Request, Response, no_content
from engine.api.router import route
from engine.errors import InUse, InvalidArgument, VolumeNotFound
from engine.models import Volume
from engine.services import volumes

_LIST_FILTERS = ("dangling", "driver", "label", "name")
_PRUNE_FILTERS = ("label", "label!", "all")


def volume_shape(volume: Volume, *, usage: tuple[int, int] | None = None) -> dict[str, Any]:
    """Docker's Volume object; `usage` (size, ref count) adds UsageData as `system df` does."""
    shape = {
        "CreatedAt": volume.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Driver": volume.driver,
        "Labels": dict(volume.labels or {}),
        "Mountpoint": volumes.mountpoint(volume),
        "Name": volume.name,
        "Options": dict(volume.options or {}),
        "Scope": "local",
    }
    if usage is not None:
        shape["UsageData"] = {"Size": usage[0], "RefCount": usage[1]}
    return shape


@route("GET", "/volumes")
def list_volumes(request: Request) -> Response:
    filters = request.filters(_LIST_FILTERS)
    drivers = filters.pop("driver", [])
    found = volumes.list_volumes(filters=filters)
    if drivers:
        found = [v for v in found if v.driver in drivers]
    return Response(body={"Volumes": [volume_shape(v) for v in found], "Warnings": []})


@route("POST", "/volumes/create")
def create_volume(request: Request) -> Response:
    body = request.json_object(required=False)
    name = body.get("Name") or None
    if name is not None and not isinstance(name, str):
        raise InvalidArgument("Name must be a string")
    driver = body.get("Driver") or "local"
    if not isinstance(driver, str):
        raise InvalidArgument("Driver must be a string")
    volume = volumes.create(
        name,
        labels=fields.string_map(body.get("Labels"), "Labels"),
        options=fields.string_map(body.get("DriverOpts"), "DriverOpts"),
        driver=driver,
    )
    return Response(status=201, body=volume_shape(volume))


@route("POST", "/volumes/prune")
def prune_volumes(request: Request) -> Response:
    filters = request.filters(_PRUNE_FILTERS)
    every = any(v.lower() in ("1", "true") for v in filters.pop("all", []))
    if request.version < (1, 42):
        every = True  # as moby: before API 1.42 prune removed every unused volume, named or not
    excluded = filters.pop("label!", [])
    if excluded:
        result = _prune_excluding(filters, excluded, every)
    else:
        result = volumes.prune(all=every, filters=filters)
    return Response(body={"VolumesDeleted": result.removed, "SpaceReclaimed": result.reclaimed})


def _prune_excluding(filters: dict[str, list[str]], excluded: list[str], every: bool) -> volumes.PruneResult:
    """Prune with `label!` filters, which the service does not know: remove the survivors one by one."""
    keep = {v.pk for spec in excluded for v in volumes.list_volumes(filters={"label": [spec]})}
    removed: list[str] = []
    reclaimed = 0
    for volume in volumes.list_volumes(filters={**filters, "dangling": ["true"]}):
        if volume.pk in keep or not (volume.anonymous or every):
            continue
        used = volumes.size(volume)
        try:
            volumes.remove(volume.name)
        except (InUse, VolumeNotFound):
            continue  # taken into use or removed meanwhile
        removed.append(volume.name)
        reclaimed += used
    return volumes.PruneResult(removed=removed, reclaimed=reclaimed)


@route("GET", "/volumes/{name}")
def inspect_volume(request: Request) -> Response:
    return Response(body=volume_shape(volumes.get(request.params["name"])))


@route("DELETE", "/volumes/{name}")
def remove_volume(request: Request) -> Response:
    volumes.remove(request.params["name"], force=request.flag("force"))
    return no_content()
