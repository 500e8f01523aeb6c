"""Bridges and veth pairs through netlink (pyroute2): create, configure, delete.

Mechanism only: names, addresses and namespace paths in; nothing here decides who may do what.
Netlink errors become RuntimeFailure; "already gone" is success wherever something is deleted.
"""

from __future__ import annotations

import errno
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from engine.errors import RuntimeFailure
from engine.net import netns

IFF_UP = 0x1
GONE = (errno.ENODEV, errno.ENOENT, errno.ESRCH, errno.EADDRNOTAVAIL)


@dataclass(frozen=True)
class EndpointSpec:
    """One interface inside a container's namespace, wired to a bridge on the host."""

    host_ifname: str  # the veth end left on the host, enslaved to the bridge
    ifname: str  # eth0, eth1, … inside the container
    bridge: str
    address: str
    prefixlen: int
    mac: str
    gateway: str | None  # the default route through this interface, or None


def _sysctl(path: str, value: str) -> None:
    try:
        with open(path) as f:
            if f.read().strip() == value:
                return
        with open(path, "w") as f:
            f.write(value)
    except OSError as exc:
        raise RuntimeFailure(f"could not set {path} to {value}: {exc.strerror}") from exc


def ensure_bridge(name: str, *, gateway: str | None, prefixlen: int) -> bool:
    """Create the bridge if missing, give it the gateway address, bring it up. Idempotent.

    Also turns on IPv4 forwarding (as Docker does) and route_localnet on the bridge, which lets the
    host reach published ports on 127.0.0.1; the input rule in rules.py keeps loopback private.
    Returns True when it had to change anything (the caller then refreshes the rules).
    """
    if _bridge_ready(name):
        return False  # the common case, read from sysfs without a netlink round trip
    try:
        with IPRoute() as ipr:
            found = ipr.link_lookup(ifname=name)
            if not found:
                try:
                    ipr.link("add", ifname=name, kind="bridge")
                except NetlinkError as exc:
                    if exc.code != errno.EEXIST:  # another process made it meanwhile
                        raise
                found = ipr.link_lookup(ifname=name)
            index = found[0]
            if gateway:
                have = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=index, family=2)}
                if gateway not in have:
                    try:
                        ipr.addr("add", index=index, address=gateway, prefixlen=prefixlen)
                    except NetlinkError as exc:
                        if exc.code != errno.EEXIST:
                            raise
            ipr.link("set", index=index, state="up")
    except NetlinkError as exc:
        raise RuntimeFailure(f"could not set up bridge {name}: {exc}") from exc
    _sysctl("/proc/sys/net/ipv4/ip_forward", "1")
    _sysctl(f"/proc/sys/net/ipv4/conf/{name}/route_localnet", "1")
    return True


def _bridge_ready(name: str) -> bool:
    """The bridge exists, is up, and forwarding and route_localnet are on (its address is not checked)."""
    try:
        with open(f"/sys/class/net/{name}/flags") as f:
            up = int(f.read(), 16) & IFF_UP
        with open(f"/proc/sys/net/ipv4/conf/{name}/route_localnet") as f:
            localnet = f.read().strip() == "1"
        with open("/proc/sys/net/ipv4/ip_forward") as f:
            forwarding = f.read().strip() == "1"
    except (OSError, ValueError):
        return False
    return bool(up) and localnet and forwarding


def delete(name: str) -> None:
    """Delete a link (bridge or veth) by name; a missing one is fine."""
    try:
        with IPRoute() as ipr:
            found = ipr.link_lookup(ifname=name)
            if found:
                ipr.link("del", index=found[0])
    except NetlinkError as exc:
        if exc.code not in GONE:
            raise RuntimeFailure(f"could not delete link {name}: {exc}") from exc


def exists(name: str) -> bool:
    with IPRoute() as ipr:
        return bool(ipr.link_lookup(ifname=name))


def names_with_prefix(prefix: str) -> list[str]:
    with IPRoute() as ipr:
        names = [str(link.get_attr("IFLA_IFNAME")) for link in ipr.get_links()]
    return [n for n in names if n.startswith(prefix)]


