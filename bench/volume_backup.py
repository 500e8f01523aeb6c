"""Benchmark: volume export and import against `tar -c | zstd` and `zstd -d | tar -x` on the same data.

    .venv/bin/python bench/volume_backup.py [--reps 3] [--size-mb 1024] [--small-mb 256] [--profile export|import]

Makes a private BERTH_ROOT (migrated in a child), and in it two volumes generated once per run: a big one
(about --size-mb of content: many small files in nested directories plus a few large files, bytes
sliced from real libraries under /usr/lib so they compress like real data) and a small one of the same
shape. Then, per repetition, on warm page cache and after a `sync`:
  export baseline  `tar -C _data -cf - . | zstd -q -3 -o FILE` (one process each, like the engine's two threads)
  export           `volumebackup.export(NAME, FILE, compression="zstd")` in a child process
  import baseline  `zstd -dc FILE | tar -x -C DIR` of the engine's own backup file
  import           `volumebackup.import_(NEW, FILE)` in a child process (into a new volume)
and prints the medians, the ratios (goal <= 1.2 each) and each child's peak RSS (ru_maxrss, its own
report) for both volume sizes (goal: the same, i.e. memory is flat in the volume's size). Everything is
removed at the end, also on SIGINT/SIGTERM/SIGHUP.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cleanup import exit_cleanly_on_signals, hold_signals, remove_dirs  # noqa: E402

POOL_SOURCES = ["/usr/lib/x86_64-linux-gnu", "/usr/lib/python3.11", "/usr/share/doc"]
POOL_BYTES = 64 << 20
LARGE_FILES = 3  # each about 15 % of the volume
LARGE_SHARE = 0.45
SMALL_MIN, SMALL_MAX = 512, 48 << 10  # bytes per small file
PER_DIR = 200


# -- data ----------------------------------------------------------------------------------------


def _pool() -> bytes:
    """POOL_BYTES of real library and documentation bytes (compress like real files, not like zeros)."""
    parts: list[bytes] = []
    size = 0
    for source in POOL_SOURCES:
        for dirpath, dirnames, filenames in os.walk(source):
            dirnames.sort()
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                if os.path.islink(path) or not os.path.isfile(path):
                    continue
                try:
                    with open(path, "rb") as f:
                        data = f.read(4 << 20)
                except OSError:
                    continue
                parts.append(data)
                size += len(data)
                if size >= POOL_BYTES:
                    return b"".join(parts)
    return b"".join(parts)


def generate(target: Path, total: int, seed: int) -> dict[str, int]:
    """Fill `target` with about `total` bytes: LARGE_FILES big files and many small ones in nested dirs."""
    rng = random.Random(seed)
    pool = _pool()
    files = 0
    written = 0
    large_each = int(total * LARGE_SHARE / LARGE_FILES)
    (target / "large").mkdir()
    for i in range(LARGE_FILES):
        with open(target / "large" / f"blob{i}.bin", "wb") as out:
            left = large_each
            while left > 0:
                start = rng.randrange(0, len(pool) - (1 << 20))
                chunk = pool[start : start + min(left, 1 << 20)]
                out.write(chunk)
                left -= len(chunk)
        files += 1
        written += large_each
    directory = target
    while written < total:
        if files % PER_DIR == 0:
            directory = target / f"d{files // PER_DIR:04d}" / f"sub{rng.randrange(4)}"
            directory.mkdir(parents=True, exist_ok=True)
        size = rng.randrange(SMALL_MIN, SMALL_MAX)
        start = rng.randrange(0, len(pool) - size)
        (directory / f"f{files:06d}.dat").write_bytes(pool[start : start + size])
        files += 1
        written += size
        if files % 1000 == 0:
            os.symlink(f"f{files - 1:06d}.dat", directory / f"link{files:06d}")
    return {"files": files, "bytes": written}


# -- children (Django set up against the private root) ------------------------------------------------


def child(argv: list[str]) -> None:
    import django

    django.setup()
    from engine.services import volumebackup, volumes

    action = argv[0]
    if action == "setup":
        from django.core.management import call_command

        call_command("migrate", interactive=False, verbosity=0)
        report = {}
        for name, mb, seed in (("big", int(argv[1]), 1), ("small", int(argv[2]), 2)):
            volume = volumes.create(name)
            report[name] = generate(Path(volumes.mountpoint(volume)), mb << 20, seed)
        print(json.dumps(report))
        return
    profile = "--profile" in argv
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if action == "export":
        name, path = argv[1], argv[2]

        def work() -> Any:
            with open(path, "wb") as out:
                return volumebackup.export(name, out, compression="zstd")

    else:
        name, path = argv[1], argv[2]

        def work() -> Any:
            with open(path, "rb") as source:
                return volumebackup.import_(name, source)

    start = time.perf_counter()
    if profile:
        import cProfile
        import io
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(work)
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
        sys.stderr.write(text.getvalue())
    else:
        work()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if action == "import":
        volumes.remove(name)  # untimed: the next repetition needs the space
    print(json.dumps({"seconds": seconds, "rss_before_kb": before, "rss_peak_kb": peak}))


def run_child(env: dict[str, str], *args: str, profile: bool = False) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--child", *args] + (["--profile"] if profile else [])
    proc = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"child {args[0]} failed:\n{proc.stdout}\n{proc.stderr}")
    if profile:
        print(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- baselines -----------------------------------------------------------------------------------


def tar_zstd(data: Path, out: Path) -> float:
    start = time.perf_counter()
    tar = subprocess.Popen(["tar", "-C", str(data), "-cf", "-", "."], stdout=subprocess.PIPE)
    zstd = subprocess.run(["zstd", "-q", "-3", "-f", "-o", str(out)], stdin=tar.stdout, check=False)
    assert tar.stdout is not None
    tar.stdout.close()
    if tar.wait() != 0 or zstd.returncode != 0:
        raise SystemExit("baseline tar | zstd failed")
    return time.perf_counter() - start


def zstd_tar(archive: Path, target: Path) -> float:
    target.mkdir()
    start = time.perf_counter()
    zstd = subprocess.Popen(["zstd", "-q", "-dc", str(archive)], stdout=subprocess.PIPE)
    tar = subprocess.run(["tar", "-x", "-C", str(target)], stdin=zstd.stdout, check=False)
    assert zstd.stdout is not None
    zstd.stdout.close()
    if zstd.wait() != 0 or tar.returncode != 0:
        raise SystemExit("baseline zstd -d | tar -x failed")
    return time.perf_counter() - start


def warm(path: Path) -> None:
    """Read the tree once (page cache) and flush earlier writes, so every contender starts alike."""
    subprocess.run(["tar", "-C", str(path), "-cf", "/dev/null", "."], check=True)
    subprocess.run(["sync"], check=True)


# -- main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--small-mb", type=int, default=256)
    parser.add_argument("--profile", choices=["export", "import"])
    parser.add_argument("--on-disk", action="store_true", help="use /var/tmp's file system, not a tmpfs")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return

    exit_cleanly_on_signals()
    top = Path(tempfile.mkdtemp(prefix="berth-bench-vb-", dir="/var/tmp"))
    run = Path(
        tempfile.mkdtemp(prefix="berth-bench-vb-", dir="/run" if os.access("/run", os.W_OK) else "/tmp")
    )
    root = top / "root"
    root.mkdir()
    if not args.on_disk:
        # The VM's disk is rate-limited: after a burst, every create waits on the journal and the same
        # extraction takes 4 s or 20 s. On tmpfs both contenders do the same work without that noise.
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=12g,mode=0700", "berth-bench", str(root)], check=True
        )
    scratch = root / "scratch"
    env = {
        **os.environ,
        "BERTH_ROOT": str(root),
        "BERTH_RUN": str(run),
        "DJANGO_SETTINGS_MODULE": "dashboard.settings",
    }
    env.pop("DATABASE_URL", None)
    try:
        where = "on disk" if args.on_disk else "on a tmpfs"
        print(
            f"generating {args.size_mb} MB and {args.small_mb} MB volumes under {root} ({where})", flush=True
        )
        made = run_child(env, "setup", str(args.size_mb), str(args.small_mb))
        for name, info in made.items():
            print(f"  {name}: {info['files']} files, {info['bytes'] / 1e6:.0f} MB of content")
        data = {name: root / "volumes" / name / "_data" for name in ("big", "small")}
        scratch.mkdir()

        if args.profile:
            warm(data["big"])
            backup = scratch / "big.tar.zst"
            run_child(env, "export", "big", str(backup), profile=args.profile == "export")
            if args.profile == "import":
                subprocess.run(["sync"], check=True)
                run_child(env, "import", "restored", str(backup), profile=True)
            return

        times: dict[str, list[float]] = {"tar|zstd": [], "export": [], "zstd|tar": [], "import": []}
        peaks: dict[str, list[int]] = {f"{k} {s}": [] for k in ("export", "import") for s in ("big", "small")}
        befores: list[int] = []
        sizes: dict[str, int] = {}
        backup = scratch / "big.tar.zst"
        for rep in range(1, args.reps + 1):

            def baseline_export() -> None:
                warm(data["big"])
                base_file = scratch / "baseline.tar.zst"
                times["tar|zstd"].append(tar_zstd(data["big"], base_file))
                sizes["tar|zstd"] = base_file.stat().st_size
                base_file.unlink()

            def engine_export(rep: int = rep) -> None:
                warm(data["big"])
                report = run_child(env, "export", "big", str(backup))
                times["export"].append(report["seconds"])
                peaks["export big"].append(report["rss_peak_kb"])
                befores.append(report["rss_before_kb"])
                sizes["export"] = backup.stat().st_size

            def baseline_import() -> None:
                subprocess.run(["sync"], check=True)
                target = scratch / "extracted"
                times["zstd|tar"].append(zstd_tar(backup, target))
                shutil.rmtree(target)

            def engine_import(rep: int = rep) -> None:
                subprocess.run(["sync"], check=True)
                report = run_child(env, "import", f"restored{rep}", str(backup))
                times["import"].append(report["seconds"])
                peaks["import big"].append(report["rss_peak_kb"])

            # Alternate who goes first, so neither always inherits the other's page cache and writeback.
            # The engine's export comes first in odd repetitions' import phase: the file must exist.
            if rep % 2:
                engine_export()
                baseline_export()
                baseline_import()
                engine_import()
            else:
                baseline_export()
                engine_export()
                engine_import()
                baseline_import()
            subprocess.run(["sync"], check=True)

            warm(data["small"])
            small = scratch / "small.tar.zst"
            peaks["export small"].append(run_child(env, "export", "small", str(small))["rss_peak_kb"])
            peaks["import small"].append(
                run_child(env, "import", f"srestored{rep}", str(small))["rss_peak_kb"]
            )
            backup.unlink()
            small.unlink()
            print(
                f"rep {rep}: tar|zstd {times['tar|zstd'][-1]:.2f} s, export {times['export'][-1]:.2f} s, "
                f"zstd|tar {times['zstd|tar'][-1]:.2f} s, import {times['import'][-1]:.2f} s",
                flush=True,
            )

        med = {k: statistics.median(v) for k, v in times.items()}
        print()
        print(
            f"medians of {args.reps} on the {made['big']['bytes'] / 1e6:.0f} MB volume ({made['big']['files']} files):"
        )
        print(f"  tar -c | zstd -3      {med['tar|zstd']:.2f} s   ({sizes['tar|zstd'] / 1e6:.0f} MB)")
        print(f"  volumebackup.export   {med['export']:.2f} s   ({sizes['export'] / 1e6:.0f} MB)")
        print(f"  ratio export          {med['export'] / med['tar|zstd']:.2f}  (goal <= 1.2)")
        print(f"  zstd -d | tar -x      {med['zstd|tar']:.2f} s")
        print(f"  volumebackup.import_  {med['import']:.2f} s")
        print(f"  ratio import          {med['import'] / med['zstd|tar']:.2f}  (goal <= 1.2)")
        print("peak RSS of the child (median), small vs big volume:")
        for kind in ("export", "import"):
            small_kb = statistics.median(peaks[f"{kind} small"])
            big_kb = statistics.median(peaks[f"{kind} big"])
            print(
                f"  {kind}: {small_kb / 1024:.0f} MiB ({args.small_mb} MB) vs {big_kb / 1024:.0f} MiB ({args.size_mb} MB)"
            )
        print(f"  Django set-up alone, before the work: {statistics.median(befores) / 1024:.0f} MiB")
    finally:
        hold_signals()
        remove_dirs(top, run)


if __name__ == "__main__":
    main()
