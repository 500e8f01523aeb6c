"""Benchmark: what the metrics sampler costs with 200 running containers, and how fast a week of history reads.

    .venv/bin/python bench/metrics.py [--count 200] [--seconds 120] [--interval 10] [--history-containers 200]

Starts COUNT idle busybox containers (`sleep 100000`) through the services in process, which start
the engine's sampler (runtime/sampler) at BERTH_METRICS_INTERVAL=INTERVAL. Once all run, it waits a
round, then measures the sampler over SECONDS: CPU time (utime + stime from /proc/<pid>/stat) per
second of wall time, in % of one core, and its RSS (VmRSS now, VmHWM the peak, from
/proc/<pid>/status). Goals: under 1 % of one core and under 30 MB. Baselines measured in the same
run: the RSS of a bare `python3 -c` that imports nothing, and the CPU time this process needs to read
the same counters once (cgroups.read_stats + /proc/<pid>/net/dev for every container), so the
sampler's figure can be read as "reading" plus "storing".

Then it removes the containers (always, even after a failure), feeds a fresh store a simulated week of
10-second samples for HISTORY_CONTAINERS containers (rolled up as the sampler does; a few minutes for
200), and times `metrics.history(id, since=7 days)` for one of them (goal: ≤ 200 ms), with 1 hour
and 1 day for comparison.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from cleanup import stop_engine

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def _status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _samplers(run: Path) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if b"engine.runtime.sampler" in cmdline and str(run).encode() in cmdline:
                found.append(int(entry))
    return found


def _mib(n: float) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def _bare_python_rss() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3)"])
    try:
        time.sleep(1)
        return _status(proc.pid, "VmRSS")
    finally:
        proc.kill()
        proc.wait()


def _read_once(ids: list[str], pids: dict[str, int]) -> float:
    """CPU seconds this process spends reading every container's counters once (the baseline)."""
    from engine.runtime import cgroups, sampler

    mode = cgroups.detect_mode()
    t0 = time.process_time()
    for cid in ids:
        cgroups.read_stats(cid, mode=mode)
        sampler.net_bytes(pids[cid])
    return time.process_time() - t0


