"""Networking against the real kernel: bridges, veths, netns, nftables rules and aardvark-dns.

Every test drives the CLI as a user would, against a private engine whose bridges and nft table
carry a per-test tag. Traffic goes only to 127.0.0.1 and to namespaces these tests (or the engine
under test) made: the containers' own, and the `outside`/`neighbour` namespaces made here.
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import NET_PREFIX, BerthCLI
from tests.polling import wait_until

pytestmark = pytest.mark.root
HTTPD = ("busybox", "httpd", "-f", "-p", "80", "-h", "/etc")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(port: int, path: str = "/hostname", host: str = "127.0.0.1", timeout: float = 3) -> str:
    with socket.create_connection((host, port), timeout=timeout) as conn:
        conn.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        chunks = []
        while data := conn.recv(65536):
            chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


def answers(port: int) -> bool:
    try:
        return "200 OK" in http_get(port, timeout=1)
    except OSError:
        return False


def published_in_rules(port: int) -> bool:
    return (
        f"dport {port} " in subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
    )


def network_of(cli: BerthCLI, container: str, network: str) -> dict:  # type: ignore[type-arg]
    return cli.inspect(container)["NetworkSettings"]["Networks"][network]


def sh(cli: BerthCLI, network: str, script: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run a one-off busybox shell on `network`; busybox wget has no working -T here, so timeout(1).

    The trailing exit keeps sh as PID 1: exec'd, `timeout` would be PID 1 and its SIGTERM ignored.
    """
    return cli(
        "run", "--rm", "--network", network, *extra, "busybox", "sh", "-c", f"{script}; exit $?", timeout=60
    )


def fetch_by_name(cli: BerthCLI, network: str, name: str) -> subprocess.CompletedProcess[str]:
    return sh(cli, network, f"timeout 5 wget -qO- http://{name}/hostname")


@pytest.fixture
def net(berth_cli: BerthCLI) -> Iterator[str]:
    """A user network with a known bridge name, removed at the end."""
    name = f"n{secrets.token_hex(3)}"
    bridge = f"{NET_PREFIX}b{secrets.token_hex(4)}"
    berth_cli.ok("network", "create", "-o", f"com.docker.network.bridge.name={bridge}", name)
    yield name
    berth_cli("rm", "-f", *berth_cli("ps", "-aq").stdout.split())
    berth_cli("network", "rm", name)


def bridge_of(cli: BerthCLI, network: str) -> str:
    info = json.loads(cli.ok("network", "inspect", network))[0]
    return info["Options"].get("com.docker.network.bridge.name") or ""


# -- namespaces the tests make: a neighbour on a bridge, an "outside" host -------------------------------


