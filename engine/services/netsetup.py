"""Wiring containers to networks (internal to the services): leases, namespaces, ports, rules, names.

`setup` runs inside bundle.launch under its undo stack: the namespace file, one veth per network,
published ports and their nft rules, DNS records. `teardown` undoes all of it and is safe to call
twice. `sync_rules` and `sync_dns` rebuild the kernel rules and aardvark-dns's files from the
records, under one lock, so concurrent processes cannot interleave stale versions.

Over 400 lines because setup, teardown, live connect and the crash reconcile share the lease, namespace and
rule helpers and must stay symmetric; /etc files live in etcsetup.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import secrets
import socket
from pathlib import Path
from typing import Any

from django.db import IntegrityError, transaction
from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from engine import conf, locks
from engine.errors import ContainerNotFound, EngineError, InUse, InvalidArgument, InvalidState, RuntimeFailure
from engine.models import Container, ContainerState, Endpoint, Network
from engine.net import dns, etcfiles, ipam, links, netns, nft, ports, rules
from engine.runtime import spec
from engine.services import etcsetup
from engine.undo import UndoStack

logger = logging.getLogger(__name__)
RUNNING = (ContainerState.RUNNING, ContainerState.PAUSED, ContainerState.RESTARTING)
LEASE_ATTEMPTS = 64


# -- addresses --------------------------------------------------------------------------------------


def taken_subnets() -> list[ipaddress.IPv4Network]:
    """Subnets a new network must not overlap: every host route but the default, and our networks."""
    taken = [ipaddress.IPv4Network(n.subnet) for n in Network.objects.exclude(subnet="")]
    with IPRoute() as ipr:
        for route in ipr.get_routes(family=socket.AF_INET):
            dst = route.get_attr("RTA_DST")
            if dst and route["dst_len"] > 0:
                taken.append(ipaddress.IPv4Network(f"{dst}/{route['dst_len']}", strict=False))
    return taken


def subnet_of(network: Network) -> ipam.Subnet:
    return ipam.parse_subnet(network.subnet, gateway=network.gateway, ip_range=network.ip_range)


def lease(
    container: Container,
    network: Network,
    *,
    ip: str | None = None,
    aliases: tuple[str, ...] = (),
    mac: str | None = None,
) -> Endpoint:
    """Lease an address on `network` for `container` (a fixed one with `ip`) and record the endpoint.

    Race-free across processes: the (network, ip) unique constraint rejects a second lease of one
    address, and the loser takes the next free one.
    """
    if network.driver != "bridge":
        raise InvalidArgument(f"network {network.name} has no addresses to lease")
    aliases = tuple(etcfiles.validate_alias(a) for a in aliases)
    subnet = subnet_of(network)
    requested = ipam.parse_address(ip) if ip else None
    if requested is not None:
        if network.predefined:
            raise InvalidArgument("user specified IP address is supported on user defined networks only")
        ipam.check_requested(subnet, requested)
    for _ in range(LEASE_ATTEMPTS):
        used = Endpoint.objects.filter(network=network).values_list("ip", flat=True)
        address = requested or ipam.first_free(subnet, used)
        if address is None:
            raise InvalidState(f"network {network.name} has no free addresses left in {subnet.ip_range}")
        try:
            with transaction.atomic():
                return Endpoint.objects.create(
                    network=network,
                    container=container,
                    ip=str(address),
                    mac=mac or ipam.mac_for(address),
                    aliases=list(aliases),
                    ifname=_free_ifname(container),
                )
        except IntegrityError:
            if requested is not None:
                raise InUse(f"address {requested} is already in use on network {network.name}") from None
            if Endpoint.objects.filter(network=network, container=container).exists():
                raise InvalidState(
                    f"container {container.name} is already on network {network.name}"
                ) from None
    raise InvalidState(f"could not lease an address on network {network.name}: too much contention")


def _free_ifname(container: Container) -> str:
    """The container's next interface name: eth0 for its first network, then eth1, … (gaps reused)."""
    used = set(Endpoint.objects.filter(container=container).values_list("ifname", flat=True))
    return next(f"eth{i}" for i in range(len(used) + 1) if f"eth{i}" not in used)


