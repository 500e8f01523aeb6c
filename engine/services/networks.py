"""Networks: create, list, inspect, remove, prune, connect and disconnect.

The predefined `bridge`, `host` and `none` exist from first use, as in Docker. A bridge network's
device is made when the network is created (the default bridge's when a container first needs
it); what runs inside containers is wired by services/netsetup.py.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from engine import conf, events, locks
from engine.errors import AlreadyExists, InUse, InvalidArgument, InvalidState, NetworkNotFound
from engine.models import Container, ContainerState, Endpoint, Network
from engine.net import ipam, links
from engine.services import containers, netsetup, refs

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
PREDEFINED = ("bridge", "host", "none")
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"
SUPPORTED_OPTIONS = {BRIDGE_NAME_OPTION}


def ensure_predefined() -> None:
    """Create the rows of bridge, host and none if missing (the default bridge picks a free subnet)."""
    if Network.objects.filter(name__in=PREDEFINED).count() == len(PREDEFINED):
        return
    with locks.locked("network", "create"):
        for name in ("host", "none"):
            if not Network.objects.filter(name=name).exists():
                Network.objects.create(
                    id=secrets.token_hex(32),
                    name=name,
                    driver="null" if name == "none" else name,
                    predefined=True,
                )
        if not Network.objects.filter(name="bridge").exists():
            subnet = ipam.choose_subnet(ipam.DEFAULT_BRIDGE_POOL + ipam.USER_POOLS, netsetup.taken_subnets())
            if subnet is None:
                raise InvalidState("no free subnet for the default bridge network")
            Network.objects.create(
                id=secrets.token_hex(32),
                name="bridge",
                driver="bridge",
                bridge=f"{conf.net_tag()}0"[:15],
                subnet=str(subnet.network),
                gateway=str(subnet.gateway),
                predefined=True,
                options={BRIDGE_NAME_OPTION: f"{conf.net_tag()}0"[:15]},
            )


def resolve(ref: str) -> Network:
    """A network by full ID, name or unique ID prefix; NetworkNotFound otherwise."""
    ref = ref.strip()
    if ref:
        ensure_predefined()
    found = refs.find(Network, ref, what="network")
    if found is None:
        raise NetworkNotFound(f"network {ref} not found")
    return found


def validate_name(name: str) -> str:
    if not _NAME.fullmatch(name) or len(name) > 255:
        raise InvalidArgument(f"invalid network name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name


def create(
    name: str,
    *,
    driver: str = "bridge",
    subnet: str = "",
    gateway: str = "",
    ip_range: str = "",
    internal: bool = False,
    labels: dict[str, str] | None = None,
    options: dict[str, str] | None = None,
) -> Network:
    """Create a user bridge network and its bridge device. Leaves nothing behind on failure."""
    validate_name(name)
    if driver != "bridge":
        raise InvalidArgument(f"network driver {driver!r} is not supported (only bridge)")
    if name in PREDEFINED:
        raise InvalidArgument(f"{name} is a pre-defined network and cannot be created")
    for key in options or {}:
        if key not in SUPPORTED_OPTIONS:
            raise InvalidArgument(f"unknown network option {key!r} (supported: {BRIDGE_NAME_OPTION})")
    if (gateway or ip_range) and not subnet:
        raise InvalidArgument("--gateway and --ip-range need a --subnet")
    ensure_predefined()
    network_id = secrets.token_hex(32)
    bridge = (options or {}).get(BRIDGE_NAME_OPTION) or f"br-{network_id[:12]}"
    _check_bridge_name(bridge)
    with locks.locked("network", "create"):
        if Network.objects.filter(name=name).exists():
            raise AlreadyExists(f"network with name {name} already exists")
        taken = netsetup.taken_subnets()
        if subnet:
            chosen = ipam.parse_subnet(subnet, gateway=gateway, ip_range=ip_range)
            clash = ipam.overlapping(chosen.network, taken)
            if clash is not None:
                raise InUse(f"subnet {chosen.network} overlaps {clash}, which is already in use on this host")
        else:
            found = ipam.choose_subnet(ipam.USER_POOLS, taken)
            if found is None:
                raise InvalidState("no free subnet left in the address pools", hint="give one with --subnet")
            chosen = found
        if Network.objects.filter(bridge=bridge).exists() or links.exists(bridge):
            raise AlreadyExists(f"a network device named {bridge} already exists")
        try:
            network = Network.objects.create(
                id=network_id,
                name=name,
                driver=driver,
                bridge=bridge,
                subnet=str(chosen.network),
                gateway=str(chosen.gateway),
                ip_range=str(chosen.ip_range) if ip_range else "",
                internal=internal,
                labels=dict(labels or {}),
                options=dict(options or {}),
                created_by=events.current_actor(),
            )
        except IntegrityError:
            raise AlreadyExists(f"network with name {name} already exists") from None
        try:
            netsetup.bring_up(network)
        except Exception:
            network.delete()
            netsetup.bring_down(bridge)
            raise
    events.record("network", "create", object_id=network.id, object_name=name, attributes={"driver": driver})
    return network


def _check_bridge_name(name: str) -> None:
    if not 0 < len(name) <= 15 or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise InvalidArgument(f"invalid bridge name {name!r}: up to 15 letters, digits, '.', '-' or '_'")


def list_networks(*, filters: dict[str, list[str]] | None = None) -> list[Network]:
    ensure_predefined()
    found = list(Network.objects.all())
    for key, values in (filters or {}).items():
        found = [n for n in found if _matches(n, key, values)]
    return found


def _matches(network: Network, key: str, values: list[str]) -> bool:
    if key == "name":
        return any(v in network.name for v in values)
    if key == "id":
        return any(network.id.startswith(v) for v in values)
    if key == "driver":
        return network.driver in values
    if key == "type":
        kinds = {"builtin" if network.predefined else "custom"}
        return bool(kinds & set(values))
    if key == "label":
        return all(_label_matches(network.labels, v) for v in values)
    if key == "dangling":
        dangling = not network.predefined and not network.endpoints.exists()
        return any((v.lower() in ("true", "1")) == dangling for v in values)
    raise InvalidArgument(f"invalid filter {key!r} (use name, id, driver, type, label or dangling)")


def _label_matches(labels: dict[str, str], spec: str) -> bool:
    key, sep, value = spec.partition("=")
    return key in labels and (not sep or labels[key] == value)


def members(network: Network) -> list[Endpoint]:
    return list(network.endpoints.select_related("container").order_by("container__name"))


def inspect(ref: str) -> dict[str, Any]:
    """Docker's shape of `network inspect`, with the connected containers and their addresses."""
    network = resolve(ref)
    config = []
    if network.subnet:
        entry = {"Subnet": network.subnet, "Gateway": network.gateway}
        if network.ip_range:
            entry["IPRange"] = network.ip_range
        config.append(entry)
    return {
        "Name": network.name,
        "Id": network.id,
        "Created": network.created.isoformat(),
        "Scope": "local",
        "Driver": network.driver,
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": {}, "Config": config},
        "Internal": network.internal,
        "Attachable": False,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": {
            e.container_id: {
                "Name": e.container.name,
                "EndpointID": _endpoint_id(e),
                "MacAddress": e.mac,
                "IPv4Address": f"{e.ip}/{ipaddress.ip_network(network.subnet).prefixlen}",
                "IPv6Address": "",
            }
            for e in members(network)
            if netsetup.netns_path(e.container_id).exists()  # Docker lists the running ones
        },
        "Options": dict(network.options),
        "Labels": dict(network.labels),
    }


