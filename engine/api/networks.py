"""Docker API: networks endpoints (ls, inspect, create, rm, connect, disconnect, prune).

Status codes follow moby where clients look at them: a duplicate name is 409, removing a network
with connected containers or a pre-defined one is 403 with moby's words.
"""

from __future__ import annotations

from typing import Any

from engine.api import fields
from engine.api.http import ApiError, Request, Response
from engine.api.router import route
from engine.api.system import parse_timestamp
from engine.errors import InUse, InvalidArgument, NetworkNotFound
from engine.services import networks

_LIST_FILTERS = ("name", "id", "driver", "type", "label", "dangling", "scope")
_PRUNE_FILTERS = ("label", "label!", "until")


@route("GET", "/networks")
def list_networks(request: Request) -> Response:
    filters = request.filters(_LIST_FILTERS)
    scopes = filters.pop("scope", [])
    if scopes and "local" not in scopes:
        return Response(body=[])
    shapes = []
    for network in networks.list_networks(filters=filters):
        shape = networks.inspect(network.id)
        shape["Containers"] = {}  # moby lists networks without their endpoints
        shapes.append(shape)
    return Response(body=shapes)


@route("GET", "/networks/{id}")
def inspect_network(request: Request) -> Response:
    scope = request.arg("scope")
    if scope and scope != "local":
        raise ApiError(404, f"network {request.params['id']} not found")
    return Response(body=networks.inspect(request.params["id"]))


@route("POST", "/networks/create")
def create_network(request: Request) -> Response:
    body = request.json_object()
    name = fields.string(body, "Name")
    if not name:
        raise InvalidArgument("a network needs a Name")
    if body.get("EnableIPv6") or body.get("EnableIPv4") is False:
        raise InvalidArgument("Berth's networks are IPv4 only: EnableIPv6 is not supported")
    for flag in ("Ingress", "ConfigOnly"):
        if body.get(flag):
            raise InvalidArgument(f"{flag} networks are a swarm feature that Berth does not support")
    subnet, gateway, ip_range = _ipam(body.get("IPAM"))
    network = networks.create(
        name,
        driver=fields.string(body, "Driver") or "bridge",
        subnet=subnet,
        gateway=gateway,
        ip_range=ip_range,
        internal=bool(body.get("Internal")),
        labels=fields.string_map(body.get("Labels"), "Labels"),
        options=fields.string_map(body.get("Options"), "Options"),
    )
    return Response(status=201, body={"Id": network.id, "Warning": ""})


def _ipam(ipam: Any) -> tuple[str, str, str]:
    """The one IPv4 pool Berth supports from Docker's IPAM object: (subnet, gateway, ip range)."""
    if ipam is None:
        return "", "", ""
    if not isinstance(ipam, dict):
        raise InvalidArgument("IPAM must be an object")
    driver = ipam.get("Driver") or "default"
    if driver != "default":
        raise InvalidArgument(f"IPAM driver {driver!r} is not supported (only 'default')")
    configs = ipam.get("Config") or []
    if not isinstance(configs, list) or not all(isinstance(c, dict) for c in configs):
        raise InvalidArgument("IPAM.Config must be a list of objects")
    if len(configs) > 1:
        raise InvalidArgument("only one IPAM pool (one IPv4 subnet) per network is supported")
    if not configs:
        return "", "", ""
    config = configs[0]
    if config.get("AuxiliaryAddresses"):
        raise InvalidArgument("auxiliary addresses are not supported")
    return fields.string(config, "Subnet"), fields.string(config, "Gateway"), fields.string(config, "IPRange")


@route("DELETE", "/networks/{id}")
def remove_network(request: Request) -> Response:
    network = networks.resolve(request.params["id"])
    if network.predefined:
        raise ApiError(403, f"{network.name} is a pre-defined network and cannot be removed")
    try:
        networks.remove(network.id)
    except InUse:
        raise ApiError(
            403,
            f"error while removing network: network {network.name} id {network.id} has active endpoints",
        ) from None
    return Response(status=204)


@route("POST", "/networks/{id}/connect")
def connect(request: Request) -> Response:
    body = request.json_object()
    container = fields.string(body, "Container")
    if not container:
        raise InvalidArgument("Container is required")
    config = body.get("EndpointConfig") or {}
    if not isinstance(config, dict):
        raise InvalidArgument("EndpointConfig must be an object")
    ipam = config.get("IPAMConfig") or {}
    if not isinstance(ipam, dict):
        raise InvalidArgument("EndpointConfig.IPAMConfig must be an object")
    if ipam.get("IPv6Address"):
        raise InvalidArgument("IPv6 addresses are not supported")
    aliases = config.get("Aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise InvalidArgument("EndpointConfig.Aliases must be a list of strings")
    networks.connect(
        request.params["id"], container, ip=fields.string(ipam, "IPv4Address") or None, aliases=tuple(aliases)
    )
    return Response(status=200)


@route("POST", "/networks/{id}/disconnect")
def disconnect(request: Request) -> Response:
    body = request.json_object()
    container = fields.string(body, "Container")
    if not container:
        raise InvalidArgument("Container is required")
    networks.disconnect(request.params["id"], container, force=bool(body.get("Force")))
    return Response(status=200)


@route("POST", "/networks/prune")
def prune(request: Request) -> Response:
    filters = request.filters(_PRUNE_FILTERS)
    until = [parse_timestamp(v) for v in filters.pop("until", [])]
    excluded = filters.pop("label!", [])
    keep: set[str] = set()
    for spec in excluded:
        keep.update(n.id for n in networks.list_networks(filters={"label": [spec]}))
    if until:
        cutoff = min(until)
        keep.update(n.id for n in networks.list_networks() if n.created.timestamp() >= cutoff)
    if not keep:
        return Response(body={"NetworksDeleted": networks.prune(filters=filters)})
    removed = []
    for network in networks.list_networks(filters={**filters, "dangling": ["true"]}):
        if network.id in keep:
            continue
        try:
            networks.remove(network.id)
        except (InUse, NetworkNotFound):
            continue  # joined or removed meanwhile
        removed.append(network.name)
    return Response(body={"NetworksDeleted": removed})
