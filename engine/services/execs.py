"""Exec: run another process in a running container, with or without a pseudo-terminal.

The process gets the container's own process settings (capabilities, rlimits, no-new-privileges,
seccomp via the container config) with only args, env, cwd, user and terminal replaced.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import secrets
import signal
import struct
import subprocess
import termios
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.utils import timezone

from engine import conf, events
from engine.errors import InvalidArgument, RuntimeFailure
from engine.models import Container, ExecSession
from engine.runtime import conmon, spec, users
from engine.runtime import runc as runc_mod
from engine.services import bundle, containerinfo, containers


@dataclass(frozen=True)
class ExecRequest:
    command: tuple[str, ...]
    tty: bool = False
    interactive: bool = False
    env: tuple[str, ...] = ()
    user: str | None = None
    workdir: str | None = None
    detach: bool = False
    console_size: tuple[int, int] | None = None  # (rows, cols) of the terminal at start, with tty


@dataclass
class Terminal:
    """A live exec: the caller owns its fds and must call `close_session`.

    With a pseudo-terminal `master_fd` is the pty; without one (`open_session` of a non-tty
    request) the process's stdio are pipes: `stdin_fd` (write end, -1 when stdin is not attached),
    `stdout_fd` and `stderr_fd` (read ends), and `master_fd` is -1.

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


def _exec_dir(container_id: str) -> Path:
    directory = conf.run_dir() / "containers" / container_id / "exec"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return directory


def _prepare(container: Container, request: ExecRequest, session_id: str) -> Path:
    if not request.command:
        raise InvalidArgument("exec needs a command")
    p = bundle.paths(container.id)
    try:
        process = json.loads((p.bundle / "config.json").read_text())["process"]
    except (OSError, KeyError, ValueError) as exc:
        raise RuntimeFailure(f"container {container.name} has no runtime config: {exc}") from exc
    config = container.config
    who = users.resolve_in_rootfs(
        p.rootfs, request.user if request.user is not None else (config.get("User") or None)
    )
    env = dict(e.partition("=")[::2] for e in process.get("env", []))
    for item in request.env:
        key, sep, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid environment variable {item!r}")
        env[key] = value if sep else os.environ.get(key, "")
    if request.tty:
        env.setdefault("TERM", "xterm")
    process.update(
        {
            "args": list(request.command),
            "env": [f"{k}={v}" for k, v in env.items()],
            "cwd": spec.validate_workdir(request.workdir or config.get("WorkingDir") or "/"),
            "terminal": request.tty,
            "user": {"uid": who.uid, "gid": who.gid, "additionalGids": list(who.additional_gids)},
        }
    )
    process.pop("consoleSize", None)
    if request.tty and request.console_size and all(request.console_size):
        rows, cols = request.console_size
        process["consoleSize"] = {"height": rows, "width": cols}
    path = _exec_dir(container.id) / f"{session_id}.json"
    path.write_text(json.dumps(process))
    return path


def check_request(request: ExecRequest) -> None:
    """Refuse a request that could never start (no command, a bad variable or working directory)."""
    if not request.command:
        raise InvalidArgument("exec needs a command")
    for item in request.env:
        if not item.partition("=")[0]:
            raise InvalidArgument(f"invalid environment variable {item!r}")
    if request.workdir:
        if not request.workdir.startswith("/"):
            raise InvalidArgument(
                f"the working directory '{request.workdir}' is invalid, it needs to be an absolute path"
            )
        spec.validate_workdir(request.workdir)


