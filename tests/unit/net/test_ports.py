"""docker's -p and --expose syntax, and host port choice (pure)."""

from __future__ import annotations

import pytest

from engine.errors import InvalidArgument
from engine.net import ports
from engine.net.ports import PortRequest


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("80", [PortRequest(80)]),
        ("8080:80", [PortRequest(80, "tcp", "", 8080, 8080)]),
        ("127.0.0.1:8080:80/udp", [PortRequest(80, "udp", "127.0.0.1", 8080, 8080)]),
        ("127.0.0.1::80", [PortRequest(80, "tcp", "127.0.0.1")]),
        ("0.0.0.0:8080:80", [PortRequest(80, "tcp", "", 8080, 8080)]),
        ("8000-8001:80-81", [PortRequest(80, "tcp", "", 8000, 8000), PortRequest(81, "tcp", "", 8001, 8001)]),
        ("9000-9010:80", [PortRequest(80, "tcp", "", 9000, 9010)]),
        ("53/UDP", [PortRequest(53, "udp")]),
    ],
)
def test_publish_specs_parse_like_docker(spec: str, expected: list[PortRequest]) -> None:
    assert ports.parse_publish(spec) == expected


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("0:80", "1 to 65535"),
        ("80:70000", "1 to 65535"),
        ("x:80", "host port"),
        ("80/icmp", "protocol"),
        ("1-3:4-5", "same length"),
        ("300.1.1.1:80:80", "host address"),
        ("[::1]:80:80", "IPv6"),
        ("1:2:3:4", "CONTAINERPORT"),
        ("90-80", "end is before"),
    ],
)
def test_bad_publish_specs_say_what_is_wrong(spec: str, words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        ports.parse_publish(spec)


def test_expose_ranges_expand() -> None:
    assert ports.parse_expose("7000-7002/udp") == ["7000/udp", "7001/udp", "7002/udp"]
    assert ports.parse_expose("80") == ["80/tcp"]


def test_port_bindings_round_trip_through_dockers_shape() -> None:
    requests = ports.parse_publish("127.0.0.1:8080:80") + ports.parse_publish("9000-9010:81")
    shape = ports.to_port_bindings(requests)
    assert shape == {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}],
        "81/tcp": [{"HostIp": "", "HostPort": "9000-9010"}],
    }
    assert ports.from_port_bindings(shape) == requests


def test_host_port_choice_skips_taken_ports_and_respects_addresses() -> None:
    request = PortRequest(80, "tcp", "", 9000, 9002)
    taken = {("127.0.0.1", 9000, "tcp"), ("", 9001, "udp")}
    assert ports.choose_host_port(request, taken, lambda ip, port, proto: True) == 9001
    busy_host = {9001}
    assert ports.choose_host_port(request, taken, lambda ip, port, proto: port not in busy_host) == 9002
    pinned = PortRequest(80, "tcp", "127.0.0.2", 9000, 9000)
    assert ports.choose_host_port(pinned, taken, lambda *a: True) == 9000  # another address: no clash
    assert ports.choose_host_port(PortRequest(80, "tcp", "", 9000, 9000), taken, lambda *a: True) is None
