"""Bridges and veth pairs through netlink (pyroute2): create, configure, delete.

Mechanism only: names, addresses and namespace paths in; nothing here decides who may do what.
Netlink errors become RuntimeFailure; "already gone" is success wherever something is deleted.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from engine.errors import RuntimeFailure
from engine.net import netns

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


def ensure_bridge(name: str, *, gateway: str | None, prefixlen: int) -> None:
    """Create the bridge if missing, give it the gateway address, bring it up. Idempotent.

    Also turns on IPv4 forwarding (as Docker does) and route_localnet on the bridge, which lets the
    host reach published ports on 127.0.0.1; the input rule in rules.py keeps loopback private.
    """
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

    The host end is enslaved to the bridge afterwards by `attach_host_end`, from the host.
    """
    host = netns.host_fd()
    try:
        ipr.link(
            "add",
            ifname=spec.ifname,
            kind="veth",
            address=spec.mac,
            peer={"ifname": spec.host_ifname, "net_ns_fd": host},
        )
    finally:
        os.close(host)
    index = ipr.link_lookup(ifname=spec.ifname)[0]
    ipr.addr("add", index=index, address=spec.address, prefixlen=spec.prefixlen)
    ipr.link("set", index=index, state="up")
    if spec.gateway:
        ipr.route("add", dst="0.0.0.0/0", gateway=spec.gateway, oif=index)


def remove_endpoint(ipr: IPRoute, ifname: str) -> None:
    """Inside a namespace: delete the container's interface (and so its host peer)."""
    found = ipr.link_lookup(ifname=ifname)
    if found:
        ipr.link("del", index=found[0])


def attach_host_end(host_ifname: str, bridge: str) -> None:
    """On the host: enslave the veth's host end to the bridge and bring it up."""
    try:
        with IPRoute() as ipr:
            index = ipr.link_lookup(ifname=host_ifname)[0]
            master = ipr.link_lookup(ifname=bridge)[0]
            ipr.link("set", index=index, master=master, state="up")
    except (NetlinkError, IndexError) as exc:
        raise RuntimeFailure(f"could not attach {host_ifname} to bridge {bridge}: {exc}") from exc


def plug(netns_path: Path, spec: EndpointSpec) -> None:
    """Add one endpoint to an existing namespace (network connect of a running container)."""
    try:
        netns.enter(netns_path, lambda ipr: add_endpoint(ipr, spec))
    except NetlinkError as exc:
        raise RuntimeFailure(f"could not add {spec.ifname} to the container: {exc}") from exc
    attach_host_end(spec.host_ifname, spec.bridge)


def unplug(netns_path: Path, ifname: str) -> None:
    """Remove one endpoint from a namespace (network disconnect). Missing is fine."""
    try:
        netns.enter(netns_path, lambda ipr: remove_endpoint(ipr, ifname))
    except NetlinkError as exc:
        if exc.code not in GONE:
            raise RuntimeFailure(f"could not remove {ifname} from the container: {exc}") from exc
