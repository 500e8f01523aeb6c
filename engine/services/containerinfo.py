"""Reading containers: inspect, logs, top, stats, diff."""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.errors import ContainerNotFound, InvalidArgument
from engine.models import Container, ContainerState
from engine.runtime import cgroups, logfile, logfollow, proctable
from engine.services import (
    bundle,
    containers,
    healthconfig,
    imagestore,
    lifecycle,
    netsetup,
    supervision,
    volumes,
)

ZERO_TIME = "0001-01-01T00:00:00Z"


def _iso(when: datetime | None) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if when else ZERO_TIME


def get(ref: str) -> Container:
    """Resolve and reconcile: the state returned is the truth at this moment."""
    return lifecycle.refresh(containers.resolve(ref))


def inspect(ref: str) -> dict[str, Any]:
    """Docker's `container inspect` shape."""
    c = get(ref)
    p = bundle.paths(c.id)
    mounts = []
    for m in c.mounts.select_related("volume"):
        entry: dict[str, Any] = {
            "Type": m.kind,
            "Source": volumes.mountpoint(m.volume) if m.volume else m.source,
            "Destination": m.destination,
            "Mode": "ro" if m.read_only else "",
            "RW": not m.read_only,
            "Propagation": "rprivate" if m.kind != "tmpfs" else "",
        }
        if m.volume:
            entry["Name"] = m.volume.name
            entry["Driver"] = "local"
        mounts.append(entry)
    return {
        "Id": c.id,
        "Created": _iso(c.created),
        "Path": (c.config.get("Entrypoint") or c.config.get("Cmd") or [""])[0],
        "Args": ((c.config.get("Entrypoint") or []) + (c.config.get("Cmd") or []))[1:],
        "State": {
            "Status": c.state,
            "Running": c.state in (ContainerState.RUNNING, ContainerState.PAUSED),
            "Paused": c.state == ContainerState.PAUSED,
            "Restarting": c.state == ContainerState.RESTARTING,
            "OOMKilled": c.oom_killed,
            "Dead": c.state == ContainerState.DEAD,
            "Pid": c.pid if c.state in lifecycle.ACTIVE else 0,
            "ExitCode": c.exit_code,
            "Error": c.error,
            "StartedAt": _iso(c.started_at),
            "FinishedAt": _iso(c.finished_at),
            **_health(c),
        },
        "Image": c.image_id,
        "ResolvConfPath": str(p.userdata / "resolv.conf"),
        "HostnamePath": str(p.userdata / "hostname"),
        "HostsPath": str(p.userdata / "hosts"),
        "LogPath": str(p.log),
        "Name": f"/{c.name}",
        "RestartCount": c.restart_count,
        "Driver": "overlay",
        "Platform": "linux",
        "HostConfig": c.host_config,
        "GraphDriver": {
            "Name": "overlay",
            "Data": {
                "UpperDir": str(p.upper),
                "WorkDir": str(p.work),
                "MergedDir": str(p.rootfs),
                "LowerDir": ":".join(str(x) for x in imagestore.layer_paths(c.image)),
            },
        },
        "Mounts": mounts,
        "Config": c.config,
        "NetworkSettings": network_settings(c),
    }


def _health(c: Container) -> dict[str, Any]:
    """State.Health, as Docker shows it: only for a container with a health check that has started."""
    if healthconfig.effective(c) is None:
        return {}
    if c.health:
        return {"Health": c.health}
    if c.state in lifecycle.ACTIVE:  # started, no check has reported yet
        return {"Health": {"Status": healthconfig.STARTING, "FailingStreak": 0, "Log": []}}
    return {}


def network_settings(c: Container) -> dict[str, Any]:
    """Docker's NetworkSettings: the networks with addresses, and the published ports in force."""
    networks = netsetup.container_networks(c)
    bridge = networks.get("bridge") or {}  # Docker's top-level fields describe the default bridge only
    ports: dict[str, Any] = {key: None for key in (c.config.get("ExposedPorts") or {})}
    for b in netsetup.bindings(c):
        ports.setdefault(f"{b.container_port}/{b.proto}", None)
        ports[f"{b.container_port}/{b.proto}"] = [
            *(ports[f"{b.container_port}/{b.proto}"] or []),
            {"HostIp": b.host_ip or "0.0.0.0", "HostPort": str(b.host_port)},
        ]
    running = c.state in (ContainerState.RUNNING, ContainerState.PAUSED)
    return {
        "Bridge": "",
        "SandboxID": c.id if running and netsetup.netns_path(c.id).exists() else "",
        "SandboxKey": str(netsetup.netns_path(c.id))
        if running and netsetup.netns_path(c.id).exists()
        else "",
        "Ports": ports,
        "IPAddress": bridge.get("IPAddress", ""),
        "Gateway": bridge.get("Gateway", ""),
        "MacAddress": bridge.get("MacAddress", ""),
        "Networks": networks,
    }