# -- bridges ----------------------------------------------------------------------------------------


def bring_up(network: Network) -> None:
    if network.driver != "bridge":
        return
    links.ensure_bridge(network.bridge, gateway=network.gateway, prefixlen=subnet_of(network).prefixlen)
    sync_rules()


def bring_down(bridge: str) -> None:
    """After a network's row is gone: delete its bridge, then drop its rules and names."""
    if bridge:
        links.delete(bridge)
    sync_rules()
    sync_dns()


# -- a container's network at start ---------------------------------------------------------------


def netns_path(container_id: str) -> Path:
    return conf.netns_dir() / container_id


def setup(container: Container, userdata: Path, *, undo: UndoStack) -> str | None:
    """Wire the container before runc creates it; return the netns path runc joins (spec's form).

    None means a private namespace that runc makes (`--network none`: loopback only).
    """
    mode = container.host_config.get("NetworkMode") or "bridge"
    if mode == "host":
        etcsetup.write_etc_files(container, userdata, [], host_mode=True)
        return spec.HOST_NETNS
    if mode.startswith("container:"):
        return _join_other(container, mode.split(":", 1)[1], userdata)
    endpoints = [] if mode == "none" else _endpoints(container)
    if not endpoints:
        etcsetup.write_etc_files(container, userdata, [], host_mode=False)
        return None
    path = netns_path(container.id)
    if path.exists():
        netns.remove(path)  # left by a crash: the namespace of a dead run
    made = [
        links.ensure_bridge(
            e.network.bridge, gateway=e.network.gateway, prefixlen=subnet_of(e.network).prefixlen
        )
        for e in endpoints
    ]
    if any(made):
        sync_rules()  # the default bridge's NAT and isolation, on first use or after a teardown
    routed = next((e for e in endpoints if not e.network.internal), None)
    specs = [_endpoint_spec(e, e.ifname, default_route=e is routed) for e in endpoints]

    def configure(ipr: IPRoute) -> None:
        links.up_loopback(ipr)
        for item in specs:
            links.add_endpoint(ipr, item)

    try:
        netns.create(path, configure)
    except NetlinkError as exc:
        raise RuntimeFailure(f"could not set up the network of container {container.name}: {exc}") from exc
    undo.push(teardown, container.id)  # the namespace, its ports and its names, in that order
    links.attach_host_ends([(item.host_ifname, item.bridge) for item in specs])
    _publish(container, endpoints, undo)
    etcsetup.write_etc_files(container, userdata, endpoints, host_mode=False)
    if any(e.network.has_names for e in endpoints):
        # Before the process starts, so its first lookups never meet a reloading server.
        try:
            sync_dns()
        except EngineError as exc:
            # The container is reachable by address; its name is what is missing.
            logger.warning("names of container %s are not served: %s", container.name, exc)
    return str(path)


def _endpoint_spec(endpoint: Endpoint, ifname: str, *, default_route: bool) -> links.EndpointSpec:
    network = endpoint.network
    return links.EndpointSpec(
        host_ifname=veth_name(),
        ifname=ifname,
        bridge=network.bridge,
        address=endpoint.ip,
        prefixlen=subnet_of(network).prefixlen,
        mac=endpoint.mac,
        gateway=None if network.internal or not default_route else network.gateway,
    )


def veth_name() -> str:
    """The host end of a veth: the engine's tag (up to 5 characters), then random (15 in all)."""
    return f"{conf.net_tag()[:5]}v{secrets.token_hex(5)[:9]}"


