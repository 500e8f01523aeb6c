"""The nftables ruleset Berth owns: one `ip` table, rendered whole from the records.

Pure: dataclasses in, the text of one nft transaction out. The transaction creates the table if it
is missing, deletes it and declares it again, so the kernel swaps old rules for new atomically and
no other table (Docker's, firewalld's) is ever touched. With nothing to publish, route or isolate,
the script only deletes the table, so an idle engine leaves no rules behind.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from engine.errors import InvalidArgument


@dataclass(frozen=True)
class BridgeRule:
    """A bridge network: its device, subnet, gateway and whether it may reach anything beyond itself."""

    bridge: str
    subnet: str
    internal: bool = False
    gateway: str = ""


@dataclass(frozen=True)
class PortRule:
    """A published port: host_ip:host_port/proto → container_ip:container_port."""

    host_ip: str
    host_port: int
    proto: str
    container_ip: str
    container_port: int


PROTOCOLS = ("tcp", "udp", "sctp")
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,15}")
_TABLE = re.compile(r"[A-Za-z0-9_]{1,32}")


def _checked(bridges: Sequence[BridgeRule], ports: Sequence[PortRule]) -> None:
    """Every value is re-checked before it becomes nft text: records may come from images or users."""
    for b in bridges:
        if not _NAME.fullmatch(b.bridge):
            raise InvalidArgument(f"refusing bridge name {b.bridge!r} in a firewall rule")
        ipaddress.IPv4Network(b.subnet)
        if b.gateway:
            ipaddress.IPv4Address(b.gateway)
    for p in ports:
        if p.proto not in PROTOCOLS:
            raise InvalidArgument(f"refusing protocol {p.proto!r} in a firewall rule")
        for port in (p.host_port, p.container_port):
            if not isinstance(port, int) or not 0 < port < 65536:
                raise InvalidArgument(f"refusing port {port!r} in a firewall rule")
        ipaddress.IPv4Address(p.container_ip)
        if p.host_ip:
            ipaddress.IPv4Address(p.host_ip)


def _quoted(names: Sequence[str]) -> str:
    return "{ " + ", ".join(f'"{n}"' for n in names) + " }"


def render(table: str, bridges: Sequence[BridgeRule], ports: Sequence[PortRule]) -> str:
    """The nft script that makes `table` exactly this ruleset (or removes it when there is nothing).

    Raises InvalidArgument (or ValueError for an address) if any value could not be a rule's.
    """
    if not _TABLE.fullmatch(table):
        raise InvalidArgument(f"invalid nft table name {table!r}: letters, digits and _ only")
    _checked(bridges, ports)
    head = f"table ip {table} {{}}\ndelete table ip {table}\n"
    if not bridges and not ports:
        return head
    names = sorted({b.bridge for b in bridges})
    lines = [f"table ip {table} {{"]
    lines += _nat_chains(bridges, ports, names)
    if names:
        lines += _filter_chains(bridges, names)
    lines.append("}")
    return head + "\n".join(lines) + "\n"


def _nat_chains(bridges: Sequence[BridgeRule], ports: Sequence[PortRule], names: list[str]) -> list[str]:
    lines = [
        "  chain published {",
        *(f"    {_dnat(p)}" for p in sorted(ports, key=lambda p: (p.proto, p.host_port, p.host_ip))),
        "  }",
        # Published ports answer on every local address, including 127.0.0.1 from the host itself
        # (the output hook). From outside, a loopback destination is never translated: a port
        # published on 127.0.0.1 must not answer a neighbour on the LAN (moby#45610).
        "  chain prerouting {",
        "    type nat hook prerouting priority -100; policy accept;",
        "    ip daddr 127.0.0.0/8 return",
        "    fib daddr type local jump published",
        "  }",
        "  chain output {",
        "    type nat hook output priority -100; policy accept;",
        "    fib daddr type local jump published",
        "  }",
        "  chain postrouting {",
        "    type nat hook postrouting priority 100; policy accept;",
    ]
    if names:
        # A loopback client of a published port: the reply must come back through the host.
        lines.append(f"    ip saddr 127.0.0.0/8 oifname {_quoted(names)} masquerade")
    for b in bridges:
        # Hairpin: a container reaching a neighbour through a published port would otherwise get
        # the reply straight from the neighbour's address and drop it.
        lines.append(f'    ct status dnat oifname "{b.bridge}" ip saddr {b.subnet} masquerade')
        if not b.internal:
            lines.append(f'    ip saddr {b.subnet} oifname != "{b.bridge}" masquerade')
    lines.append("  }")
    return lines


def _dnat(p: PortRule) -> str:
    match = f"ip daddr {p.host_ip} " if p.host_ip else ""
    return f"{match}{p.proto} dport {p.host_port} dnat to {p.container_ip}:{p.container_port}"


def _filter_chains(bridges: Sequence[BridgeRule], names: list[str]) -> list[str]:
    bridge_set = _quoted(names)
    lines = [
        "  chain forward {",
        "    type filter hook forward priority 0; policy accept;",
        # route_localnet turns off the kernel's check of loopback sources on Berth's bridges.
        f"    iifname {bridge_set} ip saddr 127.0.0.0/8 drop",
    ]
    for b in bridges:
        if b.internal:
            # Before anything is accepted: an internal network reaches nothing, published or not.
            lines.append(f'    iifname "{b.bridge}" oifname != "{b.bridge}" drop')
            lines.append(f'    oifname "{b.bridge}" iifname != "{b.bridge}" drop')
    lines += [
        # What reaches a published port was let in on purpose, whichever network it came from.
        "    ct status dnat accept",
        f"    oifname {bridge_set} ct state established,related accept",
        # Nothing else enters a bridge from outside: the host is no router onto container addresses.
        f"    oifname {bridge_set} iifname != {bridge_set} drop",
    ]
    for b in bridges:
        others = [n for n in names if n != b.bridge]
        if not b.internal and others:
            lines.append(f'    iifname "{b.bridge}" oifname {_quoted(others)} drop')
    lines += [
        "  }",
        "  chain input {",
        "    type filter hook input priority 0; policy accept;",
        # Replies to a loopback client of a published port come back this way, translated by us.
        "    ct status dnat accept",
        f"    iifname {bridge_set} ip saddr 127.0.0.0/8 drop",
        # Loopback stays private (CVE-2020-8558): route_localnet lets 127.0.0.0/8 in from a bridge;
        # only connections that the published chain translated may pass. Counted, so an attempt
        # shows in `nft list table`.
        f"    iifname {bridge_set} ip daddr 127.0.0.0/8 counter drop",
    ]
    for b in bridges:
        # aardvark-dns answers whoever asks on a network's gateway: another network's containers
        # must not read its names there.
        others = sorted({o.gateway for o in bridges if o.bridge != b.bridge and o.gateway})
        if others:
            lines.append(
                f'    iifname "{b.bridge}" ip daddr {{ {", ".join(others)} }} '
                "meta l4proto { tcp, udp } th dport 53 drop"
            )
    lines.append("  }")
    return lines


def foreign_forward_drops(ruleset: str, own_table: str) -> list[str]:
    """Forward base chains of other tables whose policy is drop (iptables-nft's FORWARD DROP, …).

    Each would drop container traffic that Berth's own table accepts: nftables runs every base
    chain on a hook, and an accept in one table does not overrule a drop in another.
    """
    found = []
    table = chain = ""
    for raw in ruleset.splitlines():
        line = raw.strip()
        if line.startswith("table "):
            table = " ".join(line.split()[1:3])
        elif line.startswith("chain "):
            chain = line.split()[1]
        elif "hook forward" in line and "policy drop" in line and table.split()[-1:] != [own_table]:
            found.append(f"table {table}, chain {chain}")
    return found
