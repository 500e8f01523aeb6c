"""aardvark-dns, the name server of user networks: its files, and the one process that serves them.

aardvark-dns (Podman's, packaged by Debian) reads one file per network from a directory and answers
on each network's gateway address; it daemonises itself, so it keeps answering while no Berth
process runs, re-reads its files on SIGHUP and exits by itself once no file is left. File format
(aardvark-dns 1.4): a first line with the address to listen on, then one line per container:
`ID IPV4S IPV6S NAMES`, fields separated by exactly one space, lists by commas.
"""

from __future__ import annotations

import ipaddress
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from engine.errors import RuntimeFailure, Unavailable

BINARIES = ("/usr/lib/podman/aardvark-dns", "/usr/libexec/podman/aardvark-dns", "/usr/bin/aardvark-dns")
PORT = 53
PID_FILE = "aardvark.pid"
START_TIMEOUT = 5.0


@dataclass(frozen=True)
class Record:
    container_id: str
    address: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class NetworkRecords:
    network: str
    gateway: str
    containers: list[Record]


def binary() -> str:
    found = next((b for b in BINARIES if os.access(b, os.X_OK)), None)
    if found is None:
        raise Unavailable(
            "aardvark-dns is not installed: names on user networks need it", hint="make setup installs it"
        )
    return found


_SAFE_NAME = re.compile(r"[a-z0-9]([a-z0-9_.-]*[a-z0-9])?")


def render(records: NetworkRecords) -> str:
    """One network's file. Names that are not plain DNS names are left out: a space, comma or
    newline would change the file's meaning (or make aardvark refuse every file)."""
    lines = [str(ipaddress.IPv4Address(records.gateway))]
    for r in records.containers:
        names = [n.lower() for n in r.names if _SAFE_NAME.fullmatch(n.lower())]
        if not names or not re.fullmatch(r"[0-9a-f]{64}", r.container_id):
            continue
        # An empty IPv6 list is two adjacent spaces: aardvark splits on single spaces.
        lines.append(f"{r.container_id} {ipaddress.IPv4Address(r.address)}  {','.join(names)}")
    return "\n".join(lines) + "\n"


def mentions(directory: Path, container_id: str) -> bool:
    """Whether any network file names this container (so a teardown must rewrite them)."""
    if not directory.is_dir():
        return False
    needle = f"\n{container_id} "
    for path in directory.iterdir():
        if path.name != PID_FILE and path.is_file():
            try:
                if needle in path.read_text():
                    return True
            except OSError:
                continue
    return False


def has_records(directory: Path) -> bool:
    """Whether the directory holds any network's file (so a server should be running for it)."""
    try:
        return any(p.name != PID_FILE for p in directory.iterdir())
    except OSError:
        return False


def apply(directory: Path, networks: list[NetworkRecords], *, forward: bool = True) -> None:
    """Make the directory hold exactly these networks, then start or reload its server (or let it go).

    With forward=False the server answers only the names it holds (internal networks: no name
    query may reach the host's resolvers, which would be a way out).
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging = directory.parent / f".{directory.name}-staging"
    staging.mkdir(mode=0o700, exist_ok=True)
    wanted = {n.network for n in networks if n.containers}
    changed = False
    for n in networks:
        if not n.containers:
            continue
        text = render(n)
        target = directory / n.network
        try:
            if target.read_text() == text:
                continue  # a reload makes aardvark rebind, dropping queries meanwhile: only when needed
        except OSError:
            pass
        # Written beside the directory and renamed in: aardvark parses every file it finds there.
        tmp = staging / n.network
        tmp.write_text(text)
        os.replace(tmp, target)
        changed = True
    for path in directory.iterdir():
        if path.name != PID_FILE and path.name not in wanted:
            path.unlink(missing_ok=True)
            changed = True
    pid = running_pid(directory)
    if wanted:
        if pid is None:
            _start(directory, forward=forward)
        elif changed:
            os.kill(pid, signal.SIGHUP)
        else:
            return
        wait_ready([n.gateway for n in networks if n.containers])
    elif pid is not None:
        stop(directory)


# A query for the root's NS record: any answer at all says the server is listening again.
_PROBE = bytes.fromhex("beef01000001000000000000") + b"\x00\x00\x02\x00\x01"


def wait_ready(addresses: list[str], timeout: float = 2.0) -> bool:
    """Wait until aardvark answers on every address (it rebinds after a start or reload)."""
    deadline = time.monotonic() + timeout
    for address in addresses:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.settimeout(0.02)
            while True:
                try:
                    probe.sendto(_PROBE, (address, PORT))
                    probe.recv(512)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        return False
                    time.sleep(0.005)
    return True


def running_pid(directory: Path) -> int | None:
    """The pid of the aardvark-dns serving this directory, checked against its command line."""
    try:
        pid = int((directory / PID_FILE).read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    if str(directory).encode() not in cmdline or not any(b"aardvark" in part for part in cmdline[:1]):
        return None  # a stale pid file: that pid is someone else now
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            if f.read().split(b") ", 1)[1][:1] == b"Z":
                return None
    except (OSError, IndexError):
        return None
    return pid


def _start(directory: Path, *, forward: bool) -> None:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "RUST_LOG": "warn"}
    if not forward or os.environ.get("BERTH_DNS_NO_FORWARD") == "1":
        # Internal networks, and tests: no query may leave the machine's own namespaces.
        env["AARDVARK_NO_PROXY"] = "1"
    argv = [binary(), "--config", str(directory), "-p", str(PORT), "run"]
    try:
        # It forks and the parent returns once the child has written its pid file.
        subprocess.run(
            argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=START_TIMEOUT, check=True
        )
    except subprocess.CalledProcessError as exc:
        raise RuntimeFailure(
            f"aardvark-dns failed to start: {exc.stderr.decode(errors='replace').strip()[-500:]}",
            argv=argv,
            exit_code=exc.returncode,
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise RuntimeFailure("aardvark-dns did not start in time", argv=argv) from exc


def stop(directory: Path, timeout: float = 5.0) -> None:
    """Stop the server of this directory (if any) and wait for it to go."""
    pid = running_pid(directory)
    if pid is None:
        (directory / PID_FILE).unlink(missing_ok=True)
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while running_pid(directory) == pid and time.monotonic() < deadline:
        time.sleep(0.01)
    (directory / PID_FILE).unlink(missing_ok=True)