def _join_other(container: Container, ref: str, userdata: Path) -> str:
    other = Container.objects.filter(id=ref).first()
    if other is None or other.state not in RUNNING:
        raise InvalidState(
            f"cannot join the network of container {ref}: it is not running", hint="start it first"
        )
    if (other.host_config.get("NetworkMode") or "") == "host":
        etcsetup.write_etc_files(container, userdata, [], host_mode=True)
        return spec.HOST_NETNS
    for name in ("hosts", "resolv.conf"):
        source = Path(conf.containers_dir()) / other.id / "userdata" / name
        target = userdata / name
        userdata.mkdir(mode=0o700, exist_ok=True)
        target.write_bytes(source.read_bytes() if source.exists() else b"")
        target.chmod(0o644)
    etcsetup.write_hostname(container, userdata)
    own = netns_path(other.id)
    if own.exists():
        return str(own)
    if other.pid <= 0:
        raise InvalidState(f"cannot join the network of container {other.name}: it has no process now")
    return f"/proc/{other.pid}/ns/net"


def teardown(container_id: str) -> None:
    """Undo `setup`: the namespace (and with it the veths), published ports, DNS names. Idempotent.

    Rules and names are best effort here: a failure to rewrite them must not stop the rest of a
    container's teardown (its exit is still recorded); the next sync or reconcile catches up.
    """
    path = netns_path(container_id)
    had_netns = path.exists()
    if had_netns:
        netns.remove(path)
    published = Container.objects.filter(id=container_id).exclude(ports=[])
    try:
        if published.exists() and published.update(ports=[]):  # a read first: most have no ports
            sync_rules()
        if had_netns and any(dns.mentions(conf.dns_dir(internal=i), container_id) for i in (False, True)):
            sync_dns()
    except EngineError as exc:
        logger.warning("network teardown of container %s: %s", container_id[:12], exc)


# -- published ports ------------------------------------------------------------------------------


def _requests(container: Container) -> list[ports.PortRequest]:
    host = container.host_config
    requests = ports.from_port_bindings(host.get("PortBindings"))
    if host.get("PublishAllPorts"):
        bound = {r.key for r in requests}
        exposed = (container.config.get("ExposedPorts") or {}).keys()
        requests += [r for r in ports.exposed_requests(exposed) if r.key not in bound]
    return requests


def _publish(container: Container, endpoints: list[Endpoint], undo: UndoStack) -> None:
    requests = _requests(container)
    if not requests:
        return
    target = next((e for e in endpoints if not e.network.internal), None)
    if target is None:
        raise InvalidArgument("ports cannot be published from a container on internal networks only")
    with locks.locked("network", "rules"):
        taken = {
            (b["host_ip"], int(b["host_port"]), b["proto"])
            for b in Container.objects.exclude(ports=[])
            .exclude(id=container.id)
            .values_list("ports", flat=True)
            for b in b
        }
        chosen: list[ports.Binding] = []
        for request in requests:
            port = ports.choose_host_port(request, taken, _host_port_free)
            if port is None:
                where = (
                    f"{request.host_ip or '0.0.0.0'}:{request.host_first}"
                    if request.host_first
                    else "a free port"
                )
                raise InUse(
                    f"cannot publish {request.key} on {where}: the port is already allocated",
                    hint="choose another host port, or stop what uses it",
                )
            taken.add((request.host_ip, port, request.proto))
            chosen.append(ports.Binding(request.container_port, request.proto, request.host_ip, port))
        container.ports = [b.as_dict() for b in chosen]
        container.save(update_fields=["ports"])
        undo.push(_unpublish, container.id)
        _apply_rules()


def _unpublish(container_id: str) -> None:
    if Container.objects.filter(id=container_id).exclude(ports=[]).update(ports=[]):
        sync_rules()