def up_loopback(ipr: IPRoute) -> None:
    ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")


def add_endpoint(ipr: IPRoute, spec: EndpointSpec) -> None:
    """Inside a namespace (`ipr` bound there): make the veth pair with its peer on the host, configure it.

    The host end is enslaved to the bridge afterwards by `attach_host_ends`, from the host.
    """
    host = netns.host_fd()
    try:
        ipr.link(
            "add",
            ifname=spec.ifname,
            kind="veth",
            address=spec.mac,
            state="up",
            peer={"ifname": spec.host_ifname, "net_ns_fd": host},
        )
    finally:
        os.close(host)
    # A direct get by name: link_lookup would dump every link.
    index = ipr.link("get", ifname=spec.ifname)[0]["index"]
    ipr.addr("add", index=index, address=spec.address, prefixlen=spec.prefixlen)
    if spec.gateway:
        ipr.route("add", dst="0.0.0.0/0", gateway=spec.gateway, oif=index)


def remove_endpoint(ipr: IPRoute, ifname: str) -> None:
    """Inside a namespace: delete the container's interface (and so its host peer)."""
    found = ipr.link_lookup(ifname=ifname)
    if found:
        ipr.link("del", index=found[0])


def attach_host_ends(ends: list[tuple[str, str]]) -> None:
    """On the host: enslave each veth's host end to its bridge and bring it up ((veth, bridge) pairs)."""
    try:
        ipr = _host_iproute()
        for host_ifname, bridge in ends:
            ipr.link("set", ifname=host_ifname, master=_ifindex(bridge), state="up")
    except (NetlinkError, OSError, ValueError) as exc:
        _forget_host_iproute()
        raise RuntimeFailure(f"could not attach the container's interfaces to their bridges: {exc}") from exc


_local = threading.local()


def _host_iproute() -> IPRoute:
    """A netlink socket in the host namespace, kept per thread: making one costs most of an attach.

    Only threads that never change namespace call this (the namespace work runs in threads of its own).
    """
    ipr = getattr(_local, "ipr", None)
    if ipr is None or getattr(_local, "pid", None) != os.getpid():
        ipr = IPRoute()
        _local.ipr, _local.pid = ipr, os.getpid()
    return ipr


def _forget_host_iproute() -> None:
    ipr = getattr(_local, "ipr", None)
    _local.ipr = None
    if ipr is not None:
        try:
            ipr.close()
        except Exception:  # noqa: BLE001 — a broken socket is what is being replaced
            pass


def _ifindex(name: str) -> int:
    with open(f"/sys/class/net/{name}/ifindex") as f:
        return int(f.read())


def plug(netns_path: Path, spec: EndpointSpec) -> None:
    """Add one endpoint to an existing namespace (network connect of a running container)."""
    try:
        netns.enter(netns_path, lambda ipr: add_endpoint(ipr, spec))
    except NetlinkError as exc:
        raise RuntimeFailure(f"could not add {spec.ifname} to the container: {exc}") from exc
    attach_host_ends([(spec.host_ifname, spec.bridge)])


def route_default(netns_path: Path, ifname: str, gateway: str) -> None:
    """Inside a namespace: make the default route go through `gateway` on `ifname` (replacing any)."""

    def work(ipr: IPRoute) -> None:
        index = ipr.link("get", ifname=ifname)[0]["index"]
        ipr.route("replace", dst="0.0.0.0/0", gateway=gateway, oif=index)

    try:
        netns.enter(netns_path, work)
    except NetlinkError as exc:
        raise RuntimeFailure(f"could not route the container through {gateway}: {exc}") from exc


def unplug(netns_path: Path, ifname: str) -> None:
    """Remove one endpoint from a namespace (network disconnect). Missing is fine."""
    try:
        netns.enter(netns_path, lambda ipr: remove_endpoint(ipr, ifname))
    except NetlinkError as exc:
        if exc.code not in GONE:
            raise RuntimeFailure(f"could not remove {ifname} from the container: {exc}") from exc
