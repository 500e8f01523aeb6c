"""Benchmark: what Berth keeps resident per container, and how long 200 containers take to start and remove.

    .venv/bin/python bench/density.py [--count 200]

Starts COUNT idle containers (`sleep 100000`) through the services in process, then measures, per
container, every process that is not the container's own: conmon (RSS and PSS from
/proc/<pid>/smaps_rollup) and anything else carrying this engine's BERTH_ROOT (there should be none:
no per-container Python stays behind). Prints the time to start all and to remove all (`rm -f`
one after another, as a user's loop would), and the time until the exit commands conmon runs after
each removal have finished. Goal: nothing of ours besides conmon, about 2.1 MiB RSS / 0.5 MiB PSS.
Everything is removed at the end, even after a failure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cleanup import processes_of, stop_engine

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _rollup(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes from smaps_rollup."""
    rss = pss = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == "Rss":
            rss = int(value.split()[0]) * 1024
        elif key == "Pss":
            pss = int(value.split()[0]) * 1024
    return rss, pss


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _mib(n: float) -> str:
    return f"{n / (1 << 20):.2f} MiB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (runc, conmon and overlay mounts need it)")
    root = Path(tempfile.mkdtemp(prefix="bt-dens-", dir="/tmp"))
    run = Path(tempfile.mkdtemp(prefix="bt-dens-", dir="/run" if os.access("/run", os.W_OK) else "/tmp"))
    os.environ.update(BERTH_ROOT=str(root), BERTH_RUN=str(run), DJANGO_SETTINGS_MODULE="dashboard.settings")
    os.environ.pop("DATABASE_URL", None)
    import django
    from django.core.management import call_command

    django.setup()
    from engine.services import bundle, containers, lifecycle, system
    from engine.services.options import ContainerOptions

    try:
        call_command("migrate", interactive=False, verbosity=0)
        system.seed()
        ids = []
        t0 = time.perf_counter()
        for _ in range(args.count):
            c = containers.create(ContainerOptions(image="busybox", command=("sleep", "100000")))
            lifecycle.start(c.id)
            ids.append(c.id)
        start_all = time.perf_counter() - t0
        time.sleep(1)  # let page-ins settle
        rss, pss = [], []
        for cid in ids:
            pid = int(bundle.paths(cid).conmon_pidfile.read_text())
            r, p = _rollup(pid)
            rss.append(r)
            pss.append(p)
        # The metrics sampler is one per engine, not per container (bench/metrics.py measures it).
        others = [p for p in processes_of(root) if b"engine.runtime.sampler" not in _cmdline(p)]
        print(f"containers: {args.count}")
        print(f"start all: {start_all:.1f} s ({start_all / args.count * 1000:.0f} ms per container)")
        print(
            f"conmon per container: RSS median {_mib(statistics.median(rss))}, "
            f"PSS median {_mib(statistics.median(pss))} (total PSS {_mib(sum(pss))})"
        )
        print(f"other processes of this engine left resident: {len(others)} {others[:5]}")
        print(
            f"Berth per container besides the container's own processes: {_mib(statistics.median(rss))} RSS"
            f" / {_mib(statistics.median(pss))} PSS (conmon only)"
            if not others
            else "Berth keeps more than conmon per container!"
        )
        t0 = time.perf_counter()
        for cid in ids:
            lifecycle.remove(cid, force=True)
        remove_all = time.perf_counter() - t0
        print(
            f"remove all (rm -f each): {remove_all:.1f} s ({remove_all / args.count * 1000:.0f} ms per container)"
        )
        t0 = time.perf_counter()
        while processes_of(root):
            time.sleep(0.1)
        print(f"exit commands finished {time.perf_counter() - t0:.1f} s later")
        return 0
    finally:
        stop_engine(root, run)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(run, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
