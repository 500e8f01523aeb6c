"""Docker API: exec (`POST /containers/{id}/exec`, `POST /exec/{id}/start`, resize, inspect).

Docker keeps exec instances in the daemon's memory: created, started once, then inspectable for
their exit code. So does this module, for the life of the API server (finished ones are forgotten
after a while). The process itself is the engine's (services/execs.open_session) and is recorded in
the audit log as any exec. The start request's `Tty` decides the framing of the hijacked stream
(multiplexed without it), the create request's `Tty` whether the process gets a terminal. The exit
code is recorded before the stream is closed, because the docker CLI inspects the exec right after.

Over 400 lines because Docker's exec is one life cycle (create, start once, resize, inspect) around one
in-memory record, and the relay that ends it must record the exit code on that record before it closes
the stream; the stream helpers it shares with attach are already in engine/api/hijack.py.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import errno
import fcntl
import os
import secrets
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from engine.api import fields
from engine.api.attach import size_args
from engine.api.hijack import (
    STDERR,
    STDOUT,
    DetachMatcher,
    client_hung_up,
    content_type,
    frame,
    parse_detach_keys,
    send,
)
from engine.api.http import ApiError, Hijack, Request, Response
from engine.api.router import route
from engine.errors import (
    CommandNotRunnable,
    EngineError,
    InvalidArgument,
    InvalidState,
    NotFound,
    PermissionDenied,
)
from engine.models import Container, ContainerState
from engine.services import containerinfo, execs

KEEP_FINISHED = 600.0  # seconds an ended exec stays inspectable
KEEP_UNSTARTED = 3600.0
MAX_EXECS = 4096
_HANGUP = select.POLLHUP | select.POLLERR | select.POLLNVAL


@dataclass
class _Exec:
    id: str
    container_id: str
    container_name: str
    request: execs.ExecRequest
    attach_stdin: bool
    attach_stdout: bool
    attach_stderr: bool
    detach_keys: str
    running: bool = False
    exit_code: int | None = None
    pid: int = 0
    ended_at: float | None = None
    created_at: float = field(default_factory=time.monotonic)
    terminal: execs.Terminal | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def inspect(self) -> dict[str, Any]:
        return {
            "ID": self.id,
            "Running": self.running,
            "ExitCode": self.exit_code,
            "ProcessConfig": {
                "tty": self.request.tty,
                "entrypoint": self.request.command[0],
                "arguments": list(self.request.command[1:]),
                "privileged": False,
                "user": self.request.user or "",
            },
            "OpenStdin": self.attach_stdin,
            "OpenStderr": self.attach_stderr,
            "OpenStdout": self.attach_stdout,
            "CanRemove": False,
            "ContainerID": self.container_id,
            "DetachKeys": self.detach_keys,
            "Pid": self.pid,
        }


_execs: dict[str, _Exec] = {}
_execs_lock = threading.Lock()


class ExecNotFound(NotFound):
    pass


def _lookup(exec_id: str) -> _Exec:
    with _execs_lock:
        found = _execs.get(exec_id)
    if found is None:
        raise ExecNotFound(f"No such exec instance: {exec_id}")
    return found


def _register(instance: _Exec) -> None:
    now = time.monotonic()
    with _execs_lock:
        for key, old in list(_execs.items()):
            # Ended ones stay inspectable for a while; never-started ones (a client that gave up) longer.
            if old.ended_at is not None and now - old.ended_at > KEEP_FINISHED:
                del _execs[key]
            elif not old.running and old.ended_at is None and now - old.created_at > KEEP_UNSTARTED:
                del _execs[key]
        if len(_execs) >= MAX_EXECS:
            raise ApiError(503, f"too many exec instances ({MAX_EXECS}); start or let some finish first")
        _execs[instance.id] = instance


def _active_container(ref: str) -> Container:
    container = containerinfo.get(ref)
    if container.state == ContainerState.PAUSED:
        raise InvalidState(f"container {container.name} is paused, unpause the container before exec")
    if container.state == ContainerState.RESTARTING:
        raise InvalidState(f"container {container.name} is restarting, wait until the container is running")
    if container.state != ContainerState.RUNNING:
        raise InvalidState(f"container {container.name} is not running")
    return container


# --- body parsing ------------------------------------------------------------------------------------


def _console_size(body: dict[str, Any]) -> tuple[int, int] | None:
    value = body.get("ConsoleSize")
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 65535 for v in value)
    ):
        raise InvalidArgument("ConsoleSize must be [height, width] with two integers in 0..65535")
    rows, cols = value
    return (min(rows, 1000), min(cols, 1000)) if rows and cols else None


# --- routes --------------------------------------------------------------------------------------------


@route("POST", "/containers/{id}/exec")
def create_exec(request: Request) -> Response:
    body = request.json_object()
    command = fields.strings(body, "Cmd")
    if not command:
        raise InvalidArgument("No exec command specified")
    if fields.boolean(body, "Privileged"):
        raise PermissionDenied("privileged exec is not allowed in Berth")
    detach_keys = fields.string(body, "DetachKeys")
    parse_detach_keys(detach_keys)
    exec_request = execs.ExecRequest(
        command=tuple(command),
        tty=fields.boolean(body, "Tty"),
        interactive=fields.boolean(body, "AttachStdin"),
        env=tuple(fields.strings(body, "Env")),
        user=fields.string(body, "User") or None,
        workdir=fields.string(body, "WorkingDir") or None,
        console_size=_console_size(body) if request.version >= (1, 42) else None,
    )
    execs.check_request(exec_request)
    container = _active_container(request.params["id"])
    instance = _Exec(
        id=secrets.token_hex(32),
        container_id=container.id,
        container_name=container.name,
        request=exec_request,
        attach_stdin=exec_request.interactive,
        attach_stdout=fields.boolean(body, "AttachStdout"),
        attach_stderr=fields.boolean(body, "AttachStderr"),
        detach_keys=detach_keys,
    )
    _register(instance)
    return Response(status=201, body={"Id": instance.id})


@route("GET", "/exec/{id}/json")
def inspect_exec(request: Request) -> Response:
    instance = _lookup(request.params["id"])
    return Response(body=instance.inspect())


@route("POST", "/exec/{id}/resize")
def resize_exec(request: Request) -> Response:
    rows, cols = size_args(request)
    instance = _lookup(request.params["id"])
    terminal = instance.terminal
    if terminal is None or not instance.running:
        raise InvalidState(f"exec {instance.id} is not running")
    execs.resize(terminal, rows, cols)
    return Response(status=200, body=None)


@route("POST", "/exec/{id}/start")
def start_exec(request: Request) -> Response | Hijack:
    body = request.json_object(required=False)
    detach = fields.boolean(body, "Detach")
    framing_tty = fields.boolean(body, "Tty")
    console_size = _console_size(body) if request.version >= (1, 42) and framing_tty else None
    instance = _lookup(request.params["id"])
    try:
        _active_container(instance.container_id)
    except NotFound:
        raise ExecNotFound(f"No such container: {instance.container_name}") from None
    with instance.lock:
        if instance.exit_code is not None:
            raise InvalidState(f"exec command {instance.id} has already run")
        if instance.running:
            raise InvalidState(f"exec command {instance.id} is already running")
        instance.running = True
    exec_request = instance.request
    if console_size is not None and exec_request.tty:
        exec_request = dataclasses.replace(exec_request, console_size=console_size)
    if detach:
        terminal = _open(instance, exec_request)  # a failure is the answer (its code is recorded)
        context = contextvars.copy_context()  # the caller stays the actor of the exec's events
        threading.Thread(
            target=context.run, args=(_relay_detached, instance, terminal), name="berth-exec", daemon=True
        ).start()
        return Response(status=200, body=None)

    def run(client: socket.socket, leftover: bytes) -> None:
        try:
            terminal = _open(instance, exec_request)
        except EngineError as exc:
            # Docker's wording, on the output stream: the CLI prints it and then inspects the code.
            message = f"OCI runtime exec failed: {exc}\r\n".encode()
            send(client, frame(STDOUT, message, tty=framing_tty))
            return
        _relay(instance, terminal, client, leftover, framing_tty)

    return Hijack(run=run, content_type=content_type(tty=framing_tty, version=request.version))


def _open(instance: _Exec, exec_request: execs.ExecRequest) -> execs.Terminal:
    """Start the process; a failure is recorded as Docker does (127 not found, 126 otherwise)."""
    try:
        terminal = execs.open_session(instance.container_id, exec_request, session_id=instance.id)
    except CommandNotRunnable as exc:
        _end(instance, exc.exit_status)
        raise
    except EngineError:
        _end(instance, 126)
        raise
    instance.terminal = terminal
    instance.pid = terminal.pid
    return terminal


def _end(instance: _Exec, code: int | None) -> None:
    with instance.lock:
        instance.exit_code = code if code is not None else -1
        instance.running = False
        instance.ended_at = time.monotonic()
        instance.terminal = None


# --- the relay ------------------------------------------------------------------------------------------


def _relay(
    instance: _Exec,
    terminal: execs.Terminal,
    client: socket.socket | None,
    leftover: bytes,
    framing_tty: bool,
) -> None:
    """Move bytes between the client (None when detached) and the exec until it ends; record its code."""
    code: int | None = None
    try:
        _Pump(instance, terminal, client, framing_tty).run(leftover)
        while not terminal.reaped.wait(1.0):
            if client is not None and client_hung_up(client):
                client = None  # nobody to tell; the process runs on, as in Docker
    finally:
        code = execs.close_session(terminal)
        _end(instance, code)


def _relay_detached(instance: _Exec, terminal: execs.Terminal) -> None:
    from django.db import connections

    try:
        _relay(instance, terminal, None, b"", False)
    finally:
        connections.close_all()  # this thread's own database connection


class _Pump:
    """One poll loop over the client socket and the exec's pty or pipes."""

    def __init__(
        self, instance: _Exec, terminal: execs.Terminal, client: socket.socket | None, framing_tty: bool
    ) -> None:
        self.instance = instance
        self.terminal = terminal
        self.client = client
        self.framing_tty = framing_tty
        self.matcher = DetachMatcher(parse_detach_keys(instance.detach_keys))
        if terminal.master_fd >= 0:
            self.outputs = {terminal.master_fd: STDOUT}
            self.stdin_fd = terminal.master_fd if instance.attach_stdin else -1
        else:
            self.outputs = {terminal.stdout_fd: STDOUT, terminal.stderr_fd: STDERR}
            self.stdin_fd = terminal.stdin_fd
        self.wanted = {STDOUT: instance.attach_stdout, STDERR: instance.attach_stderr}
        if terminal.master_fd >= 0:
            self.wanted[STDOUT] = instance.attach_stdout or instance.attach_stderr
        self.pending = bytearray()
        self.stdin_closing = False
        if self.stdin_fd >= 0:
            fcntl.fcntl(
                self.stdin_fd, fcntl.F_SETFL, fcntl.fcntl(self.stdin_fd, fcntl.F_GETFL) | os.O_NONBLOCK
            )

    def _output(self, stream: int, data: bytes) -> None:
        if self.client is None or not self.wanted[stream]:
            return
        if not send(self.client, frame(stream, data, tty=self.framing_tty)):
            self._lose_client()

    def _lose_client(self) -> None:
        self.client = None
        if self.stdin_fd >= 0 and self.terminal.master_fd < 0:
            self._close_stdin()

    def _close_stdin(self) -> None:
        if self.terminal.master_fd >= 0:
            return  # a terminal has no separate input to close
        with contextlib.suppress(OSError):
            os.close(self.stdin_fd)
        self.terminal.stdin_fd = -1
        self.stdin_fd = -1
        self.pending.clear()

    def _input(self, data: bytes) -> None:
        if self.stdin_fd < 0:
            return
        self.pending += self.matcher.feed(data)
        if self.matcher.detached:
            if self.client is not None:
                with contextlib.suppress(OSError):
                    self.client.shutdown(socket.SHUT_RDWR)
            self.client = None

    def run(self, leftover: bytes) -> None:
        client_reading = self.client is not None
        if leftover:
            self._input(leftover)
        quiet_since: float | None = None
        while self.outputs:
            masks: dict[int, int] = {fd: select.POLLIN for fd in self.outputs}
            if self.stdin_fd >= 0 and self.pending:
                masks[self.stdin_fd] = masks.get(self.stdin_fd, 0) | select.POLLOUT  # the pty is both
            client_fd = self.client.fileno() if self.client is not None else -1
            if self.client is not None:
                reading = client_reading and len(self.pending) < 256 * 1024
                masks[client_fd] = select.POLLIN if reading else 0
            poller = select.poll()
            for fd, mask in masks.items():
                poller.register(fd, mask)
            got_output = False
            for fd, mask in poller.poll(100):
                if fd == client_fd and self.client is not None:
                    if mask & select.POLLIN:
                        data = _recv(self.client)
                        if data:
                            self._input(data)
                            continue
                        client_reading = False
                        self.stdin_closing = True
                    elif mask & _HANGUP:
                        self._lose_client()
                    continue
                if mask & select.POLLOUT and fd == self.stdin_fd:
                    self._write_stdin()
                if fd in self.outputs and mask & (select.POLLIN | _HANGUP):
                    got_output |= self._read_output(fd)
            if self.stdin_closing and not self.pending and self.stdin_fd >= 0:
                self._close_stdin()
            # A background child can hold the output open after the process ended: stop once it is
            # quiet for a moment after the exit, as Docker stops copying when the process is gone.
            if self.terminal.reaped.is_set() and not got_output:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 0.2:
                    return
            else:
                quiet_since = None

    def _read_output(self, fd: int) -> bool:
        try:
            data = os.read(fd, 65536)
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                return False
            data = b""  # EIO: the pty's other side is closed
        if not data:
            del self.outputs[fd]
            return False
        self._output(self.outputs[fd], data)
        return True

    def _write_stdin(self) -> None:
        try:
            written = os.write(self.stdin_fd, bytes(self.pending[:65536]))
        except BlockingIOError:
            return
        except OSError:
            self.pending.clear()  # the process closed its stdin
            return
        del self.pending[:written]


def _recv(client: socket.socket) -> bytes:
    try:
        return client.recv(65536)
    except OSError:
        return b""