def _feed_week(subjects: list[str]) -> float:
    """Write a week of 10 s samples ending now for each subject, rolled up as the sampler does; its end."""
    from engine.runtime import metricstore as ms
    from engine.services import metrics

    conn = ms.connect(metrics.store_path())
    ms.set_meta(conn, "interval", 10.0)  # what the sampler records at the default interval
    t0 = time.perf_counter()
    end = time.time()
    t = end - 7 * 86400
    t -= t % 10
    while t < end:
        with ms.Transaction(conn):
            batch_end = min(end, (t // 600 + 1) * 600)
            while t < batch_end:
                cpu = 12.5 + (t % 60)
                ms.add(conn, [ms.Sample(s, t, cpu, 50e6, 1e9, 100.0, 200.0, 0.0, 4096.0) for s in subjects])
                t += 10
            ms.maintain(conn, t)
    rows = ms.count_rows(conn)
    conn.close()
    files = [Path(f"{metrics.store_path()}{x}") for x in ("", "-wal")]
    size = sum(f.stat().st_size for f in files if f.exists())
    print(
        f"fed a week for {len(subjects)} containers in {time.perf_counter() - t0:.0f} s; "
        f"rows per tier {rows}, store {_mib(size)}"
    )
    return end


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--interval", type=float, default=10)
    parser.add_argument(
        "--history-containers", type=int, default=200, help="containers in the week-long store"
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (runc, conmon and overlay mounts need it)")
    root = Path(tempfile.mkdtemp(prefix="bt-metr-", dir="/tmp"))
    run = Path(tempfile.mkdtemp(prefix="bt-metr-", dir="/run" if os.access("/run", os.W_OK) else "/tmp"))
    os.environ.update(
        BERTH_ROOT=str(root),
        BERTH_RUN=str(run),
        DJANGO_SETTINGS_MODULE="dashboard.settings",
        BERTH_METRICS_INTERVAL=str(args.interval),
    )
    os.environ.pop("DATABASE_URL", None)
    import django
    from django.core.management import call_command

    django.setup()
    from engine.services import containers, lifecycle, metrics, system
    from engine.services.options import ContainerOptions

    try:
        call_command("migrate", interactive=False, verbosity=0)
        system.seed()
        ids, pids = [], {}
        t0 = time.perf_counter()
        for _ in range(args.count):
            c = containers.create(ContainerOptions(image="busybox", command=("sleep", "100000")))
            c = lifecycle.start(c.id)
            ids.append(c.id)
            pids[c.id] = c.pid
        print(
            f"containers: {args.count} started in {time.perf_counter() - t0:.0f} s; interval {args.interval:g} s"
        )
        samplers = _samplers(run)
        if len(samplers) != 1:
            raise SystemExit(f"expected one sampler, found {samplers}")
        pid = samplers[0]
        time.sleep(2 * args.interval)  # every container sampled twice: rates are being written
        cpu0, wall0 = _cpu_seconds(pid), time.monotonic()
        time.sleep(args.seconds)
        cpu1, wall1 = _cpu_seconds(pid), time.monotonic()
        rss, hwm = _status(pid, "VmRSS"), _status(pid, "VmHWM")
        percent = (cpu1 - cpu0) / (wall1 - wall0) * 100
        rounds = (wall1 - wall0) / args.interval
        newest = metrics.top(timedelta(seconds=args.interval * 1.5), limit=args.count + 1)
        reading = statistics.median(_read_once(ids, pids) for _ in range(5))
        bare = _bare_python_rss()
        print(f"containers in the newest round: {len(newest)}")
        print(
            f"sampler CPU: {percent:.3f} % of one core over {wall1 - wall0:.0f} s "
            f"({(cpu1 - cpu0) / rounds * 1000:.1f} ms per round) — goal < 1 %: {'met' if percent < 1 else 'MISSED'}"
        )
        print(
            f"baseline: reading the counters of {args.count} containers once costs {reading * 1000:.1f} ms "
            f"({reading / args.interval * 100:.3f} % of a core at this interval); "
            f"sampler/baseline {(cpu1 - cpu0) / rounds / reading:.2f}"
        )
        print(
            f"sampler RSS: {_mib(rss)} (peak {_mib(hwm)}) — goal < 30 MB: {'met' if hwm < 30e6 else 'MISSED'}; "
            f"baseline bare python3: {_mib(bare)}"
        )
        files = [Path(f"{metrics.store_path()}{suffix}") for suffix in ("", "-wal", "-shm")]
        print(
            f"store: {_mib(sum(f.stat().st_size for f in files if f.exists()))} after the run (with its WAL)"
        )
    finally:
        stop_engine(root, run)
    try:
        # A fresh store: the sampler's has rolled up to now, and history is only ever written at "now".
        for suffix in ("", "-wal", "-shm"):
            Path(f"{metrics.store_path()}{suffix}").unlink(missing_ok=True)
        fake = "f" * 64
        _feed_week([fake] + [f"{i:064x}" for i in range(args.history_containers - 1)])
        for label, window in (
            ("1 hour", timedelta(hours=1)),
            ("1 day", timedelta(days=1)),
            ("7 days", timedelta(days=7)),
        ):
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                series = metrics.history(fake, window)
                times.append(time.perf_counter() - t0)
            ms_ = statistics.median(times) * 1000
            verdict = f" — goal ≤ 200 ms: {'met' if ms_ <= 200 else 'MISSED'}" if label == "7 days" else ""
            print(
                f"history({label}): median {ms_:.1f} ms for {len(series)} points at {series.resolution:g} s{verdict}"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(run, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
