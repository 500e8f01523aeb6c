"""The log keeper: rotates container logs at max-size whether or not the web server runs.

conmon 2.1.6 cannot rotate (it truncates at --log-size-max, see runtime/logfile), so the engine
rotates. That used to happen only in the web server's housekeeping, and with no server a log was
cut at conmon's cap and its lines lost. Now each container start writes a small job file under
`$BERTH_RUN/logkeeper/` and makes sure one keeper process per engine runs: a detached Python
process that imports no Django, polls the jobs every `INTERVAL`, rotates a log at max-size under the
container's lock, drops a job whose conmon has exited, and exits when no job is left.

Run as `python -m engine.runtime.logkeeper <keeper-dir>`; `ensure_running` starts it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.errors import DiskFull, RuntimeFailure
from engine.runtime import conmon, logfile, singleton
from engine.store.diskspace import Reserve

INTERVAL = 0.2
IDLE_EXIT = 1.0  # seconds without a job before the keeper exits
_LOCK_NAME = "keeper.lock"
_PROJECT = Path(__file__).resolve().parents[2]  # where `engine` is importable from


@dataclass(frozen=True)
class Job:
    """What the keeper needs to rotate one container's log."""

    container_id: str
    log: str
    ctl: str
    conmon_pidfile: str
    lock: str  # the container's flock file (locks.try_locked's path)
    max_size: int
    max_file: int
    root: str  # the engine's root, for the free-space reserve
    reserve: int | None  # bytes; None for the reserve's default


def write_job(directory: Path, job: Job) -> None:
    """Register a container's log with the keeper (atomically: the keeper never reads half a job)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / f"{job.container_id}.json"
    tmp = directory / f".{job.container_id}.tmp"
    try:
        tmp.write_text(json.dumps(asdict(job)))
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RuntimeFailure(f"cannot register the log of {job.container_id[:12]}: {exc}") from exc


def remove_job(directory: Path, container_id: str) -> None:
    (directory / f"{container_id}.json").unlink(missing_ok=True)


def read_jobs(directory: Path) -> list[Job]:
    jobs = []
    try:
        names = sorted(p for p in directory.iterdir() if p.suffix == ".json")
    except FileNotFoundError:
        return []
    for path in names:
        try:
            jobs.append(Job(**json.loads(path.read_text())))
        except (OSError, ValueError, TypeError):
            continue  # removed meanwhile, or not ours
    return jobs


def rotate(job: Job) -> bool:
    """Rotate the job's log if it reached max-size and its lock is free; True if it did.

    Under the free-space reserve only the newest rotated file is kept, so logs stop growing.
    """
    if job.max_file < 2 or not logfile.needs_rotation(Path(job.log), job.max_size):
        return False
    fd = os.open(job.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a stop or start holds it: next round
        if not logfile.needs_rotation(Path(job.log), job.max_size):
            return False
        try:
            Reserve(job.root, job.reserve).check()
            keep = job.max_file - 1
        except DiskFull:
            keep = 1
        with contextlib.suppress(RuntimeFailure):  # conmon exited meanwhile: the renamed file is read
            logfile.rotate(Path(job.log), keep=keep, reopen=lambda: conmon.reopen_log(Path(job.ctl)))
        return True
    finally:
        os.close(fd)


def conmon_alive(job: Job) -> bool:
    """True while the job's conmon runs (checked by pid and by its command line naming the container)."""
    try:
        pid = int(Path(job.conmon_pidfile).read_text().strip())
        return job.container_id.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False


def step(directory: Path) -> int:
    """One round: rotate what is due, drop the jobs of exited conmons. Returns the jobs left."""
    left = 0
    for job in read_jobs(directory):
        if not conmon_alive(job):
            remove_job(directory, job.container_id)  # nobody writes any more: it cannot pass its cap
            continue
        rotate(job)
        left += 1
    return left


def _try_lock(directory: Path) -> int | None:
    """The keeper's own flock (one keeper per engine); its fd, or None if another keeper holds it."""
    return singleton.try_hold(directory / _LOCK_NAME)


def run(directory: Path) -> None:
    """The keeper's loop; returns when another keeper runs or no job is left."""
    while True:
        fd = _try_lock(directory)
        if fd is None:
            return
        try:
            idle_since = None
            while True:
                if step(directory):
                    idle_since = None
                else:
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since > IDLE_EXIT:
                        break
                time.sleep(INTERVAL)
        finally:
            os.close(fd)
        # A job written just before the lock was released found it held and started nobody.
        if not read_jobs(directory):
            return


def ensure_running(directory: Path, *, env: dict[str, str], lock: threading.Lock) -> None:
    """Start a keeper for `directory` unless one runs. Call after `write_job`.

    The keeper is started through a shell that exits at once, so it goes to PID 1 rather than
    staying our child; `lock` (bundle.ADOPTION_LOCK) keeps it out of an exec's subreaper window.
    """
    fd = _try_lock(directory)
    if fd is None:
        return  # one runs, and will see the job
    os.close(fd)
    argv = ["/bin/sh", "-c", '"$@" </dev/null >/dev/null 2>&1 &', "sh"]
    argv += [sys.executable, "-m", "engine.runtime.logkeeper", str(directory)]
    with lock:
        try:
            subprocess.run(argv, env=env, cwd=_PROJECT, check=True, timeout=10, start_new_session=True)
        except (OSError, subprocess.SubprocessError) as exc:
            raise RuntimeFailure(f"cannot start the log keeper: {exc}") from exc


if __name__ == "__main__":
    run(Path(sys.argv[1]))
