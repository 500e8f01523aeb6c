"""Published ports as links the browser can open: `http://<host the browser used>:<host port>/`.

A port published on every address (0.0.0.0) is reached through the name the browser already used
for the dashboard, because 0.0.0.0 means nothing to another machine; one bound to a single address
(127.0.0.1, a LAN IP) is reached only there. Only TCP ports get a link.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest
from django.http.request import split_domain_port

from engine.models import Container
from engine.services import netsetup


@dataclass(frozen=True)
class PortLink:
    text: str  # docker ps's wording: 0.0.0.0:8080->80/tcp
    url: str  # "" when there is nothing to open (udp, sctp)


def browser_host(request: HttpRequest) -> str:
    """The host name (or bracketed IPv6 literal) the browser used to reach the dashboard."""
    host, _port = split_domain_port(request.get_host())
    return host or "localhost"


def port_links(container: Container, host: str) -> list[PortLink]:
    """The container's published ports in force, each with the URL that opens it from the browser."""
    links = []
    for b in netsetup.bindings(container):
        shown_ip = b.host_ip or "0.0.0.0"
        text = f"{shown_ip}:{b.host_port}->{b.container_port}/{b.proto}"
        target = host if shown_ip == "0.0.0.0" else b.host_ip
        url = f"http://{target}:{b.host_port}/" if b.proto == "tcp" else ""
        links.append(PortLink(text=text, url=url))
    return links
