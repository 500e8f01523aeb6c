"""Benchmark: TCP throughput through a published port, and name lookups on a user network.

    .venv/bin/python bench/net_throughput.py [--size-mb 256] [--reps 7] [--queries 500]

A private engine (its own BERTH_ROOT, BERTH_RUN and network tag "bbnet", so a real install is never
touched) creates a user network and two busybox containers on it:
  web     `httpd -f -p 80 -h /tmp` serving /tmp/big (--size-mb of zeros), published on 127.0.0.1:PORT
  client  `sleep`, whose network namespace the DNS client joins
Throughput: the host downloads http://…/big into a sink (a reused buffer), alternately
  published  127.0.0.1:PORT → nft DNAT → bridge → veth → web
  direct     web's bridge address:80 (inside the namespace Berth created)
and prints the median MB/s of each and published / direct. Goal: >= 0.9.
Names: a UDP socket made inside client's namespace (NetworkSettings.SandboxKey) sends --queries A
queries for "web" to aardvark-dns on the network's gateway, one at a time, checks each answer holds
web's address, and prints the median and p99 in ms. BERTH_DNS_NO_FORWARD=1: no query leaves the machine.
Everything (containers, network, bridge, nft table, DNS server, mounts, temp dirs) is removed at the
end, even after a failure.
"""

from __future__ import annotations

import argparse
import ctypes
import ipaddress
import os
import secrets
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

from cleanup import exit_cleanly_on_signals, hold_signals, remove_containers, remove_dirs

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ROOT = Path(tempfile.mkdtemp(prefix="bt-bench-", dir="/tmp"))
RUN = Path(tempfile.mkdtemp(prefix="bt-bench-", dir="/run" if os.access("/run", os.W_OK) else "/tmp"))
NET_TAG = "bbnet"
os.environ.update(
    BERTH_ROOT=str(ROOT),
    BERTH_RUN=str(RUN),
    BERTH_ADMIN_PASSWORD="bench-only",
    DJANGO_SETTINGS_MODULE="dashboard.settings",
    BERTH_NET_TAG=NET_TAG,
    BERTH_DNS_NO_FORWARD="1",
)
os.environ.pop("DATABASE_URL", None)

NETWORK = "bbnet-user"
BRIDGE = "bbnet-br1"
THROUGHPUT_GOAL = 0.9  # published / direct
CHUNK = 1 << 20
CLONE_NEWNET = 0x40000000


def _setup_django() -> None:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    from engine.services import system

    system.seed()