def ports_text(c: Container) -> str:
    """`docker ps`'s PORTS column: 0.0.0.0:8080->80/tcp, …"""
    return ", ".join(
        f"{b.host_ip or '0.0.0.0'}:{b.host_port}->{b.container_port}/{b.proto}" for b in netsetup.bindings(c)
    )


def port_lines(ref: str, private_port: str | None = None) -> list[str]:
    """`docker port`: every published port, or the host addresses of one (`80`, `80/tcp`)."""
    c = get(ref)
    found = netsetup.bindings(c)
    if private_port:
        number, _, proto = private_port.partition("/")
        proto = proto or "tcp"
        matched = [b for b in found if str(b.container_port) == number and b.proto == proto]
        if not matched:
            raise InvalidArgument(f"no public port '{number}/{proto}' published for {c.name}")
        return [f"{b.host_ip or '0.0.0.0'}:{b.host_port}" for b in matched]
    return [f"{b.container_port}/{b.proto} -> {b.host_ip or '0.0.0.0'}:{b.host_port}" for b in found]


@dataclass(frozen=True)
class LogQuery:
    follow: bool = False
    tail: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    stdout: bool = True
    stderr: bool = True


def logs(ref: str, query: LogQuery, *, stop: threading.Event | None = None) -> Iterator[logfile.LogLine]:
    """The container's log lines (across rotated files). With follow, keeps going until it exits or `stop`."""
    container = containers.resolve(ref)
    path = bundle.paths(container.id).log
    if container.state in lifecycle.ACTIVE:
        supervision.rotate_log(container)  # reading is a good moment; the server's loop does it too
    streams = [s for s, on in (("stdout", query.stdout), ("stderr", query.stderr)) if on]
    if not query.follow:
        yield from logfile.read_log(
            path, since=query.since, until=query.until, tail=query.tail, streams=streams
        )
        return
    if container.state not in lifecycle.ACTIVE:
        # Nothing more will be written: following a stopped container is reading it (Docker ends too).
        yield from logfile.read_log(
            path, since=query.since, until=query.until, tail=query.tail, streams=streams
        )
        return
    outer = stop or threading.Event()
    drain = _DrainThenStop(outer)
    watcher = threading.Thread(target=_stop_when_exited, args=(container, drain), daemon=True)
    watcher.start()
    try:
        for line in logfollow.follow(
            path,
            stop=drain,  # type: ignore[arg-type]
            since=query.since,
            tail=query.tail,
            streams=streams,
        ):
            if query.until is not None and line.time >= query.until:
                break
            yield line
    finally:
        drain.finish()


class _DrainThenStop:
    """The stop event handed to logfollow.follow: once the container exited, end at the end of the file.

    follow checks `is_set()` between chunks and calls `wait()` only at the end of the file. A stop
    requested by the watcher (`request()`) takes effect at the first end of file reached *after*
    the request, so every line conmon wrote before its exit file is read, however long the log.
    The caller's own event (`outer`, e.g. the CLI on ^C or a closed websocket) stops at once.
    """

    def __init__(self, outer: threading.Event) -> None:
        self._outer = outer
        self._wake = threading.Event()
        self._requested = False
        self._drained = False

    def request(self) -> None:
        self._requested = True
        self._wake.set()

    def finish(self) -> None:
        self._drained = True
        self._wake.set()

    def is_set(self) -> bool:
        return self._drained or self._outer.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        if self._requested:
            self._drained = True  # at the end of the file after the exit: everything was read
            return True
        self._wake.wait(timeout)
        self._wake.clear()
        return self.is_set()


