"""Exec processes: start `runc exec --detach` with a pseudo-terminal or pipes, reap it, relay its output.

The service (services/execs.py) decides what runs and records the session; this module only starts
the process, owns its fds and collects its exit code. A background child the process leaves behind
keeps running under the container's init, as in Docker: nothing here waits for or kills it.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import CommandNotRunnable, RuntimeFailure
from engine.runtime import conmon
from engine.runtime import runc as runc_mod

# After the exec's process exits, output still in flight is copied until the pipes are quiet this
# long: a background child may hold them open for ever (Docker stops copying at the exit, too).
QUIET_AFTER_EXIT = 0.2
_PR_GET_CHILD_SUBREAPER = 37


@dataclass
class Terminal:
    """A live exec: the caller owns its fds and must call `close`.

    With a pseudo-terminal `master_fd` is the pty; without one the process's stdio are pipes:
    `stdin_fd` (write end, -1 when stdin is not attached), `stdout_fd` and `stderr_fd` (read ends),
    and `master_fd` is -1.

    The exec process is this process's child (adopted through a subreaper window while runc
    exits), and a thread reaps exactly that pid the moment it exits: an unreaped exec zombie would
    keep the container's pid namespace, and so `runc delete` of a stopped or removed container,
    waiting for about 10 s.
    """

    session_id: str
    container_id: str
    master_fd: int
    pid: int
    exit_code: int | None = None
    reaped: threading.Event = field(default_factory=threading.Event)
    pidfd: int = -1
    stdin_fd: int = -1
    stdout_fd: int = -1
    stderr_fd: int = -1


def start_with_terminal(
    runc: runc_mod.Runc,
    terminal: Terminal,
    *,
    process_json: Path,
    directory: Path,
    adoption_lock: threading.Lock,
) -> None:
    """Start the process with a pty (received on a console socket); fill in `master_fd` and `pid`.

    Raises RuntimeFailure with runc's reason when the process cannot start.
    """
    pid_file = directory / f"{terminal.session_id[:12]}.pid"
    socket_path = directory / f"{terminal.session_id[:12]}.sock"
    try:
        with adopting_orphans(adoption_lock), runc_mod.ConsoleSocket(socket_path) as console:
            argv = runc_mod.exec_argv(
                runc.root,
                terminal.container_id,
                process_json=process_json,
                pid_file=pid_file,
                console_socket=console.runc_path,
                detach=True,
            )
            try:
                proc = subprocess.Popen(
                    [runc.binary, *argv],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    close_fds=True,
                )
            except OSError as exc:
                raise RuntimeFailure(f"cannot run {runc.binary}: {exc}") from exc
            try:
                master = console.receive(timeout=10)
            except RuntimeFailure:
                _, err = proc.communicate(timeout=10)
                raise _failure(err.decode(errors="replace")) from None
            _, err = proc.communicate(timeout=10)
            if proc.returncode != 0:
                os.close(master)
                raise _failure(err.decode(errors="replace"))
        terminal.master_fd = master
        terminal.pid = _read_pid(pid_file)
    finally:
        pid_file.unlink(missing_ok=True)
    _watch(terminal)


def start_piped(
    runc: runc_mod.Runc,
    terminal: Terminal,
    *,
    process_json: Path,
    directory: Path,
    interactive: bool,
    adoption_lock: threading.Lock,
) -> None:
    """Start the process with pipes as its stdio (they pass from runc to the process).

    Fills in `pid` and the fds; raises RuntimeFailure with runc's reason when it cannot start.
    """
    pid_file = directory / f"{terminal.session_id[:12]}.pid"
    ours: list[int] = []  # the ends this process keeps
    theirs: list[int] = []  # the ends runc hands on to the exec process
    try:
        if interactive:
            stdin_read, stdin_write = os.pipe2(os.O_CLOEXEC)
            ours.append(stdin_write)
            theirs.append(stdin_read)
        out_read, out_write = os.pipe2(os.O_CLOEXEC)
        err_read, err_write = os.pipe2(os.O_CLOEXEC)
        ours += [out_read, err_read]
        theirs += [out_write, err_write]
        with adopting_orphans(adoption_lock):
            runc.exec(
                terminal.container_id,
                process_json=process_json,
                pid_file=pid_file,
                detach=True,
                stdin=stdin_read if interactive else subprocess.DEVNULL,
                stdout=out_write,
                stderr=err_write,
                timeout=30,
            )
    except RuntimeFailure:
        # runc wrote its reason to the stderr it was given, which is our pipe: read it back.
        for fd in theirs:
            os.close(fd)
        theirs.clear()
        failure = _failure(drain(ours[-1]).decode(errors="replace"))
        for fd in ours:
            os.close(fd)
        ours.clear()
        raise failure from None
    except BaseException:
        for fd in ours:
            os.close(fd)
        raise
    finally:
        for fd in theirs:
            os.close(fd)
        terminal.pid = _read_pid(pid_file)
        pid_file.unlink(missing_ok=True)
    terminal.master_fd = -1
    terminal.stdin_fd = ours[0] if interactive else -1
    terminal.stdout_fd, terminal.stderr_fd = ours[-2], ours[-1]
    _watch(terminal)


def _failure(stderr: str) -> RuntimeFailure:
    """The typed error for runc's report on an exec that did not start (parsed here, once)."""
    reason = _reason(stderr)
    status = conmon.not_runnable_status(reason)
    if status is None:
        return RuntimeFailure(reason, stderr=stderr)
    return CommandNotRunnable(reason, reason=reason, exit_status=status, stderr=stderr)


