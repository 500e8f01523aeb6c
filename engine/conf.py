"""The engine's settings, read from django.conf.settings at call time.

Reading at call time (not import time) lets tests give each test its own BERTH_ROOT and BERTH_RUN.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from django.conf import settings

from engine.store.diskspace import Reserve


def root() -> Path:
    return Path(settings.BERTH_ROOT)


def run_dir() -> Path:
    return Path(settings.BERTH_RUN)


def blobs_dir() -> Path:
    return root() / "blobs"


def layers_dir() -> Path:
    return root() / "layers"


def volumes_dir() -> Path:
    return root() / "volumes"


def containers_dir() -> Path:
    return root() / "containers"


def tmp_dir() -> Path:
    return root() / "tmp"


def locks_dir() -> Path:
    return run_dir() / "locks"


def runtime_binary() -> str:
    return _which(settings.BERTH_RUNTIME)


def conmon_binary() -> str:
    return _which(settings.BERTH_CONMON)


def net_tag() -> str:
    return str(settings.BERTH_NET_TAG)


def netns_dir() -> Path:
    return run_dir() / "netns"


def dns_dir(*, internal: bool = False) -> Path:
    """aardvark-dns's files: one server for user networks, one that never forwards for internal ones."""
    return run_dir() / ("aardvark-internal" if internal else "aardvark")


def disk_reserve() -> Reserve:
    """The free space writers leave under BERTH_ROOT: BERTH_DISK_RESERVE bytes, by default the
    larger of 1 GiB and 5 % of the file system. A new object per writer (it counts its bytes)."""
    value = getattr(settings, "BERTH_DISK_RESERVE", None)
    return Reserve(root(), None if value is None else int(value))


def bind_allow() -> list[Path]:
    return [Path(p) for p in settings.BERTH_BIND_ALLOW]


def engine_paths() -> list[Path]:
    """What no bind mount may be, contain or lie inside (issue 10 item 3): the store (with the secret
    key), the run state, the code the exit command runs as root, and an SQLite database file."""
    paths = [root(), run_dir(), Path(settings.BASE_DIR)]
    db = settings.DATABASES["default"]
    if str(db.get("ENGINE", "")).endswith("sqlite3") and db.get("NAME"):
        paths.append(Path(str(db["NAME"])))
    return paths


def tmpfs_max_size() -> int:
    """The largest tmpfs a container may ask for (bytes): BERTH_TMPFS_MAX_SIZE, else half of RAM."""
    value = getattr(settings, "BERTH_TMPFS_MAX_SIZE", None)
    if value:
        return int(value)
    return max(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2, 1 << 20)


def events_retention_days() -> int:
    """How many days the audit log keeps events (BERTH_EVENTS_RETENTION_DAYS, default 90; 0: for ever)."""
    return max(int(getattr(settings, "BERTH_EVENTS_RETENTION_DAYS", 90) or 0), 0)


def _which(name: str) -> str:
    if "/" in name:
        return name
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin") or name


def ensure_dirs() -> None:
    """Create the engine's directories. The store is 0700 so host users cannot reach setuid files in images."""
    for path in (root(), blobs_dir(), layers_dir(), volumes_dir(), containers_dir(), tmp_dir()):
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.chmod(0o700)
    for path in (run_dir(), locks_dir()):
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