def _endpoint_id(endpoint: Endpoint) -> str:
    return f"{endpoint.pk:064x}"


def remove(ref: str) -> Network:
    """Remove a user network and its bridge; refused while any container is connected."""
    network = resolve(ref)
    if network.predefined:
        raise InvalidArgument(f"{network.name} is a pre-defined network and cannot be removed")
    with locks.locked("network", "create"):
        users = sorted(network.endpoints.values_list("container__name", flat=True))
        if users:
            raise InUse(
                f"network {network.name} is in use by container(s) {', '.join(users)}",
                hint="disconnect or remove them first",
            )
        network_id, bridge = network.id, network.bridge
        try:
            network.delete()
        except ProtectedError:  # a container joined between the check and the delete
            raise InUse(
                f"network {network.name} is in use", hint="disconnect or remove its containers first"
            ) from None
        netsetup.bring_down(bridge)
    events.record("network", "destroy", object_id=network_id, object_name=network.name)
    return network


def prune(*, filters: dict[str, list[str]] | None = None) -> list[str]:
    """Remove every user network no container is connected to; return their names."""
    removed = []
    for network in list_networks(filters=filters):
        if network.predefined or network.endpoints.exists():
            continue
        try:
            remove(network.id)
        except (InUse, NetworkNotFound):
            continue  # joined or removed meanwhile
        removed.append(network.name)
    return removed


