"""Which shells a container really has, for the dashboard's terminal chooser.

A candidate is offered only if, resolved with the container's root as `/` (store/inroot.py: symlinks
are followed inside the root and never out of it), it is a regular file with an execute bit. So a
busybox image offers /bin/sh (and /bin/ash) but never /bin/bash, and a link to a host path proves
nothing about the host.
"""

from __future__ import annotations

import contextlib
import os
import stat

from engine.errors import InvalidState
from engine.models import Container
from engine.services import files
from engine.store import inroot

CANDIDATES = ("/bin/sh", "/bin/bash", "/bin/ash", "/bin/zsh")


def available(ref: str | Container, candidates: tuple[str, ...] = CANDIDATES) -> list[str]:
    """The candidates that exist in the container's root and can be executed, in the given order.

    Raises ContainerNotFound; a container that stopped while it was looked at has none (an empty
    list), since nothing can be started in it.
    """
    found: list[str] = []
    try:
        with files.open_root(ref) as root:
            for path in candidates:
                if _is_executable(root.fd, path):
                    found.append(path)
    except InvalidState:
        return []
    return found


def _is_executable(root_fd: int, path: str) -> bool:
    try:
        fd = inroot.open_in_root(root_fd, path, os.O_PATH)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    return stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o111)
