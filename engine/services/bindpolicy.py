"""Which host paths a container may bind-mount (issue 10 item 3; internal to the services).

A source is resolved fully first (opened, then read back through /proc/self/fd, so every symlink
and `..` is settled by the kernel), and the policy is checked against the *resolved* path:
- with BERTH_BIND_ALLOW set, the resolved path must be one of those paths or lie beneath one
  (each allowed path resolved the same way): a symlink inside an allowed directory that leads
  to /etc is refused;
- the engine's own paths (BERTH_ROOT with the secret key and the store, BERTH_RUN, the code the
  exit command runs as root, an SQLite database file) are refused whatever the allow list says:
  a source may not be one of them, lie inside one, or contain one. So `/`, `/var` or `/run` are
  refused too when the engine lives below them: read-only would still expose the secret key.
The resolved path is what is stored and mounted, and it is resolved and checked again at every
start, so a symlink swapped in after create is refused or followed to a checked place only.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from engine import conf
from engine.errors import InvalidArgument

_HINT_ALLOW = "BERTH_BIND_ALLOW lists the host paths that bind mounts may use"


def resolve(source: str) -> str:
    """Return the resolved host path for the bind source `source`; raise InvalidArgument if refused."""
    path = Path(source)
    if not source.startswith("/") or path != Path(*path.parts) or ".." in path.parts:
        raise InvalidArgument(f"bind source {source} must be a clean absolute path")
    resolved = Path(_resolved(source))
    shown = source if str(resolved) == source else f"{source} (resolved to {resolved})"
    allow = [Path(os.path.realpath(a)) for a in conf.bind_allow()]
    if allow and not any(_within(resolved, a) for a in allow):
        raise InvalidArgument(f"bind source {shown} is outside the allowed host paths", hint=_HINT_ALLOW)
    for engine_path in conf.engine_paths():
        own = Path(os.path.realpath(engine_path))
        if _within(resolved, own) or _within(own, resolved):
            raise InvalidArgument(
                f"bind source {shown} would expose the engine's own files ({own}); refusing to mount it"
            )
    return str(resolved)


def _resolved(source: str) -> str:
    try:
        fd = os.open(source, os.O_PATH | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise InvalidArgument(f"bind source path does not exist: {source}") from None
        if exc.errno == errno.ELOOP:
            raise InvalidArgument(f"bind source {source} is a symlink loop") from None
        raise InvalidArgument(f"bind source {source} cannot be opened: {exc.strerror}") from None
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def _within(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents
