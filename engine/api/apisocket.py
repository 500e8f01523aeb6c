"""The Docker API's unix socket: where it lives, binding it (mode 0660, group `berth`), and who may
connect (root or a member of that group, read from the peer's credentials).
"""

from __future__ import annotations

import contextlib
import grp
import os
import socket
import struct
from pathlib import Path

from engine import conf
from engine.api.http import ApiError

GROUP_NAME = "berth"


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a unix socket."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


def berth_gid() -> int | None:
    try:
        return grp.getgrnam(GROUP_NAME).gr_gid
    except KeyError:
        return None


def _peer_groups(pid: int) -> set[int]:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("Groups:"):
                    return {int(g) for g in line.split()[1:]}
    except OSError:
        pass
    return set()


def peer_allowed(pid: int, uid: int, gid: int) -> bool:
    """Root, or a member of the `berth` group (the socket's mode says the same; this is a second lock)."""
    if uid == 0:
        return True
    group = berth_gid()
    return group is not None and (gid == group or group in _peer_groups(pid))


def socket_path() -> Path:

    return conf.run_dir() / "docker.sock"


def bind(path: Path) -> socket.socket:
    """Listen on `path` (mode 0660, group `berth` if it exists); a stale socket file is replaced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        if _someone_listening(path):
            raise ApiError(409, f"another server is already listening on {path}")
        path.unlink()
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        staging.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        listener.bind(str(staging))
        os.chmod(staging, 0o660)
        group = berth_gid()
        os.chown(staging, 0, group if group is not None else 0)
        os.rename(staging, path)  # clients never see the socket with looser permissions
        listener.listen(256)
    except BaseException:
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
        raise
    return listener


def _someone_listening(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1)
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()