class MadeNamespace:
    """A network namespace made by the test, with a veth to the host (or into a bridge)."""

    def __init__(self, bridge: str | None, address: str, peer_address: str | None = None) -> None:
        self.name = f"{NET_PREFIX}n{secrets.token_hex(3)}"
        self.host_end = f"{NET_PREFIX}h{secrets.token_hex(3)}"
        run = self.run_host
        run("ip", "netns", "add", self.name)
        run("ip", "link", "add", self.host_end, "type", "veth", "peer", "name", "eth0", "netns", self.name)
        if bridge:
            run("ip", "link", "set", self.host_end, "master", bridge)
        elif peer_address:
            run("ip", "addr", "add", peer_address, "dev", self.host_end)
        run("ip", "link", "set", self.host_end, "up")
        self.run("ip", "addr", "add", address, "dev", "eth0")
        self.run("ip", "link", "set", "eth0", "up")
        self.run("ip", "link", "set", "lo", "up")

    @staticmethod
    def run_host(*argv: str) -> str:
        return subprocess.run(argv, check=True, capture_output=True, text=True).stdout

    def run(self, *argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *argv],
            check=check,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def close(self) -> None:
        subprocess.run(["ip", "link", "del", self.host_end], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


@pytest.fixture
def namespaces() -> Iterator[Callable[..., MadeNamespace]]:
    made: list[MadeNamespace] = []

    def make(*args: str | None) -> MadeNamespace:
        ns = MadeNamespace(*args)  # type: ignore[arg-type]
        made.append(ns)
        return ns

    yield make
    for ns in made:
        ns.close()


# -- names -------------------------------------------------------------------------------------------


def test_containers_on_a_user_network_reach_each_other_by_name_and_alias(
    berth_cli: BerthCLI, net: str
) -> None:
    cid = berth_cli.ok(
        "run", "-d", "--name", "web", "--network", net, "--network-alias", "www", *HTTPD
    ).strip()
    for name in ("web", "www", cid[:12]):
        proc = fetch_by_name(berth_cli, net, name)
        assert proc.returncode == 0, (name, proc.stderr)
        assert proc.stdout.strip() == cid[:12]


def test_a_renamed_container_is_found_by_its_new_name_only(berth_cli: BerthCLI, net: str) -> None:
    berth_cli.ok("run", "-d", "--name", "old", "--network", net, *HTTPD)
    berth_cli.ok("rename", "old", "new")
    assert fetch_by_name(berth_cli, net, "new").returncode == 0
    assert fetch_by_name(berth_cli, net, "old").returncode != 0


def test_names_survive_an_engine_restart_and_stopped_containers_lose_theirs(
    berth_cli: BerthCLI, net: str
) -> None:
    berth_cli.ok("run", "-d", "--name", "web", "--network", net, *HTTPD)
    # What the server runs when it starts again: reconcile, rebuilding rules and names from records.
    berth_cli.ok("system", "reconcile")
    assert fetch_by_name(berth_cli, net, "web").returncode == 0
    berth_cli.ok("stop", "-t", "0", "web")
    assert fetch_by_name(berth_cli, net, "web").returncode != 0
    berth_cli.ok("start", "web")
    assert fetch_by_name(berth_cli, net, "web").returncode == 0


def test_the_default_bridge_has_no_names(berth_cli: BerthCLI) -> None:
    berth_cli.ok("run", "-d", "--name", "web", *HTTPD)
    address = network_of(berth_cli, "web", "bridge")["IPAddress"]
    assert address
    assert sh(berth_cli, "bridge", f"timeout 5 wget -qO- http://{address}/hostname").returncode == 0
    assert fetch_by_name(berth_cli, "bridge", "web").returncode != 0


def test_containers_on_different_networks_cannot_reach_each_other(berth_cli: BerthCLI, net: str) -> None:
    berth_cli.ok("run", "-d", "--name", "web", "--network", net, *HTTPD)
    address = network_of(berth_cli, "web", net)["IPAddress"]
    proc = sh(berth_cli, "bridge", f"timeout 3 wget -qO- http://{address}/hostname")
    assert proc.returncode != 0
    # Nor can they read the other network's names from its name server.
    gateway = network_of(berth_cli, "web", net)["Gateway"]
    assert sh(berth_cli, net, f"nslookup web {gateway}").returncode == 0
    assert sh(berth_cli, "bridge", f"timeout 5 nslookup web {gateway}").returncode != 0


def test_connect_and_disconnect_a_running_container(berth_cli: BerthCLI, net: str) -> None:
    berth_cli.ok("run", "-d", "--name", "box", "busybox", "sleep", "1000")
    assert "invalid network alias" in berth_cli.fail("network", "connect", "--alias", "a b", net, "box")
    berth_cli.ok("network", "connect", "--alias", "buddy", net, "box")
    links = berth_cli.ok("exec", "box", "ip", "-o", "-4", "addr")
    address = network_of(berth_cli, "box", net)["IPAddress"]
    # The running container's own /etc/hosts follows (it is bind-mounted: rewritten in place).
    assert address in berth_cli.ok("exec", "box", "cat", "/etc/hosts")
    assert f"eth1    inet {address}/" in links.replace("\\", " ") or address in links
    lookup = sh(berth_cli, net, "nslookup buddy")
    assert lookup.returncode == 0 and address in lookup.stdout, lookup.stdout + lookup.stderr
    berth_cli.ok("network", "disconnect", net, "box")
    assert address not in berth_cli.ok("exec", "box", "ip", "-o", "-4", "addr")
    assert net not in berth_cli.inspect("box")["NetworkSettings"]["Networks"]


# -- published ports ---------------------------------------------------------------------------------------


def test_disconnecting_the_routed_network_moves_the_default_route(berth_cli: BerthCLI, net: str) -> None:
    berth_cli.ok("run", "-d", "--name", "box", "busybox", "sleep", "1000")
    berth_cli.ok("network", "connect", net, "box")
    gateway = network_of(berth_cli, "box", net)["Gateway"]
    berth_cli.ok("network", "disconnect", "bridge", "box")
    routes = berth_cli.ok("exec", "box", "ip", "route")
    assert f"default via {gateway}" in routes, routes


def test_a_published_port_answers_on_loopback_after_the_cli_exited(berth_cli: BerthCLI) -> None:
    port = free_port()
    cid = berth_cli.ok("run", "-d", "--name", "web", "-p", f"{port}:80", *HTTPD).strip()
    # The CLI process that started it is gone: the kernel rules alone answer.
    wait_until(lambda: answers(port), what="the published port")
    assert http_get(port).endswith(cid[:12] + "\n")
    assert berth_cli.ok("port", "web").strip() == f"80/tcp -> 0.0.0.0:{port}"
    assert f"0.0.0.0:{port}->80/tcp" in berth_cli.ok("ps")


def test_publish_all_takes_free_ports_for_exposed_ones(berth_cli: BerthCLI) -> None:
    berth_cli.ok("run", "-d", "--name", "web", "--expose", "80", "-P", *HTTPD)
    host = berth_cli.ok("port", "web", "80").strip()
    assert host.startswith("0.0.0.0:")
    port = int(host.split(":")[1])
    assert 32768 <= port <= 60999
    wait_until(lambda: answers(port), what="the -P port")


def test_a_container_reaches_anothers_published_port_through_the_host(berth_cli: BerthCLI, net: str) -> None:
    port = free_port()
    cid = berth_cli.ok("run", "-d", "--name", "web", "--network", net, "-p", f"{port}:80", *HTTPD).strip()
    gateway = network_of(berth_cli, "web", net)["Gateway"]
    # From the default bridge, through the host's address on it, across networks: published on purpose.
    bridge_gw = json.loads(berth_cli.ok("network", "inspect", "bridge"))[0]["IPAM"]["Config"][0]["Gateway"]
    for network, via in (("bridge", bridge_gw), (net, gateway)):
        proc = sh(berth_cli, network, f"timeout 5 wget -qO- http://{via}:{port}/hostname")
        assert proc.returncode == 0, (network, proc.stderr)
        assert proc.stdout.strip() == cid[:12]


def test_a_taken_host_port_fails_cleanly_before_the_container_starts(berth_cli: BerthCLI) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        error = berth_cli.fail("run", "-d", "--name", "web", "-p", f"{port}:80", *HTTPD)
    assert "already allocated" in error and str(port) in error
    # As in Docker the container stays created; nothing of its start is left: no namespace, no rule.
    assert berth_cli.inspect("web")["State"]["Status"] == "created"
    netns_dir = berth_cli.run_dir / "netns"
    assert not netns_dir.exists() or not any(netns_dir.iterdir())
    assert not published_in_rules(port)


def test_a_port_berth_already_published_is_refused(berth_cli: BerthCLI) -> None:
    port = free_port()
    berth_cli.ok("run", "-d", "--name", "one", "-p", f"{port}:80", *HTTPD)
    error = berth_cli.fail("run", "-d", "--name", "two", "-p", f"{port}:80", *HTTPD)
    assert "already allocated" in error


def test_bad_port_specs_are_clear_errors(berth_cli: BerthCLI) -> None:
    for spec, words in (("70000:80", "1 to 65535"), ("80/icmp", "protocol"), ("1-3:4-5", "same length")):
        assert words in berth_cli.fail("run", "-p", spec, "busybox", "true")


# -- isolation, internal networks, outbound NAT, loopback ----------------------------------------------------


def test_network_none_has_only_loopback(berth_cli: BerthCLI) -> None:
    out = berth_cli.ok("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link")
    names = [line.split(":")[1].strip() for line in out.splitlines()]
    assert names == ["lo"]


def test_an_internal_network_has_no_route_out(berth_cli: BerthCLI, namespaces) -> None:  # type: ignore[no-untyped-def]
    outside = namespaces(None, "198.18.7.2/30", "198.18.7.1/30")
    berth_cli.ok("network", "create", "--internal", "inner")
    try:
        routes = berth_cli.ok("run", "--rm", "--network", "inner", "busybox", "ip", "route")
        assert "default" not in routes
        proc = sh(berth_cli, "inner", "timeout 3 nc 198.18.7.2 9000 </dev/null")
        assert proc.returncode != 0
    finally:
        berth_cli("network", "rm", "inner")
    del outside


def test_outbound_traffic_is_masqueraded(berth_cli: BerthCLI, namespaces) -> None:  # type: ignore[no-untyped-def]
    outside = namespaces(None, "198.18.8.2/30", "198.18.8.1/30")
    server = subprocess.Popen(
        ["ip", "netns", "exec", outside.name, "python3", "-c", PEER_PRINTER, "9000"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: "9000" in outside.run("ss", "-ltn").stdout, what="the outside listener")
        proc = sh(berth_cli, "bridge", "echo hi | timeout 5 nc 198.18.8.2 9000")
        assert proc.returncode == 0, proc.stderr
        peer = server.communicate(timeout=10)[0].strip()
        # The outside world sees the host's address, not the container's private one.
        assert peer == "198.18.8.1"
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_the_outside_reaches_published_ports_only(berth_cli: BerthCLI, namespaces) -> None:  # type: ignore[no-untyped-def]
    outside = namespaces(None, "198.18.9.2/30", "198.18.9.1/30")
    port = free_port()
    berth_cli.ok("run", "-d", "--name", "web", "-p", f"{port}:80", *HTTPD)
    address = network_of(berth_cli, "web", "bridge")["IPAddress"]
    subnet = json.loads(berth_cli.ok("network", "inspect", "bridge"))[0]["IPAM"]["Config"][0]["Subnet"]
    # A neighbour that routes the containers' subnet through this host (a LAN peer could).
    outside.run("ip", "route", "add", subnet, "via", "198.18.9.1")
    fetch = (
        "import socket,sys; c=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2); c.close()"
    )
    published = outside.run("python3", "-c", fetch, "198.18.9.1", str(port), check=False)
    assert published.returncode == 0, published.stderr
    direct = outside.run("python3", "-c", fetch, address, "80", check=False)
    assert direct.returncode != 0  # the host is no router onto container addresses


PEER_PRINTER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(1); s.settimeout(20)
conn, addr = s.accept(); print(addr[0], flush=True); conn.close()
"""


def test_a_neighbour_on_the_bridge_cannot_reach_host_loopback_services(
    berth_cli: BerthCLI, net: str, namespaces
) -> None:  # type: ignore[no-untyped-def]
    info = json.loads(berth_cli.ok("network", "inspect", net))[0]["IPAM"]["Config"][0]
    gateway = info["Gateway"]
    prefix = info["Subnet"].split("/")[1]
    neighbour_ip = gateway.rsplit(".", 1)[0] + ".250"
    neighbour = namespaces(bridge_of(berth_cli, net), f"{neighbour_ip}/{prefix}")
    # A neighbour that controls its namespace routes 127.0.0.1 through the gateway (CVE-2020-8558).
    neighbour.run("ip", "addr", "flush", "dev", "lo")  # no local 127.0.0.0/8 route left in it
    neighbour.run("ip", "link", "set", "lo", "down")
    neighbour.run(
        "sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1", "net.ipv4.conf.eth0.route_localnet=1"
    )
    neighbour.run("ip", "route", "add", "127.0.0.1/32", "via", gateway, "dev", "eth0")
    hits: list[str] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, addr = listener.accept()
            except OSError:
                continue
            hits.append(addr[0])
            conn.close()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2)"
    try:
        table = berth_cli.env["BERTH_NET_TAG"]
        before = dropped_to_loopback(table)
        blocked = neighbour.run("python3", "-c", probe, check=False)
        assert blocked.returncode != 0 and not hits
        # The packets did reach the host and Berth's rule is what dropped them: its counter moved.
        assert dropped_to_loopback(table) > before
        # The control: without that rule the same neighbour gets through (route_localnet alone
        # would let it), so the rule, not some accident of routing, keeps loopback private.
        subprocess.run(["nft", "flush", "chain", "ip", table, "input"], check=True)
        allowed = neighbour.run("python3", "-c", probe, check=False)
        assert allowed.returncode == 0, allowed.stderr
        wait_until(lambda: bool(hits), what="the listener to see the neighbour")
    finally:
        stop.set()
        acceptor.join()
        listener.close()
        berth_cli.ok("system", "reconcile")  # puts Berth's rules back


def dropped_to_loopback(table: str) -> int:
    chain = subprocess.run(
        ["nft", "list", "chain", "ip", table, "input"], capture_output=True, text=True
    ).stdout
    line = next(line for line in chain.splitlines() if "daddr 127.0.0.0/8" in line and "counter" in line)
    return int(line.split("packets")[1].split()[0])


# -- lifecycle of networks and leases ---------------------------------------------------------------------------


def test_network_rm_of_a_network_in_use_fails_naming_the_container(berth_cli: BerthCLI, net: str) -> None:
    berth_cli.ok("create", "--name", "holder", "--network", net, "busybox", "true")
    error = berth_cli.fail("network", "rm", net)
    assert "in use" in error and "holder" in error
    berth_cli.ok("rm", "holder")
    berth_cli.ok("network", "rm", net)
    assert net not in berth_cli.ok("network", "ls")
    berth_cli.ok("network", "create", net)  # for the fixture to remove


def test_network_create_refuses_overlaps_and_bad_input(berth_cli: BerthCLI) -> None:
    berth_cli.ok("network", "create", "--subnet", "10.231.0.0/24", "one")
    try:
        assert "overlaps" in berth_cli.fail("network", "create", "--subnet", "10.231.0.128/25", "two")
        assert "already exists" in berth_cli.fail("network", "create", "one")
        assert "host bits" in berth_cli.fail("network", "create", "--subnet", "10.232.0.1/24", "three")
        assert "not a usable address" in berth_cli.fail(
            "network", "create", "--subnet", "10.233.0.0/24", "--gateway", "10.234.0.1", "four"
        )
        assert "pre-defined" in berth_cli.fail("network", "rm", "bridge")
    finally:
        berth_cli("network", "rm", "one")
    assert berth_cli.ok("network", "ls", "-q", "--filter", "type=custom").strip() == ""


def test_fixed_ip_and_mac_are_given_and_released(berth_cli: BerthCLI) -> None:
    berth_cli.ok("network", "create", "--subnet", "10.235.0.0/24", "fixed")
    try:
        berth_cli.ok(
            "run", "-d", "--name", "fa", "--network", "fixed", "--ip", "10.235.0.50",
            "--mac-address", "02:42:0a:eb:00:99", "busybox", "sleep", "1000",
        )  # fmt: skip
        settings = network_of(berth_cli, "fa", "fixed")
        assert (settings["IPAddress"], settings["MacAddress"]) == ("10.235.0.50", "02:42:0a:eb:00:99")
        assert "already in use" in berth_cli.fail(
            "run", "-d", "--network", "fixed", "--ip", "10.235.0.50", "busybox", "true"
        )
        berth_cli.ok("rm", "-f", "fa")
        berth_cli.ok(
            "run",
            "-d",
            "--name",
            "fb",
            "--network",
            "fixed",
            "--ip",
            "10.235.0.50",
            "busybox",
            "sleep",
            "1000",
        )
        berth_cli.ok("rm", "-f", "fb")
    finally:
        berth_cli("network", "rm", "fixed")


def test_etc_files_follow_the_options(berth_cli: BerthCLI, net: str) -> None:
    out = berth_cli.ok(
        "run", "--rm", "--network", net, "--hostname", "box", "--add-host", "db:10.1.2.3",
        "--add-host", "gw:host-gateway", "--dns", "10.9.9.9", "--dns-search", "example.test",
        "busybox", "sh", "-c", "cat /etc/hosts /etc/resolv.conf; hostname",
    )  # fmt: skip
    gateway = json.loads(berth_cli.ok("network", "inspect", net))[0]["IPAM"]["Config"][0]["Gateway"]
    assert "10.1.2.3\tdb" in out and f"{gateway}\tgw" in out
    assert "nameserver 10.9.9.9" in out and "search example.test" in out
    assert out.strip().endswith("box")


def test_fifty_concurrent_runs_on_one_network_get_fifty_addresses(berth_cli: BerthCLI, net: str) -> None:
    def run(i: int) -> str:
        return berth_cli.ok(
            "run", "-d", "--name", f"c{i}", "--network", net, "busybox", "sleep", "1000", timeout=300
        )

    with ThreadPoolExecutor(max_workers=50) as pool:
        ids = [cid.strip() for cid in pool.map(run, range(50))]
    assert len(set(ids)) == 50
    members = json.loads(berth_cli.ok("network", "inspect", net))[0]["Containers"]
    addresses = {m["IPv4Address"] for m in members.values()}
    assert len(members) == 50 and len(addresses) == 50


# -- recovery ------------------------------------------------------------------------------------------------


def test_a_failure_half_way_through_setup_leaves_nothing(berth_cli: BerthCLI, net: str) -> None:
    # The interface name the veth wants is taken on the host: the set-up fails after the namespace
    # was made, and every step before it must be undone.
    port = free_port()
    berth_cli.ok("create", "--name", "web", "--network", net, "-p", f"{port}:80", *HTTPD)
    blocker = socket.socket()
    blocker.bind(("0.0.0.0", port))
    blocker.listen()
    try:
        assert "already allocated" in berth_cli.fail("start", "web")
    finally:
        blocker.close()
    assert berth_cli.inspect("web")["State"]["Status"] == "created"
    netns_dir = berth_cli.run_dir / "netns"
    assert not netns_dir.exists() or not any(netns_dir.iterdir())
    assert not published_in_rules(port)
    berth_cli.ok("start", "web")
    wait_until(lambda: answers(port), what="the port after a clean retry")


def test_an_engine_killed_mid_setup_is_cleaned_up_by_reconcile(berth_cli: BerthCLI, net: str) -> None:
    berth_cli.ok("create", "--name", "web", "--network", net, *HTTPD)
    proc = berth_cli.popen("start", "web", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    netns_dir = berth_cli.run_dir / "netns"
    wait_until(lambda: netns_dir.exists() and any(netns_dir.iterdir()), timeout=30, what="the namespace")
    proc.kill()
    proc.wait()
    berth_cli.ok("system", "reconcile")
    state = berth_cli.inspect("web")["State"]["Status"]
    if state == "running":
        berth_cli.ok("stop", "-t", "0", "web")
    berth_cli.ok("rm", "-f", "web")
    assert not any(netns_dir.iterdir())


# -- other network modes, events ---------------------------------------------------------------------------


def test_container_mode_shares_the_other_containers_network(berth_cli: BerthCLI, net: str) -> None:
    berth_cli.ok("run", "-d", "--name", "web", "--network", net, *HTTPD)
    address = network_of(berth_cli, "web", net)["IPAddress"]
    # Same namespace: the sidecar sees web's address and reaches its server on its own loopback.
    out = berth_cli.ok(
        "run", "--rm", "--network", "container:web", "busybox", "sh", "-c",
        "ip -o -4 addr; timeout 5 wget -qO- http://127.0.0.1/hostname; exit $?",
    )  # fmt: skip
    assert address in out
    assert "Error" not in berth_cli("port", "web").stderr
    error = berth_cli.fail("run", "--rm", "--network", "container:nosuch", "busybox", "true")
    assert "no such container" in error
    assert "cannot be combined" in berth_cli.fail(
        "run", "--network", "container:web", "-p", "80", "busybox", "true"
    )


def test_host_mode_sees_the_hosts_interfaces(berth_cli: BerthCLI) -> None:
    out = berth_cli.ok("run", "--rm", "--network", "host", "busybox", "ip", "-o", "link")
    assert "lo:" in out and len(out.splitlines()) > 1
    settings = berth_cli.inspect(berth_cli.ok("create", "--network", "host", "busybox", "true").strip())
    assert list(settings["NetworkSettings"]["Networks"]) == ["host"]


def test_network_actions_are_events_with_their_actor(berth_cli: BerthCLI, net: str) -> None:
    berth_cli.ok("create", "--name", "box", "busybox", "true")
    berth_cli.ok("network", "connect", net, "box")
    berth_cli.ok("network", "disconnect", net, "box")
    assert "network nosuchnet not found" in berth_cli.fail("network", "rm", "nosuchnet")
    lines = [json.loads(line) for line in berth_cli.ok("events", "--format", "json").splitlines()]
    seen = {(e.get("Type"), e.get("Action")) for e in lines}
    assert {("network", "create"), ("network", "connect"), ("network", "disconnect")} <= seen, seen
    network_events = [e for e in lines if e["Type"] == "network"]
    assert all(e["User"].startswith("cli:") for e in network_events)
    # The refused removal is recorded too, as an error with the reason.
    assert any(e["Result"] == "error" and "nosuchnet" in e["Message"] for e in lines), lines[-3:]


def test_the_housekeeping_loop_restarts_a_dead_name_server(engine_tx) -> None:  # type: ignore[no-untyped-def]
    import os
    import signal

    from engine import conf
    from engine.net import dns
    from engine.services import containers, lifecycle, networks, supervision, system
    from engine.services.options import ContainerOptions

    system.seed()
    networks.create("names")
    container = containers.create(
        ContainerOptions(image="busybox", command=("sleep", "1000"), network="names")
    )
    try:
        lifecycle.start(container.id)
        pid = dns.running_pid(conf.dns_dir())
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: dns.running_pid(conf.dns_dir()) is None, what="the name server to die")
        assert supervision.maintain() >= 1
        assert dns.running_pid(conf.dns_dir()) not in (None, pid)
        assert supervision.maintain() == 0  # nothing more to do once it runs
    finally:
        lifecycle.remove(container.id, force=True)
        networks.remove("names")
