"""The text of a container's /etc/hosts and /etc/resolv.conf, from its names and networks.

Pure: values in, text out. services/netsetup.py writes them into the container's own directory
(bind-mounted by the spec, never written into the rootfs).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from engine.errors import InvalidArgument

_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,252})$")
_DOMAIN = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$")
HOST_GATEWAY = "host-gateway"


@dataclass(frozen=True)
class HostEntry:
    name: str
    address: str


def parse_add_host(spec: str) -> HostEntry:
    """`--add-host NAME:IP` (or NAME=IP, or NAME:host-gateway)."""
    sep = "=" if "=" in spec else ":"
    name, found, address = spec.partition(sep)
    name, address = name.strip(), address.strip().strip("[]")
    if not found or not name or not address:
        raise InvalidArgument(f"invalid --add-host {spec!r}: use NAME:IP or NAME:host-gateway")
    if not _HOSTNAME.fullmatch(name):
        raise InvalidArgument(f"invalid --add-host {spec!r}: {name!r} is not a valid host name")
    if address != HOST_GATEWAY:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise InvalidArgument(f"invalid --add-host {spec!r}: {address!r} is not an IP address") from None
    return HostEntry(name, address)


def parse_dns(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address.strip()))
    except ValueError:
        raise InvalidArgument(f"invalid --dns {address!r}: expected an IP address") from None


def parse_dns_search(domain: str) -> str:
    domain = domain.strip().rstrip(".")
    if domain != "." and not _DOMAIN.fullmatch(domain):
        raise InvalidArgument(f"invalid --dns-search {domain!r}: not a domain name")
    return domain


_ALIAS = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,251}[A-Za-z0-9])?")


def validate_alias(alias: str) -> str:
    """A network alias is a DNS name: it ends up in name server files and /etc/hosts."""
    if not _ALIAS.fullmatch(alias):
        raise InvalidArgument(
            f"invalid network alias {alias!r}: use letters, digits, '.', '-' and '_' (no spaces)"
        )
    return alias


def validate_hostname(name: str) -> str:
    if not _HOSTNAME.fullmatch(name) or len(name) > 253 or any(len(label) > 63 for label in name.split(".")):
        raise InvalidArgument(f"invalid --hostname {name!r}: use letters, digits, '.', '-' and '_'")
    return name


def hosts(hostname: str, own: Sequence[tuple[str, Sequence[str]]], extra: Sequence[HostEntry]) -> str:
    """/etc/hosts: loopback, the container's own addresses with its names, then --add-host lines."""
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
    ]
    if not own:
        lines.append(f"127.0.1.1\t{hostname}")
    for address, names in own:
        lines.append(f"{address}\t" + " ".join(dict.fromkeys([hostname, *names])))
    lines += [f"{e.address}\t{e.name}" for e in extra]
    return "\n".join(lines) + "\n"


def resolv_conf(host_text: str, *, nameservers: Sequence[str], search: Sequence[str], use_host: bool) -> str:
    """/etc/resolv.conf: given nameservers (the network's DNS, or --dns), or the host's file.

    The host's loopback resolvers are dropped: they cannot be reached from the container's namespace.
    """
    if use_host:
        kept = [
            line
            for line in host_text.splitlines()
            if not line.strip().startswith(("nameserver 127.", "nameserver ::1"))
        ]
        if search:
            kept = [line for line in kept if not line.strip().startswith(("search", "domain"))]
            kept.insert(0, "search " + " ".join(search))
        return "\n".join(kept) + "\n"
    options = [line for line in host_text.splitlines() if line.strip().startswith("options")]
    lines = []
    if search and search != ["."]:
        lines.append("search " + " ".join(search))
    lines += [f"nameserver {n}" for n in nameservers]
    lines += options
    return "\n".join(lines) + "\n"
