"""The nftables ruleset Berth owns: one `ip` table, rendered whole from the records.

Pure: dataclasses in, the text of one nft transaction out. The transaction creates the table if it
is missing, deletes it and declares it again, so the kernel swaps old rules for new atomically and
no other table (Docker's, firewalld's) is ever touched. With nothing to publish, route or isolate,
the script only deletes the table, so an idle engine leaves no rules behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class BridgeRule:
    """A bridge network: its device, subnet and whether it may reach anything beyond itself."""

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


def _quoted(names: Sequence[str]) -> str:
    return "{ " + ", ".join(f'"{n}"' for n in names) + " }"


def render(table: str, bridges: Sequence[BridgeRule], ports: Sequence[PortRule]) -> str:
    """The nft script that makes `table` exactly this ruleset (or removes it when there is nothing)."""
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
        # Published ports answer on every local address, including 127.0.0.1 from the host itself.
        "  chain prerouting {",
        "    type nat hook prerouting priority -100; policy accept;",
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
    lines = [
        "  chain forward {",
        "    type filter hook forward priority 0; policy accept;",
        # What reaches a published port was let in on purpose, whichever network it came from.
        "    ct status dnat accept",
    ]
    for b in bridges:
        others = [n for n in names if n != b.bridge]
        if b.internal:
            lines.append(f'    iifname "{b.bridge}" oifname != "{b.bridge}" drop')
            lines.append(f'    oifname "{b.bridge}" iifname != "{b.bridge}" drop')
        elif others:
            lines.append(f'    iifname "{b.bridge}" oifname {_quoted(others)} drop')
    lines += [
        "  }",
        # Loopback stays private (CVE-2020-8558): route_localnet lets 127.0.0.0/8 in from a bridge;
        # only connections that the published chain translated may pass.
        "  chain input {",
        "    type filter hook input priority 0; policy accept;",
        # Replies to a loopback client of a published port come back this way, translated by us.
        "    ct status dnat accept",
        # Counted, so an attempt shows in `nft list table`.
        f"    iifname {_quoted(names)} ip daddr 127.0.0.0/8 counter drop",
    ]
    for b in bridges:
        # aardvark-dns answers whoever asks on a network's gateway: another network's containers
        # must not read its names there.
        others = sorted({o.gateway for o in bridges if o.bridge != b.bridge and o.gateway})
        if others:
            lines.append(
                f'    iifname "{b.bridge}" ip daddr {{ {", ".join(others)} }} meta l4proto {{ tcp, udp }} th dport 53 drop'
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
