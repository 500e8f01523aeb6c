"""Address management for bridge networks: choosing subnets, validating them, picking addresses.

Pure: strings and ipaddress objects in, values out. The leases themselves are Endpoint rows
(services/networks.py), whose unique (network, ip) constraint makes allocation race-free.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from engine.errors import InvalidArgument

IPv4Network = ipaddress.IPv4Network
IPv4Address = ipaddress.IPv4Address

# Docker's default address pools: the default bridge prefers 172.17.0.0/16, user networks take the
# next free /16 of 172.17–31, then /20s of 192.168.0.0/16.
DEFAULT_BRIDGE_POOL = ("172.17.0.0/16",)
USER_POOLS = tuple(f"172.{n}.0.0/16" for n in range(17, 32)) + tuple(
    f"192.168.{n}.0/20" for n in range(0, 256, 16)
)


@dataclass(frozen=True)
class Subnet:
    """A validated network: its subnet, gateway and the range addresses are given from."""

    network: IPv4Network
    gateway: IPv4Address
    ip_range: IPv4Network

    @property
    def prefixlen(self) -> int:
        return self.network.prefixlen


def parse_subnet(subnet: str, *, gateway: str = "", ip_range: str = "") -> Subnet:
    """Validate a user's --subnet/--gateway/--ip-range; the gateway defaults to the first host."""
    network = _network(subnet, "--subnet")
    if network.prefixlen > 30:
        raise InvalidArgument(f"subnet {subnet} is too small: use a prefix of /30 or shorter")
    gw = _address(gateway, "--gateway") if gateway else network.network_address + 1
    if gw not in network or gw in (network.network_address, network.broadcast_address):
        raise InvalidArgument(f"gateway {gw} is not a usable address of subnet {network}")
    rng = _network(ip_range, "--ip-range") if ip_range else network
    if not rng.subnet_of(network):
        raise InvalidArgument(f"ip range {rng} is not inside subnet {network}")
    return Subnet(network, gw, rng)


def _network(text: str, what: str) -> IPv4Network:
    try:
        network = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise InvalidArgument(
            f"invalid {what} {text!r}: expected an IPv4 CIDR such as 10.10.0.0/24"
        ) from None
    if not isinstance(network, IPv4Network):
        raise InvalidArgument(f"invalid {what} {text!r}: only IPv4 networks are supported")
    if str(network.network_address) != text.strip().split("/")[0] and what == "--subnet":
        raise InvalidArgument(f"invalid {what} {text!r}: host bits are set (did you mean {network}?)")
    return network


def _address(text: str, what: str) -> IPv4Address:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        raise InvalidArgument(f"invalid {what} {text!r}: expected an IPv4 address") from None
    if not isinstance(address, IPv4Address):
        raise InvalidArgument(f"invalid {what} {text!r}: only IPv4 addresses are supported")
    return address


def parse_address(text: str, what: str = "--ip") -> IPv4Address:
    return _address(text, what)


def choose_subnet(pools: Iterable[str], taken: Iterable[IPv4Network]) -> Subnet | None:
    """The first pool subnet that overlaps none of `taken` (host routes and other networks)."""
    taken = list(taken)
    for candidate in pools:
        network = ipaddress.IPv4Network(candidate)
        if not any(network.overlaps(t) for t in taken):
            return Subnet(network, network.network_address + 1, network)
    return None


def overlapping(subnet: IPv4Network, taken: Iterable[IPv4Network]) -> IPv4Network | None:
    return next((t for t in taken if subnet.overlaps(t)), None)


def first_free(subnet: Subnet, used: Iterable[str]) -> IPv4Address | None:
    """The lowest address of the range that is not the gateway, network, broadcast or in `used`."""
    busy = {ipaddress.IPv4Address(u) for u in used}
    busy.add(subnet.gateway)
    reserved = (subnet.network.network_address, subnet.network.broadcast_address)
    for address in subnet.ip_range:
        if address not in busy and address not in reserved:
            return address
    return None


def check_requested(subnet: Subnet, address: IPv4Address) -> None:
    """A fixed --ip must be a usable address of the subnet (Docker also asks it be in the range)."""
    if address not in subnet.network:
        raise InvalidArgument(f"address {address} is not in the network's subnet {subnet.network}")
    if address in (subnet.network.network_address, subnet.network.broadcast_address, subnet.gateway):
        raise InvalidArgument(f"address {address} is reserved in subnet {subnet.network}")


def mac_for(address: IPv4Address) -> str:
    """Docker's classic MAC: 02:42 followed by the four bytes of the IPv4 address."""
    return "02:42:" + ":".join(f"{b:02x}" for b in address.packed)


def parse_mac(text: str) -> str:
    parts = text.strip().lower().split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdef" for c in p) for p in parts):
        raise InvalidArgument(
            f"invalid --mac-address {text!r}: expected six hex pairs like 02:42:ac:11:00:02"
        )
    if int(parts[0], 16) & 1:
        raise InvalidArgument(f"invalid --mac-address {text!r}: a multicast address cannot be used")
    return ":".join(parts)
