"""Network namespaces as files: create one bind-mounted at a path, enter it, remove it.

Namespaces are made in a short-lived thread that unshares only itself, so the engine process never
changes namespace and nothing forks (pyroute2's own netns helpers fork a process per namespace,
about 20 ms each). runc joins a namespace through its file; removing the file lets the kernel
destroy the namespace and its links in the background once no process is left in it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pyroute2 import IPRoute

from engine.errors import RuntimeFailure

CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MNT_DETACH = 0x2
_libc = ctypes.CDLL(None, use_errno=True)
T = TypeVar("T")


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def _in_thread(body: Callable[[], T]) -> T:
    """Run `body` in a fresh thread (whose namespace changes die with it) and return its result."""
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["value"] = body()
        except BaseException as exc:  # noqa: BLE001 — handed back to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="berth-netns", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


def create(path: Path, configure: Callable[[IPRoute], T]) -> T:
    """Create a namespace kept alive by a bind mount at `path`, and run `configure` inside it.

    `configure` gets an IPRoute bound inside the new namespace. On any failure the file is gone
    again (and with it the namespace). Returns what `configure` returned.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    os.close(fd)

    def body() -> T:
        _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        source = f"/proc/self/task/{threading.get_native_id()}/ns/net".encode()
        _check(_libc.mount(source, str(path).encode(), b"none", MS_BIND, None), "bind-mounting the netns")
        with IPRoute() as ipr:
            return configure(ipr)

    try:
        return _in_thread(body)
    except BaseException as exc:
        remove(path)
        if isinstance(exc, OSError):
            raise RuntimeFailure(f"could not set up the network namespace: {exc}") from exc
        raise


def enter(path: Path, work: Callable[[IPRoute], T]) -> T:
    """Run `work` with an IPRoute inside the namespace at `path` (a thread joins it, then ends)."""

    def body() -> T:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _check(_libc.setns(fd, CLONE_NEWNET), "setns")
        finally:
            os.close(fd)
        with IPRoute() as ipr:
            return work(ipr)

    try:
        return _in_thread(body)
    except OSError as exc:
        raise RuntimeFailure(f"could not enter the network namespace {path}: {exc}") from exc


def host_fd() -> int:
    """An fd of the engine's own network namespace (the thread group leader's), for veth peers."""
    return os.open(f"/proc/{os.getpid()}/ns/net", os.O_RDONLY | os.O_CLOEXEC)


def is_mounted(path: Path) -> bool:
    try:
        with open("/proc/self/mountinfo") as f:
            target = str(path)
            return any(line.split()[4] == target for line in f)
    except OSError:
        return False


def remove(path: Path) -> None:
    """Unmount and delete the namespace file. Idempotent; the kernel frees the namespace later."""
    result = _libc.umount2(str(path).encode(), MNT_DETACH)
    if result != 0 and ctypes.get_errno() not in (errno.EINVAL, errno.ENOENT):
        code = ctypes.get_errno()
        raise RuntimeFailure(f"could not unmount the network namespace {path}: {os.strerror(code)}")
    try:
        path.unlink()
    except FileNotFoundError:
        pass
