"""A container's /etc/hosts and /etc/resolv.conf (pure)."""

from __future__ import annotations

import pytest

from engine.errors import InvalidArgument
from engine.net import etcfiles

HOST_RESOLV = "search corp.example\nnameserver 127.0.0.53\nnameserver 10.0.0.53\noptions edns0\n"


def test_hosts_lists_own_addresses_with_names_then_extra_hosts() -> None:
    text = etcfiles.hosts("box", [("10.0.0.2", ["web", "www"])], [etcfiles.HostEntry("db", "10.1.1.1")])
    assert text.splitlines()[-2:] == ["10.0.0.2\tbox web www", "10.1.1.1\tdb"]


def test_hosts_without_a_network_names_the_container_on_loopback() -> None:
    assert "127.0.1.1\tbox" in etcfiles.hosts("box", [], [])


def test_host_resolvers_on_loopback_are_dropped() -> None:
    text = etcfiles.resolv_conf(HOST_RESOLV, nameservers=[], search=[], use_host=True)
    assert "127.0.0.53" not in text and "nameserver 10.0.0.53" in text and "search corp.example" in text


def test_given_nameservers_replace_the_hosts_and_keep_options() -> None:
    text = etcfiles.resolv_conf(HOST_RESOLV, nameservers=["10.9.0.1"], search=["a.test"], use_host=False)
    assert text == "search a.test\nnameserver 10.9.0.1\noptions edns0\n"


@pytest.mark.parametrize(
    ("spec", "entry"),
    [
        ("db:10.0.0.5", etcfiles.HostEntry("db", "10.0.0.5")),
        ("db=10.0.0.5", etcfiles.HostEntry("db", "10.0.0.5")),
        ("gw:host-gateway", etcfiles.HostEntry("gw", "host-gateway")),
        ("v6=[::1]", etcfiles.HostEntry("v6", "::1")),
    ],
)
def test_add_host_forms(spec: str, entry: etcfiles.HostEntry) -> None:
    assert etcfiles.parse_add_host(spec) == entry


@pytest.mark.parametrize("spec", ["db", "db:", ":10.0.0.1", "db:nonsense", "bad name:10.0.0.1"])
def test_bad_add_host_is_refused(spec: str) -> None:
    with pytest.raises(InvalidArgument):
        etcfiles.parse_add_host(spec)


def test_dns_options_are_validated() -> None:
    assert etcfiles.parse_dns(" 10.0.0.1 ") == "10.0.0.1"
    with pytest.raises(InvalidArgument):
        etcfiles.parse_dns("dns.example")
    with pytest.raises(InvalidArgument):
        etcfiles.parse_dns_search("bad domain")