def free_port() -> int:
    """A TCP port nothing on 127.0.0.1 uses now (the engine checks again when it publishes)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_containers(size_mb: int, port: int) -> tuple[str, str]:
    from engine.services import containers, lifecycle
    from engine.services.options import ContainerOptions

    script = f"dd if=/dev/zero of=/tmp/big bs=1M count={size_mb} 2>/dev/null && exec httpd -f -p 80 -h /tmp"
    web = containers.create(
        ContainerOptions(
            image="busybox",
            name="web",
            command=("sh", "-c", script),
            network=NETWORK,
            publish=(f"127.0.0.1:{port}:80",),
        )
    )
    lifecycle.start(web.id)
    client = containers.create(
        ContainerOptions(image="busybox", name="client", command=("sleep", "3600"), network=NETWORK)
    )
    lifecycle.start(client.id)
    return web.id, client.id


# -- throughput --------------------------------------------------------------------------------------


def download(address: str, port: int, sink: bytearray, timeout: float = 60.0) -> tuple[int, float, float]:
    """GET /big over HTTP/1.0 into `sink`.

    Returns (body bytes, seconds from connect to the last byte, CPU seconds this thread spent).
    """
    view = memoryview(sink)
    c0 = time.thread_time()
    t0 = time.perf_counter()
    with socket.create_connection((address, port), timeout=timeout) as s:
        s.sendall(f"GET /big HTTP/1.0\r\nHost: {address}\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            n = s.recv_into(view)
            if n == 0:
                raise RuntimeError(f"{address}:{port} closed before the headers ended: {head[:200]!r}")
            head += bytes(view[:n])
        status = head.split(b"\r\n", 1)[0]
        if b" 200 " not in status + b" ":
            raise RuntimeError(f"{address}:{port} answered {status!r}")
        total = len(head) - head.index(b"\r\n\r\n") - 4
        while True:
            n = s.recv_into(view)
            if n == 0:
                break
            total += n
    return total, time.perf_counter() - t0, time.thread_time() - c0


def wait_ready(address: str, port: int, size: int, timeout: float = 120.0) -> None:
    """Until httpd serves the whole file (dd has finished before httpd starts)."""
    sink = bytearray(CHUNK)
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            got, _, _ = download(address, port, sink, timeout=10)
            if got == size:
                return
            last = RuntimeError(f"got {got} of {size} bytes")
        except (OSError, RuntimeError) as exc:
            last = exc
        time.sleep(0.1)
    raise SystemExit(f"web did not serve /big on {address}:{port} in time: {last}")


def measure_throughput(
    targets: dict[str, tuple[str, int]], size: int, reps: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """MB/s of each download per target, and the share of its time the client spent on a CPU."""
    sink = bytearray(CHUNK)
    results: dict[str, list[float]] = {name: [] for name in targets}
    busy: dict[str, list[float]] = {name: [] for name in targets}
    for address, port in targets.values():
        download(address, port, sink)  # warm: page cache in the container, conntrack, ARP
    for _ in range(reps):
        for name, (address, port) in targets.items():  # interleaved, so drift hits both alike
            got, seconds, cpu = download(address, port, sink)
            if got != size:
                raise SystemExit(f"{name}: got {got} of {size} bytes")
            results[name].append(got / seconds / 1e6)
            busy[name].append(cpu / seconds)
    return results, busy


# -- names -------------------------------------------------------------------------------------------


def socket_in_netns(path: str) -> socket.socket:
    """A UDP socket that lives in the namespace at `path`: made by a thread that joined it, then ended.

    A socket stays in the namespace it was created in, so the main thread can use it afterwards.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    out: dict[str, object] = {}

    def body() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    code = ctypes.get_errno()
                    raise OSError(code, f"setns {path}: {os.strerror(code)}")
            finally:
                os.close(fd)
            out["sock"] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        except BaseException as exc:  # noqa: BLE001 — handed to the caller's thread
            out["error"] = exc

    thread = threading.Thread(target=body, name="bench-netns")
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return out["sock"]  # type: ignore[return-value]


def dns_query(name: str, query_id: int) -> bytes:
    header = struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 0)  # recursion desired, one question
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return header + qname + struct.pack("!HH", 1, 1)  # A, IN


def _skip_name(data: bytes, offset: int) -> int:
    while True:
        length = data[offset]
        if length == 0:
            return offset + 1
        if length & 0xC0 == 0xC0:
            return offset + 2
        offset += 1 + length


def answer_addresses(data: bytes, query_id: int) -> list[str]:
    rid, flags, qd, an, _, _ = struct.unpack_from("!HHHHHH", data)
    if rid != query_id:
        raise ValueError(f"answer id {rid} is not the query's {query_id}")
    if flags & 0xF:
        raise ValueError(f"rcode {flags & 0xF}")
    offset = 12
    for _ in range(qd):
        offset = _skip_name(data, offset) + 4
    found = []
    for _ in range(an):
        offset = _skip_name(data, offset)
        rtype, _, _, length = struct.unpack_from("!HHIH", data, offset)
        offset += 10
        if rtype == 1 and length == 4:
            found.append(str(ipaddress.IPv4Address(data[offset : offset + 4])))
        offset += length
    return found