def connect(
    network_ref: str, container_ref: str, *, ip: str | None = None, aliases: tuple[str, ...] = ()
) -> Endpoint:
    """Connect a container to a network; a running one gets its interface at once."""
    network = resolve(network_ref)
    container = containers.resolve(container_ref)
    if network.driver != "bridge":
        raise InvalidArgument(
            f"container cannot be connected to the {network.name} network", hint="use --network at create"
        )
    mode = container.host_config.get("NetworkMode", "")
    if mode in ("host", "none") or mode.startswith("container:"):
        raise InvalidArgument(
            f"container {container.name} uses network mode {mode} and cannot join other networks"
        )
    with locks.locked("container", container.id):
        containers_fresh = Container.objects.filter(id=container.id).first()
        if containers_fresh is None:
            raise containers.ContainerNotFound(f"no such container: {container_ref}")
        container = containers_fresh
        if container.endpoints.filter(network=network).exists():
            raise AlreadyExists(f"container {container.name} is already connected to network {network.name}")
        endpoint = netsetup.lease(container, network, ip=ip, aliases=aliases)
        if container.state in (ContainerState.RUNNING, ContainerState.PAUSED):
            try:
                netsetup.plug_running(container, endpoint)
            except Exception:
                endpoint.delete()  # plug_running took back what it made
                raise
    events.record(
        "network",
        "connect",
        object_id=network.id,
        object_name=network.name,
        attributes={"container": container.id},
    )
    return endpoint


def disconnect(network_ref: str, container_ref: str, *, force: bool = False) -> None:
    """Disconnect a container from a network, releasing its address."""
    network = resolve(network_ref)
    container = containers.resolve(container_ref)
    with locks.locked("container", container.id):
        endpoint = Endpoint.objects.filter(network=network, container_id=container.id).first()
        if endpoint is None:
            if force:
                return
            raise InvalidState(f"container {container.name} is not connected to network {network.name}")
        container.refresh_from_db()
        if container.state in (ContainerState.RUNNING, ContainerState.PAUSED):
            netsetup.unplug_running(container, endpoint)
        with transaction.atomic():
            endpoint.delete()
        netsetup.sync_rules()  # a published port must stop reaching the released address
        netsetup.sync_dns()
    events.record(
        "network",
        "disconnect",
        object_id=network.id,
        object_name=network.name,
        attributes={"container": container.id},
    )


def teardown_host() -> list[str]:
    """Take this engine's network objects off the host: bridges, the nft table, the DNS server.

    Refused while any container runs. The records stay: bridges come back at next use. Returns the
    bridges removed. For uninstalling, and for tests that must leave the host as they found it.
    """
    running = list(Container.objects.filter(state__in=netsetup.RUNNING).values_list("name", flat=True)[:5])
    if running:
        raise InUse(f"containers are running: {', '.join(running)}", hint="stop them first")
    removed = []
    for network in Network.objects.filter(driver="bridge").exclude(bridge=""):
        if links.exists(network.bridge):
            links.delete(network.bridge)
            removed.append(network.bridge)
    netsetup.clear_host_state()
    events.record("network", "teardown", attributes={"bridges": ",".join(removed)})
    return removed
