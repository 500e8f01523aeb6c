"""Named volume directories: $BERTH_ROOT/volumes/NAME/_data."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from engine.errors import RuntimeFailure


def data_path(volumes_root: Path, name: str) -> Path:
    return volumes_root / name / "_data"


def create_dir(volumes_root: Path, name: str) -> Path:
    """Create the volume's directory (idempotent) and return its _data path."""
    data = data_path(volumes_root, name)
    try:
        data.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # _data itself is 0755 like Docker's: containers running as other users must reach it.
        data.mkdir(mode=0o755, exist_ok=True)
    except OSError as exc:
        raise RuntimeFailure(f"cannot create volume directory {data}: {exc.strerror}") from exc
    return data


def remove_dir(volumes_root: Path, name: str) -> None:
    """Delete the volume's directory; rmtree works on fds and never follows symlinks."""
    try:
        shutil.rmtree(volumes_root / name)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise RuntimeFailure(f"cannot remove volume directory {volumes_root / name}: {exc.strerror}") from exc


def disk_usage(path: Path) -> int:
    """Bytes used by regular files under path, counting hard links once, never following symlinks."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for dirpath, _dirnames, filenames in os.walk(path):
        for name in filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            total += st.st_blocks * 512
    return total