def _reason(stderr: str) -> str:
    """runc's last message, without its log framing (time=… level=error msg="…")."""
    lines = stderr.strip().splitlines()
    if not lines:
        return "runc exec failed"
    found = re.search(r'msg="((?:[^"\\]|\\.)*)"', lines[-1])
    return found.group(1).replace('\\"', '"') if found else lines[-1]


def _read_pid(pid_file: Path) -> int:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return 0


def drain(fd: int) -> bytes:
    """What is left in a pipe whose writers are all closed (at most 64 KiB)."""
    data = b""
    try:
        while len(data) < 65536:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    return data


@contextlib.contextmanager
def adopting_orphans(lock: threading.Lock) -> Iterator[None]:
    """Be a subreaper while runc exec -d runs, so the exec process is re-parented to us.

    Only for that window: as a permanent subreaper this process would also adopt every conmon it
    starts. `lock` (the one held around conmon launches) keeps those out of the window; a previous
    subreaper setting (a server may want one) is restored. Children the exec process starts later
    are re-parented to the container's init when it exits, not to us: we adopt only runc's orphan.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    before = ctypes.c_int(0)
    libc.prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(before), 0, 0, 0)
    with lock:
        conmon.set_child_subreaper(True)
        try:
            yield
        finally:
            if not before.value:
                conmon.set_child_subreaper(False)


def _watch(terminal: Terminal) -> None:
    """Reap the exec's pid (only that pid, never waitpid(-1)) as soon as it exits."""
    if terminal.pid <= 0:
        terminal.reaped.set()
        return
    try:
        # While it is our unreaped child its pid cannot be reused, so the pidfd is the right process.
        terminal.pidfd = os.pidfd_open(terminal.pid)
    except OSError:
        terminal.pidfd = -1

    def reap() -> None:
        try:
            _, status = os.waitpid(terminal.pid, 0)
            terminal.exit_code = os.waitstatus_to_exitcode(status)
            if terminal.exit_code < 0:
                terminal.exit_code = 128 - terminal.exit_code  # killed by a signal, as a shell says
        except ChildProcessError:
            pass  # not adopted (no subreaper support): PID 1 reaps it
        finally:
            terminal.reaped.set()

    threading.Thread(target=reap, name=f"exec-reaper-{terminal.pid}", daemon=True).start()


def resize(terminal: Terminal, rows: int, cols: int) -> None:
    """Set the size of a session's pseudo-terminal (nothing to do for a session without one)."""
    if terminal.master_fd < 0:
        return
    try:
        fcntl.ioctl(terminal.master_fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    except OSError as exc:
        raise RuntimeFailure(f"cannot resize the exec's terminal: {exc}") from exc


def close(terminal: Terminal, *, timeout: float = 5.0) -> int | None:
    """Close the session's fds, kill the exec's own process if it still runs, and reap it.

    Only that one process: children it left in the background keep running in the container.
    Returns its exit code (None if unknown).
    """
    for fd in (terminal.master_fd, terminal.stdin_fd, terminal.stdout_fd, terminal.stderr_fd):
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
    terminal.master_fd = terminal.stdin_fd = terminal.stdout_fd = terminal.stderr_fd = -1
    if not terminal.reaped.is_set() and terminal.pidfd >= 0:
        with contextlib.suppress(ProcessLookupError, OSError):
            signal.pidfd_send_signal(terminal.pidfd, signal.SIGKILL)
    terminal.reaped.wait(timeout)
    if terminal.pidfd >= 0:
        with contextlib.suppress(OSError):
            os.close(terminal.pidfd)
        terminal.pidfd = -1
    return terminal.exit_code


def relay(terminal: Terminal, *, stdin: int, stdout: int, stderr: int) -> None:
    """Copy a piped session's output to `stdout`/`stderr` (and `stdin` in) until the process is done.

    Returns once the process exited and its pipes are at EOF or quiet for QUIET_AFTER_EXIT. `stdin`
    is -1 when not attached; its EOF closes the process's stdin.
    """
    outputs = {terminal.stdout_fd: stdout, terminal.stderr_fd: stderr}
    outputs.pop(-1, None)
    reading_stdin = stdin >= 0 and terminal.stdin_fd >= 0
    quiet_since: float | None = None
    while outputs or not terminal.reaped.is_set():
        poller = select.poll()
        for fd in outputs:
            poller.register(fd, select.POLLIN)
        if reading_stdin:
            poller.register(stdin, select.POLLIN)
        got_output = False
        for fd, mask in poller.poll(100):
            if fd == stdin and reading_stdin:
                data = _read(stdin)
                if not data or not _write_all(terminal.stdin_fd, data):
                    reading_stdin = False
                    with contextlib.suppress(OSError):
                        os.close(terminal.stdin_fd)
                    terminal.stdin_fd = -1
                continue
            if fd in outputs and mask & (select.POLLIN | select.POLLHUP | select.POLLERR):
                data = _read(fd)
                if data:
                    got_output = True
                    _write_all(outputs[fd], data)
                else:
                    del outputs[fd]
        if terminal.reaped.is_set() and not got_output:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > QUIET_AFTER_EXIT:
                return
        else:
            quiet_since = None


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:
        return b""


def _write_all(fd: int, data: bytes) -> bool:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [], 1.0)
            continue
        except OSError:
            return False
        view = view[written:]
    return True
