"""Berth's container cgroups: where they live, what they report, and removing them.

runc creates and configures the groups from the spec's cgroupsPath ("/berth/<id>", relative to each
hierarchy's root); this module only reads them and removes empty ones. It supports cgroup v1, hybrid
(v1 controllers plus a cgroup2 mount at /sys/fs/cgroup/unified, as on the Berth hosts) and v2, and
never touches a group outside the `berth` parent.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass
from pathlib import Path

from engine.errors import InvalidArgument, RuntimeFailure

ROOT = Path("/sys/fs/cgroup")
PARENT = "berth"
V1, HYBRID, V2 = "v1", "hybrid", "v2"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_V1_UNLIMITED = 1 << 62  # v1 reports "no limit" as PAGE_COUNTER_MAX pages, about 2**63


@dataclass(frozen=True)
class Stats:
    cpu_usage_ns: int | None
    memory_usage: int | None  # bytes charged, including page cache
    memory_cache: int | None  # inactive file pages (Docker subtracts them for "usage")
    memory_limit: int | None  # None when unlimited
    pids_current: int | None
    blkio_read: int | None
    blkio_write: int | None


def detect_mode(root: Path = ROOT) -> str:
    """Return "v2", "hybrid" or "v1" for the cgroup mount at `root`."""
    if (root / "cgroup.controllers").exists():
        return V2
    if (root / "unified" / "cgroup.controllers").exists():
        return HYBRID
    return V1


def cgroups_path_for(container_id: str) -> str:
    """Return the runc cgroupsPath for a container, e.g. "/berth/<id>"."""
    _check_id(container_id)
    return f"/{PARENT}/{container_id}"


def group_dirs(container_id: str, *, root: Path = ROOT, mode: str | None = None) -> list[Path]:
    """Return the existing directories of the container's group in every hierarchy."""
    _check_id(container_id)
    mode = mode or detect_mode(root)
    if mode == V2:
        candidates = [root / PARENT / container_id]
    else:
        try:
            hierarchies = sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())
        except OSError as exc:
            raise RuntimeFailure(f"cannot list {root}: {exc}") from exc
        candidates = [h / PARENT / container_id for h in hierarchies]
    return [c for c in candidates if c.is_dir()]


def read_stats(container_id: str, *, root: Path = ROOT, mode: str | None = None) -> Stats:
    """Read CPU, memory, pids and block I/O counters; a missing counter is None."""
    _check_id(container_id)
    mode = mode or detect_mode(root)
    # Plain strings, not Path joins: the metrics sampler reads every running container each interval.
    if mode == V2:
        g = f"{root}/{PARENT}/{container_id}/"
        cpu = _kv(g + "cpu.stat").get("usage_usec")
        mem_max = _read(g + "memory.max")
        io_read = io_write = None
        io = _read(g + "io.stat")
        if io is not None:
            io_read = io_write = 0
            for field in io.split():
                key, _, value = field.partition("=")
                if key == "rbytes":
                    io_read += int(value)
                elif key == "wbytes":
                    io_write += int(value)
        return Stats(
            cpu_usage_ns=cpu * 1000 if cpu is not None else None,
            memory_usage=_int(g + "memory.current"),
            memory_cache=_kv(g + "memory.stat").get("inactive_file"),
            memory_limit=None if mem_max in (None, "max") else int(mem_max),
            pids_current=_int(g + "pids.current"),
            blkio_read=io_read,
            blkio_write=io_write,
        )

    def v1(controller: str, name: str) -> str:
        return f"{root}/{controller}/{PARENT}/{container_id}/{name}"

    limit = _int(v1("memory", "memory.limit_in_bytes"))
    blk_read = blk_write = None
    blk = _read(v1("blkio", "blkio.throttle.io_service_bytes"))
    if blk is not None:
        blk_read = blk_write = 0
        for line in blk.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] == "Read":
                blk_read += int(parts[2])
            elif len(parts) == 3 and parts[1] == "Write":
                blk_write += int(parts[2])
    return Stats(
        cpu_usage_ns=_int(v1("cpuacct", "cpuacct.usage")),
        memory_usage=_int(v1("memory", "memory.usage_in_bytes")),
        memory_cache=_kv(v1("memory", "memory.stat")).get("total_inactive_file"),
        memory_limit=None if limit is None or limit >= _V1_UNLIMITED else limit,
        pids_current=_int(v1("pids", "pids.current")),
        blkio_read=blk_read,
        blkio_write=blk_write,
    )


def oom_killed(container_id: str, *, root: Path = ROOT, mode: str | None = None) -> bool:
    """True if the kernel OOM killer killed a process of this container's group.

    Read it before `runc delete`, which removes the group.
    """
    _check_id(container_id)
    mode = mode or detect_mode(root)
    if mode == V2:
        events = _kv(root / PARENT / container_id / "memory.events")
    else:
        events = _kv(root / "memory" / PARENT / container_id / "memory.oom_control")
    return (events.get("oom_kill") or 0) > 0


def remove(container_id: str, *, root: Path = ROOT, mode: str | None = None) -> bool:
    """Remove the container's (empty) groups in every hierarchy; True if none is left.

    A group that still has processes stays (EBUSY) and makes the result False; a missing one is fine.
    """
    left = False
    for d in group_dirs(container_id, root=root, mode=mode):
        try:
            os.rmdir(d)
        except FileNotFoundError:
            continue
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise RuntimeFailure(f"cannot remove cgroup {d}: {exc}") from exc
            left = True
    return not left


def _check_id(container_id: str) -> None:
    if not _ID.match(container_id):
        raise InvalidArgument(f"container id {container_id!r} is not a valid cgroup name")


def _read(path: Path | str) -> str | None:
    try:
        with open(path, "rb") as f:  # binary: no text wrapper to build per read
            return f.read().decode().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno in (errno.ENODEV, errno.EOPNOTSUPP, errno.EINVAL):
            return None
        raise RuntimeFailure(f"cannot read {path}: {exc}") from exc


def _int(path: Path | str) -> int | None:
    text = _read(path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _kv(path: Path | str) -> dict[str, int]:
    text = _read(path)
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out
