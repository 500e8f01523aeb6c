"""The metrics sampler: one detached process per engine that records resource use every interval.

Every `interval` seconds it reads, for each running container of this engine (the ids in runc's
state root `$BERTH_RUN/runc/`, not every group under the shared `berth` cgroup parent), the cgroup
counters (runtime/cgroups.read_stats) and the network counters of the container's namespace
(/proc/<init pid>/net/dev), plus the host's CPU, memory and the free space under BERTH_ROOT, and
writes rates (CPU in percent of one core like `docker stats`, bytes per second) to the metrics store
(runtime/metricstore), which it also keeps rolled up and pruned. Imports no Django.

It exits within a second or two once no container of the engine runs and no server holds the
presence lock (runtime/presence). Run as `python -m engine.runtime.sampler ROOT RUN INTERVAL`;
`ensure_running` starts it, like the log keeper, through a shell that exits at once.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from engine.errors import EngineError, RuntimeFailure
from engine.runtime import cgroups, metricstore, presence, singleton

POLL = 0.5  # seconds between checks for "nothing left to sample"
_LOCK_NAME = "sampler.lock"
_PROJECT = Path(__file__).resolve().parents[2]  # where `engine` is importable from


@dataclass(frozen=True)
class Counters:
    """Cumulative counters of one container (or the host) at one moment (monotonic seconds)."""

    at: float
    cpu: float | None  # container: CPU nanoseconds; host: busy jiffies
    total: float | None  # host only: all jiffies
    rx: float | None
    tx: float | None
    rd: float | None
    wr: float | None


def rate(new: float | None, old: float | None, seconds: float) -> float | None:
    """Per-second increase of a counter; None when unknown or reset (a restart starts a new group)."""
    if new is None or old is None or new < old or seconds <= 0:
        return None
    return (new - old) / seconds


def net_bytes(pid: int) -> tuple[int | None, int | None]:
    """Received and sent bytes of every interface but lo in the namespace of `pid`."""
    try:
        with open(f"/proc/{pid}/net/dev", "rb") as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return None, None
    rx = tx = 0
    for line in lines:
        name, _, data = line.partition(b":")
        if name.strip() == b"lo":
            continue
        values = data.split()
        if len(values) >= 9:
            rx += int(values[0])
            tx += int(values[8])
    return rx, tx


def host_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat (guest time is already in user time)."""
    with open("/proc/stat", "rb") as f:
        fields = [int(v) for v in f.readline().split()[1:9]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields)
    return total - idle, total


def host_memory() -> tuple[int, int]:
    """(used, total) bytes: used is MemTotal - MemAvailable, what `free` calls used plus unreclaimable."""
    values: dict[bytes, int] = {}
    with open("/proc/meminfo", "rb") as f:
        for line in f:
            key, _, rest = line.partition(b":")
            if key in (b"MemTotal", b"MemAvailable"):
                values[key] = int(rest.split()[0]) * 1024
                if len(values) == 2:
                    break
    total = values.get(b"MemTotal", 0)
    return total - values.get(b"MemAvailable", total), total


def disk(root: Path) -> tuple[int, int]:
    """(free, total) bytes of the file system holding `root`, free as an unprivileged writer sees it."""
    st = os.statvfs(root)
    return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize


