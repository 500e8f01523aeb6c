"""Subnet choice, validation and address picking (pure)."""

from __future__ import annotations

import ipaddress

import pytest

from engine.errors import InvalidArgument
from engine.net import ipam


def test_a_subnet_that_collides_with_a_route_is_skipped() -> None:
    taken = [ipaddress.IPv4Network("172.17.0.0/16"), ipaddress.IPv4Network("172.18.5.0/24")]
    chosen = ipam.choose_subnet(ipam.USER_POOLS, taken)
    assert chosen is not None
    assert str(chosen.network) == "172.19.0.0/16" and str(chosen.gateway) == "172.19.0.1"


def test_no_subnet_when_every_pool_is_taken() -> None:
    assert ipam.choose_subnet(["10.0.0.0/24"], [ipaddress.IPv4Network("10.0.0.0/8")]) is None


def test_first_free_skips_network_gateway_broadcast_and_leases() -> None:
    subnet = ipam.parse_subnet("10.1.0.0/29")
    assert str(ipam.first_free(subnet, [])) == "10.1.0.2"
    assert str(ipam.first_free(subnet, ["10.1.0.2", "10.1.0.3"])) == "10.1.0.4"
    assert ipam.first_free(subnet, [f"10.1.0.{i}" for i in range(2, 7)]) is None


def test_ip_range_limits_what_is_given() -> None:
    subnet = ipam.parse_subnet("10.2.0.0/24", ip_range="10.2.0.128/25")
    assert str(ipam.first_free(subnet, [])) == "10.2.0.128"


@pytest.mark.parametrize(
    ("subnet", "gateway", "ip_range", "words"),
    [
        ("10.3.0.1/24", "", "", "host bits"),
        ("nonsense", "", "", "IPv4 CIDR"),
        ("fd00::/64", "", "", "only IPv4"),
        ("10.3.0.0/31", "", "", "too small"),
        ("10.3.0.0/24", "10.4.0.1", "", "not a usable address"),
        ("10.3.0.0/24", "10.3.0.255", "", "not a usable address"),
        ("10.3.0.0/24", "", "10.5.0.0/25", "not inside"),
    ],
)
def test_bad_subnets_are_refused_with_reasons(subnet: str, gateway: str, ip_range: str, words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        ipam.parse_subnet(subnet, gateway=gateway, ip_range=ip_range)


def test_requested_addresses_must_be_usable() -> None:
    subnet = ipam.parse_subnet("10.6.0.0/24")
    ipam.check_requested(subnet, ipaddress.IPv4Address("10.6.0.9"))
    for bad, words in (("10.7.0.9", "not in"), ("10.6.0.1", "reserved"), ("10.6.0.255", "reserved")):
        with pytest.raises(InvalidArgument, match=words):
            ipam.check_requested(subnet, ipaddress.IPv4Address(bad))


def test_macs_follow_dockers_scheme_and_are_validated() -> None:
    assert ipam.mac_for(ipaddress.IPv4Address("172.17.0.2")) == "02:42:ac:11:00:02"
    assert ipam.parse_mac("02:42:AC:11:00:02") == "02:42:ac:11:00:02"
    for bad in ("02:42:ac:11:00", "zz:42:ac:11:00:02", "01:00:5e:00:00:01"):
        with pytest.raises(InvalidArgument):
            ipam.parse_mac(bad)