def _host_port_free(host_ip: str, port: int, proto: str) -> bool:
    """Nothing on the host listens there: a bind succeeds (and is let go at once)."""
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    if proto == "sctp":
        return True  # nothing to probe without the sctp module; Berth's own bindings were checked
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind((host_ip or "0.0.0.0", port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            if exc.errno == errno.EADDRNOTAVAIL:
                raise InvalidArgument(f"host address {host_ip} is not an address of this host") from None
            raise
    return True


def bindings(container: Container) -> list[ports.Binding]:
    return [ports.Binding.from_dict(b) for b in container.ports or []]


# -- rules and names, rebuilt whole from the records ---------------------------------------------------


def sync_rules() -> None:
    with locks.locked("network", "rules"):
        _apply_rules()


def _apply_rules() -> None:
    bridges = [
        rules.BridgeRule(n.bridge, n.subnet, n.internal, n.gateway)
        for n in Network.objects.filter(driver="bridge").exclude(bridge="")
    ]
    in_force = []
    for container in Container.objects.exclude(ports=[]).prefetch_related("endpoints__network"):
        target = next((e for e in container.endpoints.all() if not e.network.internal), None)
        if target is None:
            continue
        for b in bindings(container):
            in_force.append(rules.PortRule(b.host_ip, b.host_port, b.proto, target.ip, b.container_port))
    nft.run(rules.render(conf.net_tag(), bridges, in_force))


def sync_dns() -> None:
    """Write aardvark-dns's files for every user network with running members, then reload it.

    Files are named by network ID (a name could be anything aardvark reads specially). Internal
    networks have their own server, which never forwards a query to the host's resolvers.
    """
    with locks.locked("network", "dns"):
        records: dict[str, dns.NetworkRecords] = {}
        internal: set[str] = set()
        # A container has names from the moment its namespace is made until it is torn down.
        endpoints = Endpoint.objects.filter(
            network__predefined=False, network__driver="bridge"
        ).select_related("network", "container")
        for e in endpoints:
            if not netns_path(e.container_id).exists():
                continue
            network = e.network
            entry = records.setdefault(network.id, dns.NetworkRecords(network.id, network.gateway, []))
            if network.internal:
                internal.add(network.id)
            names = [e.container.name, *e.aliases, e.container_id[:12]]
            entry.containers.append(dns.Record(e.container_id, e.ip, tuple(dict.fromkeys(names))))
        for is_internal in (False, True):
            chosen = [r for key, r in records.items() if (key in internal) == is_internal]
            dns.apply(conf.dns_dir(internal=is_internal), chosen, forward=not is_internal)


def revive_dns() -> bool:
    """Start the name servers again if one died while it had names to serve; True if it did.

    Cheap when all is well (a directory listing and a pid check), so the housekeeping loop calls it.
    """
    for internal in (False, True):
        directory = conf.dns_dir(internal=internal)
        if dns.has_records(directory) and dns.running_pid(directory) is None:
            logger.warning("aardvark-dns for %s was not running: starting it again", directory)
            sync_dns()
            return True
    return False


# -- connect and disconnect while running ------------------------------------------------------------


def plug_running(container: Container, endpoint: Endpoint) -> None:
    """Give a running container its interface on `endpoint`'s network; all or nothing."""
    path = netns_path(container.id)
    if not path.exists():
        raise InvalidState(f"container {container.name} has no network namespace of its own to join")
    network = endpoint.network
    links.ensure_bridge(network.bridge, gateway=network.gateway, prefixlen=subnet_of(network).prefixlen)
    others = [e for e in _endpoints(container) if e.pk != endpoint.pk]
    # The first network with a way out gives the default route; a later one adds none.
    routed = not network.internal and all(e.network.internal for e in others)
    with UndoStack() as undo:
        links.plug(path, _endpoint_spec(endpoint, endpoint.ifname, default_route=routed))
        undo.push(links.unplug, path, endpoint.ifname)
        userdata = Path(conf.containers_dir()) / container.id / "userdata"
        etcsetup.write_etc_files(container, userdata, [*others, endpoint], host_mode=False, in_place=True)
        sync_rules()  # a published port may now go through this network
        sync_dns()


def unplug_running(container: Container, endpoint: Endpoint) -> None:
    """Take the interface away; if it carried the default route, the next network with a way out does."""
    path = netns_path(container.id)
    if not path.exists():
        return
    endpoints = _endpoints(container)
    routed = next((e for e in endpoints if not e.network.internal), None)
    links.unplug(path, endpoint.ifname)
    rest = [e for e in endpoints if e.pk != endpoint.pk]
    if routed is not None and routed.pk == endpoint.pk:
        successor = next((e for e in rest if not e.network.internal), None)
        if successor is not None:
            links.route_default(path, successor.ifname, successor.network.gateway)
    userdata = Path(conf.containers_dir()) / container.id / "userdata"
    etcsetup.write_etc_files(container, userdata, rest, host_mode=False, in_place=True)


def _endpoints(container: Container) -> list[Endpoint]:
    cached = getattr(container, "_prefetched_objects_cache", {}).get("endpoints")
    if cached is not None:  # a list prefetched endpoints__network: no query per container
        return sorted(cached, key=lambda e: (e.created, e.id))
    return list(container.endpoints.select_related("network").order_by("created", "id"))


# -- after a crash or restart of the server ---------------------------------------------------------


def reconcile() -> None:
    """Remove namespaces and ports of containers that are not running, then rebuild bridges, rules, DNS.

    A container that another process is starting right now holds its lock: it is left alone.
    """
    directory = conf.netns_dir()
    stale = {p.name for p in directory.iterdir()} if directory.is_dir() else set()
    stale |= set(Container.objects.exclude(state__in=RUNNING).exclude(ports=[]).values_list("id", flat=True))
    for container_id in sorted(stale):
        with locks.try_locked("container", container_id) as taken:
            if not taken:
                continue
            if Container.objects.filter(id=container_id, state__in=RUNNING).exists():
                continue
            netns.remove(netns_path(container_id))
            Container.objects.filter(id=container_id).exclude(ports=[]).update(ports=[])
    for network in Network.objects.filter(driver="bridge").exclude(bridge=""):
        if network.endpoints.filter(container__state__in=RUNNING).exists() or not network.predefined:
            try:
                links.ensure_bridge(
                    network.bridge, gateway=network.gateway, prefixlen=subnet_of(network).prefixlen
                )
            except RuntimeFailure as exc:
                logger.warning("network %s: %s", network.name, exc)
    sync_rules()
    sync_dns()


def container_networks(container: Container) -> dict[str, Any]:
    """Docker's NetworkSettings.Networks for inspect: addresses only while the container is wired."""
    result: dict[str, Any] = {}
    live = netns_path(container.id).exists()
    for e in _endpoints(container):
        network = e.network
        result[network.name] = {
            "IPAMConfig": None,
            "Links": None,
            "Aliases": list(e.aliases) or None,
            "MacAddress": e.mac,
            "NetworkID": network.id,
            "EndpointID": f"{e.pk:064x}" if live else "",
            "Gateway": network.gateway if live and not network.internal else "",
            "IPAddress": e.ip if live else "",
            "IPPrefixLen": subnet_of(network).prefixlen if live else 0,
            "IPv6Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "DNSNames": [container.name, *e.aliases, container.id[:12]] if network.has_names else None,
        }
    mode = container.host_config.get("NetworkMode") or "bridge"
    if not result and mode in ("host", "none"):
        result[mode] = {"NetworkID": "", "EndpointID": "", "IPAddress": "", "Gateway": "", "MacAddress": ""}
    return result


__all__ = ["ContainerNotFound", "lease", "setup", "teardown"]


def clear_host_state() -> None:
    """Remove the nft table and stop the DNS server (no rule or name is in force)."""
    with locks.locked("network", "rules"):
        nft.run(rules.render(conf.net_tag(), [], []))
    with locks.locked("network", "dns"):
        for internal in (False, True):
            dns.apply(conf.dns_dir(internal=internal), [])