class Sampler:
    """Samples one engine's containers and its host into the store; `step` is one round."""

    def __init__(
        self, root: Path, run_dir: Path, interval: float, *, cgroup_root: Path = cgroups.ROOT
    ) -> None:
        self.root = root
        self.run_dir = run_dir
        self.runc_root = run_dir / "runc"
        self.interval = interval
        self.cgroup_root = cgroup_root
        self.mode = cgroups.detect_mode(cgroup_root)
        self.store = metricstore.connect(root / metricstore.FILE_NAME)
        metricstore.set_meta(self.store, "interval", interval)
        self.previous: dict[tuple[str, int], Counters] = {}
        self.pids: dict[str, tuple[int, int]] = {}  # id → (state.json mtime, init pid)
        self.seen_names: list[str] = []
        self.sampled = 0
        self.maintained = -math.inf

    def close(self) -> None:
        self.store.close()

    def running(self) -> dict[str, int]:
        """Container id → init pid for this engine's containers whose init process is alive."""
        found: dict[str, int] = {}
        try:
            names = os.listdir(self.runc_root)
        except FileNotFoundError:
            names = []
        self.seen_names = sorted(names)
        for name in names:
            state = self.runc_root / name / "state.json"
            try:
                mtime = os.stat(state).st_mtime_ns
                cached = self.pids.get(name)
                if cached is None or cached[0] != mtime:
                    # The state file is several kB of JSON: parse it only when runc rewrote it.
                    pid = int(json.loads(state.read_bytes())["init_process_pid"])
                    cached = self.pids[name] = (mtime, pid)
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if os.path.exists(f"/proc/{cached[1]}"):
                found[name] = cached[1]
        for gone in self.pids.keys() - set(names):
            del self.pids[gone]
        return found

    def step(self, t: float) -> int:
        """Sample everything once, stamped `t`; write rates for what was sampled before. Returns containers seen."""
        alive = self.running()
        host_total = host_memory()[1]
        samples: list[metricstore.Sample] = []
        current: dict[tuple[str, int], Counters] = {}
        for cid, pid in alive.items():
            try:
                st = cgroups.read_stats(cid, root=self.cgroup_root, mode=self.mode)
            except EngineError:
                continue
            rx, tx = net_bytes(pid)
            now = Counters(time.monotonic(), st.cpu_usage_ns, None, rx, tx, st.blkio_read, st.blkio_write)
            current[(cid, pid)] = now
            before = self.previous.get((cid, pid))
            if before is None:
                continue  # rates need two readings
            seconds = now.at - before.at
            cpu = rate(now.cpu, before.cpu, seconds)
            # Docker's "usage" leaves out the inactive page cache, which the kernel reclaims first.
            mem = None if st.memory_usage is None else max(0, st.memory_usage - (st.memory_cache or 0))
            samples.append(
                metricstore.Sample(
                    subject=cid,
                    t=t,
                    cpu=None if cpu is None else cpu / 1e9 * 100,
                    mem=mem,
                    mem_limit=st.memory_limit or host_total,
                    rx=rate(now.rx, before.rx, seconds),
                    tx=rate(now.tx, before.tx, seconds),
                    rd=rate(now.rd, before.rd, seconds),
                    wr=rate(now.wr, before.wr, seconds),
                )
            )
        host = self._host(t, current)
        if host is not None:
            samples.append(host)
        self.previous = current
        try:
            with metricstore.Transaction(self.store):
                metricstore.add(self.store, samples)
                if t // 60 != self.maintained // 60:  # rollups move by whole minutes
                    metricstore.maintain(self.store, t)
                    self.maintained = t
        except sqlite3.Error:
            pass  # busy past the timeout or disk full: this round is lost, the next one tries again
        self.sampled = len(alive)
        return len(alive)

    def _host(self, t: float, current: dict[tuple[str, int], Counters]) -> metricstore.Sample | None:
        busy, total = host_cpu()
        used, mem_total = host_memory()
        try:
            free, size = disk(self.root)
        except OSError:
            free = size = None  # type: ignore[assignment]
        now = Counters(time.monotonic(), busy, total, None, None, None, None)
        current[(metricstore.HOST, 0)] = now
        before = self.previous.get((metricstore.HOST, 0))
        if before is None or before.total is None or total <= before.total:
            return None
        cpu = (busy - (before.cpu or 0)) / (total - before.total) * 100
        return metricstore.Sample(
            subject=metricstore.HOST,
            t=t,
            cpu=max(0.0, min(100.0, cpu)),
            mem=used,
            mem_limit=mem_total,
            disk_free=free,
            disk_total=size,
        )

    def idle(self) -> bool:
        """True when nothing of this engine runs (as of the last round) and no server is up."""
        names = _names(self.run_dir)
        if names and (names != self.seen_names or self.sampled):
            return False  # a container started since the last round, or one runs
        return not presence.server_alive(self.run_dir)

    def loop(self) -> None:
        """Sample on the interval's grid until idle."""
        tick = math.ceil(time.time() / self.interval) * self.interval
        self.running()  # so that idle() knows the containers before the first round
        self.sampled = len(self.pids)
        while True:
            if time.time() >= tick:
                self.step(tick)
                tick += self.interval
                if tick <= time.time():  # suspended or overloaded: skip the missed rounds
                    tick = math.ceil(time.time() / self.interval) * self.interval
            if self.idle():
                return
            time.sleep(max(0.0, min(POLL, tick - time.time())))


def _try_lock(run_dir: Path) -> int | None:
    """The sampler's own flock (one per engine); its fd, or None if another sampler holds it."""
    return singleton.try_hold(run_dir / _LOCK_NAME)


def _names(run_dir: Path) -> list[str]:
    try:
        return sorted(os.listdir(run_dir / "runc"))
    except FileNotFoundError:
        return []


def run(root: Path, run_dir: Path, interval: float) -> None:
    """The sampler's life; returns when another sampler runs or nothing needs sampling."""
    while True:
        fd = _try_lock(run_dir)
        if fd is None:
            return
        try:
            sampler = Sampler(root, run_dir, interval)
            try:
                sampler.loop()
            finally:
                sampler.close()
        finally:
            os.close(fd)
        # A container started just before the lock was released found it held and started nobody;
        # a state dir left by a crash (unchanged since the last round) is no reason to stay.
        names = _names(run_dir)
        if not (names and names != sampler.seen_names) and not presence.server_alive(run_dir):
            return


def ensure_running(
    root: Path, run_dir: Path, *, interval: float, env: dict[str, str], lock: threading.Lock
) -> None:
    """Start the sampler of this engine unless one runs (see logkeeper.ensure_running for `lock`)."""
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = _try_lock(run_dir)
    if fd is None:
        return
    os.close(fd)
    argv = ["/bin/sh", "-c", '"$@" </dev/null >/dev/null 2>&1 &', "sh"]
    argv += [sys.executable, "-m", "engine.runtime.sampler", str(root), str(run_dir), repr(float(interval))]
    with lock:
        try:
            subprocess.run(argv, env=env, cwd=_PROJECT, check=True, timeout=10, start_new_session=True)
        except (OSError, subprocess.SubprocessError) as exc:
            raise RuntimeFailure(f"cannot start the metrics sampler: {exc}") from exc


if __name__ == "__main__":
    run(Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]))