def _stop_when_exited(container: Container, drain: _DrainThenStop) -> None:
    """Ask the follower to end once the container is no longer running (after it drained the file)."""
    from django.db import close_old_connections

    try:
        while not drain.is_set():
            fresh = Container.objects.filter(id=container.id).first()
            if fresh is None or fresh.state not in lifecycle.ACTIVE:
                drain.request()
                return
            lifecycle.await_exit(fresh, 0.25)  # wakes at the exit (pidfd), not at the next poll
            try:
                lifecycle.refresh(fresh)
            except ContainerNotFound:
                continue  # removed meanwhile (rm -f): the next look ends the follow
    except Exception:
        drain.request()  # a follower must end rather than hang when its watcher cannot watch
        raise
    finally:
        close_old_connections()


def top(ref: str) -> list[proctable.Process]:
    """The container's processes as `docker top` (`ps -ef`) shows them, zombies included.

    Read from the container's cgroup (with its sub-groups) and the host's /proc, not from inside.
    """
    container = get(ref)
    containers.check("top", container)
    return proctable.list_processes(cgroups.group_dirs(container.id))


@dataclass(frozen=True)
class StatsSample:
    container_id: str
    name: str
    time: float
    cpu_ns: int
    memory_usage: int
    memory_limit: int
    pids: int
    block_read: int
    block_write: int
    net_rx: int
    net_tx: int
    memory_limited: bool = False  # False: memory_limit is the host's memory, as docker stats shows it


def stats(ref: str) -> StatsSample:
    """One sample of resource use from the container's cgroups (v1 or v2) and its network namespace."""
    container = get(ref)
    if container.state not in lifecycle.ACTIVE:
        return StatsSample(container.id, container.name, time.time(), 0, 0, 0, 0, 0, 0, 0, 0)
    sample = cgroups.read_stats(container.id)
    rx, tx = _net_bytes(container.pid)
    limit = sample.memory_limit or _host_memory()
    # Docker's "usage" leaves out the inactive page cache, which the kernel reclaims first.
    usage = max(0, (sample.memory_usage or 0) - (sample.memory_cache or 0))
    return StatsSample(
        container.id,
        container.name,
        time.time(),
        sample.cpu_usage_ns or 0,
        usage,
        limit,
        sample.pids_current or 0,
        sample.blkio_read or 0,
        sample.blkio_write or 0,
        rx,
        tx,
        memory_limited=bool(sample.memory_limit),
    )


def _net_bytes(pid: int) -> tuple[int, int]:
    rx = tx = 0
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            for line in f.readlines()[2:]:
                name, _, data = line.partition(":")
                if name.strip() == "lo":
                    continue
                values = data.split()
                rx += int(values[0])
                tx += int(values[8])
    except (OSError, IndexError, ValueError):
        pass
    return rx, tx


def _host_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


# Mount points runc creates in the container layer for the engine's own mounts; they are not changes
# the container made (Docker keeps them in a hidden init layer, Podman filters the same list).
_INIT_PATHS = frozenset(
    ("/dev", "/proc", "/sys", "/run", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/etc/mtab")
)


def diff(ref: str) -> list[tuple[str, str]]:
    """Changes in the container layer: (kind, path) with kind A (added), C (changed) or D (deleted).

    Mount points the engine put there (its /etc files, volume and tmpfs destinations) are left out,
    and so is a directory listed only because of them.
    """
    container = containers.resolve(ref)
    upper = bundle.paths(container.id).upper
    lowers = imagestore.layer_paths(container.image)
    if not upper.is_dir():
        raise InvalidArgument(f"container {container.name} has no layer on disk")
    hidden = _INIT_PATHS | {m.destination for m in container.mounts.all()}
    changes: list[tuple[str, str]] = []
    directories: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(upper):
        rel_dir = os.path.relpath(dirpath, upper)
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = "/" + os.path.normpath(os.path.join(rel_dir, name)).lstrip("./")
            if rel in hidden:
                continue
            st = os.lstat(full)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                changes.append(("D", rel))
            elif any(os.path.lexists(Path(lower) / rel.lstrip("/")) for lower in lowers):
                changes.append(("C", rel))
                if stat.S_ISDIR(st.st_mode):
                    directories.add(rel)
            else:
                changes.append(("A", rel))
    kept = [
        (kind, path)
        for kind, path in changes
        if path not in directories
        or any(p.startswith(path + "/") for _, p in changes if p not in directories)
    ]
    return sorted(kept, key=lambda c: c[1])
