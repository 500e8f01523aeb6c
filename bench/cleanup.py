"""What the benchmarks share to leave the machine as they found it, even when interrupted."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path


def unmount_all(path: Path) -> None:
    """Lazily unmount everything mounted below `path`, deepest first."""
    prefix = str(path) + "/"
    with open("/proc/self/mountinfo") as f:
        targets = [line.split()[4] for line in f if line.split()[4].startswith(prefix)]
    for target in sorted(targets, key=len, reverse=True):
        subprocess.run(["umount", "-l", target], check=False, capture_output=True)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through main's finally, which cleans up


def exit_cleanly_on_signals() -> None:
    """SIGINT, SIGTERM and SIGHUP end the run through its finally blocks (a shell that starts a
    script in the background makes it ignore SIGINT otherwise)."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _exit_on_signal)


def remove_containers() -> None:
    """Force-remove every container of the benchmark's engine (Django must be set up), reporting failures."""
    from engine.models import Container
    from engine.services import lifecycle

    for c in Container.objects.all():
        try:
            lifecycle.remove(c.id, force=True, volumes=True)
        except Exception as exc:  # noqa: BLE001 — best effort at the end of a benchmark
            print(f"cleanup of container {c.name}: {exc}", file=sys.stderr)


def processes_of(root: Path) -> list[int]:
    """PIDs (not this one's) whose environment names `root` as BERTH_ROOT: conmons, exit commands, samplers."""
    marker = f"BERTH_ROOT={root}\0".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                if marker in Path(f"/proc/{entry}/environ").read_bytes():
                    found.append(int(entry))
            except OSError:
                continue
    return found


def stop_engine(root: Path, run: Path, *, timeout: float = 300) -> None:
    """Leave nothing of the benchmark's engine running or mounted (Django must be set up): force-remove
    every container, wait up to `timeout` for its processes to end, then delete the runc containers
    and unmount what is left below `root` and `run`. The directories stay (remove_dirs deletes them)."""
    remove_containers()
    deadline = time.monotonic() + timeout
    while processes_of(root) and time.monotonic() < deadline:
        time.sleep(0.2)
    runc_root = run / "runc"
    if runc_root.is_dir():
        for cid in os.listdir(runc_root):
            subprocess.run(["runc", "--root", str(runc_root), "delete", "-f", cid], check=False)
    unmount_all(root)
    unmount_all(run)


def hold_signals() -> None:
    """From here on, signals wait: the clean-up must finish."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)


def remove_dirs(*paths: Path) -> None:
    """Unmount what is left below each private directory, then delete it."""
    for path in paths:
        unmount_all(path)
        shutil.rmtree(path, ignore_errors=True)