def measure_dns(sandbox: str, server: str, name: str, expected: str, count: int) -> list[float]:
    sock = socket_in_netns(sandbox)
    with sock:
        sock.settimeout(1.0)
        sock.connect((server, 53))

        def one() -> float:
            query_id = secrets.randbelow(0x10000)
            t0 = time.perf_counter()
            sock.send(dns_query(name, query_id))
            while True:
                data = sock.recv(512)
                elapsed = time.perf_counter() - t0
                try:
                    got = answer_addresses(data, query_id)
                except ValueError as exc:
                    if "answer id" in str(exc):
                        continue  # a late answer to an earlier, timed-out query
                    raise
                if expected not in got:
                    raise ValueError(f"{name} resolved to {got}, not {expected}")
                return elapsed

        deadline = time.monotonic() + 10
        while True:  # aardvark-dns may still be reading its files
            try:
                one()
                break
            except (OSError, ValueError) as exc:
                if time.monotonic() > deadline:
                    raise SystemExit(f"no answer for {name} from {server}:53 in {sandbox}: {exc}") from exc
                time.sleep(0.05)
        for _ in range(20):
            one()  # warm
        samples, lost = [], 0
        for _ in range(count):
            try:
                samples.append(one())
            except TimeoutError:
                lost += 1
        if lost:
            print(f"dns: {lost} of {count} queries got no answer within 1 s", file=sys.stderr)
        return samples


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


# -- clean-up ----------------------------------------------------------------------------------------


def cleanup_engine() -> None:
    from engine.models import Network
    from engine.services import networks

    remove_containers()
    for n in Network.objects.filter(predefined=False):
        try:
            networks.remove(n.id)
        except Exception as exc:  # noqa: BLE001
            print(f"cleanup of network {n.name}: {exc}", file=sys.stderr)
    networks.teardown_host()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--queries", type=int, default=500)
    args = parser.parse_args()
    exit_cleanly_on_signals()
    django_ready = False
    try:
        if os.geteuid() != 0:
            raise SystemExit("run as root (runc, conmon, overlay mounts and network namespaces need it)")
        _setup_django()
        django_ready = True
        from engine.services import containerinfo, networks

        network = networks.create(NETWORK, options={networks.BRIDGE_NAME_OPTION: BRIDGE})
        port = free_port()
        web_id, client_id = start_containers(args.size_mb, port)
        web_ip = containerinfo.inspect(web_id)["NetworkSettings"]["Networks"][NETWORK]["IPAddress"]
        sandbox = containerinfo.inspect(client_id)["NetworkSettings"]["SandboxKey"]
        size = args.size_mb * (1 << 20)
        print(
            f"network {NETWORK} ({network.subnet}, gateway {network.gateway}, bridge {BRIDGE}); web at {web_ip}"
        )
        wait_ready(web_ip, 80, size)
        wait_ready("127.0.0.1", port, size)

        targets = {"published": ("127.0.0.1", port), "direct": (web_ip, 80)}
        mbps, busy = measure_throughput(targets, size, args.reps)
        print(f"{'path':<44} {'median MB/s':>12} {'min':>8} {'max':>8} {'client CPU':>11}")
        labels = {
            "published": f"published 127.0.0.1:{port} -> web:80",
            "direct": f"direct {web_ip}:80",
        }
        for name, samples in mbps.items():
            print(
                f"{labels[name]:<44} {statistics.median(samples):>12.0f} "
                f"{min(samples):>8.0f} {max(samples):>8.0f} {statistics.median(busy[name]):>10.0%}"
            )
        ratio = statistics.median(mbps["published"]) / statistics.median(mbps["direct"])
        print(
            f"goal: published / direct >= {THROUGHPUT_GOAL:.2f}: "
            f"{'met' if ratio >= THROUGHPUT_GOAL else 'NOT met'} ({ratio:.2f}) "
            f"[{args.reps} downloads of {args.size_mb} MiB each way]"
        )

        lookups = measure_dns(sandbox, network.gateway, "web", web_ip, args.queries)
        print(
            f"dns: {len(lookups)} A queries for 'web' from client's namespace to {network.gateway}:53: "
            f"median {statistics.median(lookups) * 1000:.3f} ms, p99 {percentile(lookups, 99) * 1000:.3f} ms, "
            f"max {max(lookups) * 1000:.3f} ms"
        )
        return 0
    finally:
        hold_signals()
        if django_ready:
            try:
                cleanup_engine()
            except Exception as exc:  # noqa: BLE001
                print(f"cleanup: {exc}", file=sys.stderr)
        remove_dirs(ROOT, RUN)


if __name__ == "__main__":
    sys.exit(main())