def resize(terminal: Terminal, rows: int, cols: int) -> None:
    """Set the size of a session's pseudo-terminal (nothing to do for a session without one)."""
    if terminal.master_fd < 0:
        return
    try:
        fcntl.ioctl(terminal.master_fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    except OSError as exc:
        raise RuntimeFailure(f"cannot resize the exec's terminal: {exc}") from exc


def _running(ref: str) -> Container:
    container = containerinfo.get(ref)
    containers.check("exec", container)
    return container


def _record(container: Container, session_id: str, request: ExecRequest, pid: int = 0) -> ExecSession:
    session = ExecSession.objects.create(
        id=session_id,
        container=container,
        command=list(request.command),
        user=request.user or "",
        tty=request.tty,
        pid=pid,
        created_by=events.current_actor(),
    )
    events.record(
        "container",
        "exec_start",
        object_id=container.id,
        object_name=container.name,
        attributes={"exec": session_id, "command": " ".join(request.command)},
    )
    return session


def _finish(session_id: str, exit_code: int | None) -> None:
    ExecSession.objects.filter(id=session_id).update(ended_at=timezone.now(), exit_code=exit_code)
    session = ExecSession.objects.filter(id=session_id).select_related("container").first()
    if session:
        events.record(
            "container",
            "exec_die",
            object_id=session.container_id,
            object_name=session.container.name,
            attributes={"exec": session_id, "exitCode": str(exit_code)},
        )


def run_attached(ref: str, request: ExecRequest, *, stdin: int = 0, stdout: int = 1, stderr: int = 2) -> int:
    """Run in the foreground with the given fds as stdio (runc handles -t itself); return the exit code."""
    container = _running(ref)
    session_id = secrets.token_hex(32)
    process_json = _prepare(container, request, session_id)
    _record(container, session_id, request)
    try:
        code = bundle.runc().exec(
            container.id,
            process_json=process_json,
            detach=request.detach,
            stdin=stdin
            if (request.interactive or request.tty) and not request.detach
            else subprocess.DEVNULL,
            stdout=stdout if not request.detach else subprocess.DEVNULL,
            stderr=stderr if not request.detach else subprocess.DEVNULL,
            timeout=None,
        )
    finally:
        process_json.unlink(missing_ok=True)
    if request.detach:
        return 0
    if code in (126, 127) or code == 255:
        code = _explain_failure(code)
    _finish(session_id, code)
    return code


def _explain_failure(code: int) -> int:
    return code


def open_terminal(ref: str, request: ExecRequest) -> Terminal:
    """Start an exec with a pseudo-terminal and return its master fd (for the dashboard's terminal)."""
    tty_request = ExecRequest(
        command=request.command,
        tty=True,
        interactive=True,
        env=request.env,
        user=request.user,
        workdir=request.workdir,
        console_size=request.console_size,
    )
    return open_session(ref, tty_request)


def open_session(ref: str, request: ExecRequest, *, session_id: str | None = None) -> Terminal:
    """Start an exec in the background and return its live session (the Docker API's exec start).

    With `request.tty` the session has a pty (`master_fd`); without, pipes for stdin (only if
    `request.interactive`), stdout and stderr. The exit code is collected as for `open_terminal`;
    a process that cannot start (unknown command) raises RuntimeFailure with runc's reason.
    """
    container = _running(ref)
    session_id = session_id or secrets.token_hex(32)
    if not request.tty:
        return _open_piped(container, request, session_id)
    process_json = _prepare(container, request, session_id)
    directory = _exec_dir(container.id)
    pid_file = directory / f"{session_id[:12]}.pid"
    socket_path = directory / f"{session_id[:12]}.sock"
    try:
        with _adopting_orphans(), runc_mod.ConsoleSocket(socket_path) as console:
            proc = subprocess.Popen(
                [
                    bundle.runc().binary,
                    *runc_mod.exec_argv(
                        bundle.runc().root,
                        container.id,
                        process_json=process_json,
                        pid_file=pid_file,
                        console_socket=console.runc_path,
                        detach=True,
                    ),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                close_fds=True,
                pass_fds=(),
            )
            try:
                master = console.receive(timeout=10)
            except RuntimeFailure:
                _, err = proc.communicate(timeout=10)
                raise RuntimeFailure(
                    f"exec in {container.name} failed: {err.decode(errors='replace').strip()}"
                ) from None
            _, err = proc.communicate(timeout=10)
            if proc.returncode != 0:
                os.close(master)
                raise RuntimeFailure(
                    f"exec in {container.name} failed: {err.decode(errors='replace').strip()}"
                )
    finally:
        process_json.unlink(missing_ok=True)
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        pid = 0
    pid_file.unlink(missing_ok=True)
    terminal = Terminal(session_id=session_id, container_id=container.id, master_fd=master, pid=pid)
    _watch(terminal)
    _record(container, session_id, request, pid)
    return terminal


def _open_piped(container: Container, request: ExecRequest, session_id: str) -> Terminal:
    """runc exec --detach with pipes as the process's stdio (they pass from runc to the process)."""
    process_json = _prepare(container, request, session_id)
    pid_file = _exec_dir(container.id) / f"{session_id[:12]}.pid"
    ours: list[int] = []  # the ends this process keeps
    theirs: list[int] = []  # the ends runc hands on to the exec process
    try:
        if request.interactive:
            stdin_read, stdin_write = os.pipe2(os.O_CLOEXEC)
            ours.append(stdin_write)
            theirs.append(stdin_read)
        out_read, out_write = os.pipe2(os.O_CLOEXEC)
        err_read, err_write = os.pipe2(os.O_CLOEXEC)
        ours += [out_read, err_read]
        theirs += [out_write, err_write]
        with _adopting_orphans():
            bundle.runc().exec(
                container.id,
                process_json=process_json,
                pid_file=pid_file,
                detach=True,
                stdin=stdin_read if request.interactive else subprocess.DEVNULL,
                stdout=out_write,
                stderr=err_write,
                timeout=30,
            )
    except RuntimeFailure:
        # runc wrote its reason to the stderr it was given, which is our pipe: read it back.
        for fd in theirs:
            os.close(fd)
        theirs.clear()
        reason = _drain(ours[-1]).decode(errors="replace").strip()
        for fd in ours:
            os.close(fd)
        ours.clear()
        raise RuntimeFailure(f"exec in {container.name} failed: {reason or 'runc exec failed'}") from None
    except BaseException:
        for fd in ours:
            os.close(fd)
        ours.clear()
        raise
    finally:
        for fd in theirs:
            os.close(fd)
        process_json.unlink(missing_ok=True)
        if not ours:
            pid_file.unlink(missing_ok=True)
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        pid = 0
    pid_file.unlink(missing_ok=True)
    terminal = Terminal(
        session_id=session_id,
        container_id=container.id,
        master_fd=-1,
        pid=pid,
        stdin_fd=ours[0] if request.interactive else -1,
        stdout_fd=ours[-2],
        stderr_fd=ours[-1],
    )
    _watch(terminal)
    _record(container, session_id, request, pid)
    return terminal


def _drain(fd: int) -> bytes:
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


_PR_GET_CHILD_SUBREAPER = 37


@contextlib.contextmanager
def _adopting_orphans() -> Iterator[None]:
    """Be a subreaper while runc exec -d runs, so the exec process is re-parented to us.

    Only for that window: as a permanent subreaper this process would also adopt every conmon it
    starts. bundle.ADOPTION_LOCK keeps this process's own conmon launches out of the window; a
    previous subreaper setting (a server may want one) is restored.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    before = ctypes.c_int(0)
    libc.prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(before), 0, 0, 0)
    with bundle.ADOPTION_LOCK:
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


def close_session(terminal: Terminal, *, timeout: float = 5.0) -> int | None:
    """End a terminal session: close the pty, kill its process if it still runs, and reap it.

    Returns the exec's exit code (None if unknown); the container itself is never touched.
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
    _finish(terminal.session_id, terminal.exit_code)
    return terminal.exit_code
