"""A container's /etc/hostname, /etc/hosts and /etc/resolv.conf, written into its userdata directory."""

from __future__ import annotations

from pathlib import Path

from engine.models import Container, Endpoint, Network
from engine.net import etcfiles


def write_hostname(container: Container, userdata: Path) -> None:
    from engine.services import bundle

    userdata.mkdir(mode=0o700, exist_ok=True)
    bundle.write_atomic(userdata / "hostname", f"{hostname(container)}\n".encode(), mode=0o644, sync=False)


def hostname(container: Container) -> str:
    return container.config.get("Hostname") or container.id[:12]


def write_etc_files(
    container: Container,
    userdata: Path,
    endpoints: list[Endpoint],
    *,
    host_mode: bool,
    in_place: bool = False,
) -> None:
    """hostname, hosts and resolv.conf; in_place for a running container, which has the files
    bind-mounted (a renamed new file would not be seen through the mount)."""
    from engine.services import bundle

    write_hostname(container, userdata)
    host = container.host_config
    extra = [etcfiles.parse_add_host(h) for h in host.get("ExtraHosts") or []]
    gateway = next((e.network.gateway for e in endpoints), "") or _default_gateway()
    extra = [
        etcfiles.HostEntry(e.name, gateway if e.address == etcfiles.HOST_GATEWAY else e.address)
        for e in extra
    ]
    own = [(e.ip, [container.name, *e.aliases] if not e.network.predefined else []) for e in endpoints]
    hosts_text = etcfiles.hosts(hostname(container), own, extra)
    try:
        host_resolv = Path("/etc/resolv.conf").read_text()
    except OSError:
        host_resolv = ""
    named = next((e.network for e in endpoints if e.network.has_names), None)
    servers = list(host.get("Dns") or [])
    if not servers and named is not None:
        servers = [named.gateway]
    resolv = etcfiles.resolv_conf(
        host_resolv,
        nameservers=servers,
        search=list(host.get("DnsSearch") or []),
        use_host=not servers,
    )
    if host_mode:
        resolv = host_resolv
    for name, text in (("hosts", hosts_text), ("resolv.conf", resolv)):
        if in_place:
            (userdata / name).write_text(text)
        else:
            bundle.write_atomic(userdata / name, text.encode(), mode=0o644, sync=False)


def _default_gateway() -> str:
    network = Network.objects.filter(name="bridge").first()
    return network.gateway if network else "127.0.0.1"
