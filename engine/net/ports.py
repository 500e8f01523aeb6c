"""Published and exposed ports: parsing docker's `-p` and `--expose` syntax, and choosing host ports.

Pure: strings in, frozen dataclasses out. What is in force for a running container is a list of
`Binding`s (host ports resolved); services/netsetup.py stores them and nft rules are made from them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from engine.errors import InvalidArgument

PROTOCOLS = ("tcp", "udp", "sctp")
# Where -P and `-p 80` take host ports from: Linux's default ephemeral range, as Docker does.
EPHEMERAL = (32768, 60999)


@dataclass(frozen=True)
class PortRequest:
    """One container port to publish: on host_ip (\"\" = every address), a host port range to choose from."""

    container_port: int
    proto: str = "tcp"
    host_ip: str = ""
    host_first: int = 0  # 0: any free ephemeral port
    host_last: int = 0

    @property
    def key(self) -> str:
        return f"{self.container_port}/{self.proto}"


@dataclass(frozen=True)
class Binding:
    """A published port in force: host_ip:host_port → the container's port."""

    container_port: int
    proto: str
    host_ip: str
    host_port: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Binding:
        return cls(
            container_port=int(data["container_port"]),  # type: ignore[call-overload]
            proto=str(data["proto"]),
            host_ip=str(data["host_ip"]),
            host_port=int(data["host_port"]),  # type: ignore[call-overload]
        )

    def __str__(self) -> str:
        return f"{self.container_port}/{self.proto} -> {self.host_ip or '0.0.0.0'}:{self.host_port}"


def _port(text: str, what: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise InvalidArgument(f"invalid {what} {text!r}: a port is a number from 1 to 65535")
    return int(text)


def _range(text: str, what: str) -> tuple[int, int]:
    first, sep, last = text.partition("-")
    start = _port(first, what)
    end = _port(last, what) if sep else start
    if end < start:
        raise InvalidArgument(f"invalid {what} range {text!r}: the end is before the start")
    return start, end


def _split_proto(text: str, spec: str) -> tuple[str, str]:
    body, sep, proto = text.rpartition("/")
    if not sep:
        return text, "tcp"
    proto = proto.lower()
    if proto not in PROTOCOLS:
        raise InvalidArgument(f"invalid protocol {proto!r} in {spec!r}: use tcp, udp or sctp")
    return body, proto


def parse_publish(spec: str) -> list[PortRequest]:
    """`[IP:][HOSTPORT:]CONTAINERPORT[/PROTO]`, each port possibly a range `a-b`."""
    text, proto = _split_proto(spec.strip(), spec)
    if text.startswith("["):
        raise InvalidArgument(f"invalid port {spec!r}: IPv6 host addresses are not supported")
    parts = text.split(":")
    if len(parts) > 3 or not parts[-1]:
        raise InvalidArgument(f"invalid port {spec!r}: use [IP:][HOSTPORT:]CONTAINERPORT[/tcp|udp]")
    host_ip, host = "", ""
    if len(parts) == 3:
        host_ip, host = parts[0], parts[1]
    elif len(parts) == 2:
        host = parts[0]
    if host_ip:
        try:
            address = ipaddress.IPv4Address(host_ip)
        except ValueError:
            raise InvalidArgument(f"invalid host address {host_ip!r} in port {spec!r}") from None
        host_ip = "" if address.is_unspecified else str(address)
    c_first, c_last = _range(parts[-1], "container port")
    if not host:
        return [PortRequest(p, proto, host_ip) for p in range(c_first, c_last + 1)]
    h_first, h_last = _range(host, "host port")
    count = c_last - c_first + 1
    if count == 1:
        return [PortRequest(c_first, proto, host_ip, h_first, h_last)]
    if h_last - h_first + 1 != count:
        raise InvalidArgument(
            f"invalid port {spec!r}: the host range and the container range must have the same length"
        )
    return [PortRequest(c_first + i, proto, host_ip, h_first + i, h_first + i) for i in range(count)]


def parse_expose(spec: str) -> list[str]:
    """`--expose 80`, `--expose 7000-7002/udp` → ["80/tcp"] / ["7000/udp", "7001/udp", "7002/udp"]."""
    text, proto = _split_proto(spec.strip(), spec)
    first, last = _range(text, "exposed port")
    return [f"{p}/{proto}" for p in range(first, last + 1)]


MAX_PUBLISH_ALL = 1024  # -P of an image that exposes more is refused: each costs a host port


def exposed_requests(exposed: Iterable[str]) -> list[PortRequest]:
    """-P: every exposed port (Docker's `80/tcp` keys, from the image: untrusted) on a free host port."""
    requests = []
    for key in exposed:
        port, _, proto = str(key).partition("/")
        requests.append(PortRequest(_port(port, "exposed port"), _protocol(proto or "tcp", key)))
        if len(requests) > MAX_PUBLISH_ALL:
            raise InvalidArgument(f"-P would publish more than {MAX_PUBLISH_ALL} ports: publish them with -p")
    return requests


def _protocol(proto: str, spec: str) -> str:
    proto = proto.lower()
    if proto not in PROTOCOLS:
        raise InvalidArgument(f"invalid protocol {proto!r} in {spec!r}: use tcp, udp or sctp")
    return proto


def to_port_bindings(requests: Iterable[PortRequest]) -> dict[str, list[dict[str, str]]]:
    """Docker's HostConfig.PortBindings shape: {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}."""
    bindings: dict[str, list[dict[str, str]]] = {}
    for r in requests:
        host = "" if not r.host_first else str(r.host_first)
        if r.host_last and r.host_last != r.host_first:
            host = f"{r.host_first}-{r.host_last}"
        bindings.setdefault(r.key, []).append({"HostIp": r.host_ip, "HostPort": host})
    return bindings


def from_port_bindings(bindings: dict[str, list[dict[str, str]]] | None) -> list[PortRequest]:
    requests = []
    for key, entries in (bindings or {}).items():
        port, _, proto = key.partition("/")
        for entry in entries or [{}]:
            host = str(entry.get("HostPort") or "")
            first, last = _range(host, "host port") if host else (0, 0)
            host_ip = entry.get("HostIp") or ""
            if host_ip:
                host_ip = str(ipaddress.IPv4Address(host_ip))
            requests.append(
                PortRequest(
                    _port(port, "container port"), _protocol(proto or "tcp", key), host_ip, first, last
                )
            )
    return requests


def conflicts(a_ip: str, b_ip: str) -> bool:
    """Two bindings of one port and protocol clash unless both name different specific addresses."""
    return not a_ip or not b_ip or a_ip == b_ip


def choose_host_port(request: PortRequest, taken: set[tuple[str, int, str]], is_free: object) -> int | None:
    """The first port of the request's range (or the ephemeral range) that is free.

    `taken` holds (host_ip, port, proto) of bindings already in force; `is_free(ip, port, proto)`
    asks the host whether something else listens there.
    """
    first, last = (request.host_first, request.host_last) if request.host_first else EPHEMERAL
    for port in range(first, last + 1):
        if any(p == port and pr == request.proto and conflicts(ip, request.host_ip) for ip, p, pr in taken):
            continue
        if is_free(request.host_ip, port, request.proto):  # type: ignore[operator]
            return port
    return None
