"""Exec: run another process in a running container, with or without a pseudo-terminal.

The process gets the container's own process settings (capabilities, rlimits, no-new-privileges,
seccomp via the container config) with only args, env, cwd, user and terminal replaced.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from django.utils import timezone

from engine import conf, events
from engine.errors import CommandNotRunnable, InvalidArgument, RuntimeFailure
from engine.models import Container, ExecSession
from engine.runtime import execproc, spec, users
from engine.runtime.execproc import Terminal
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
    execproc.resize(terminal, rows, cols)


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
    """Run in the foreground with the given fds as stdio; return the exit code.

    Without a terminal the output is relayed until the process exits (and its pipes are quiet), so
    a child it started in the background keeps running in the container and does not hold the
    command open, as in Docker. With -t runc handles the terminal itself.
    """
    if not request.tty and not request.detach:
        terminal = open_session(ref, request)
        try:
            execproc.relay(terminal, stdin=stdin if request.interactive else -1, stdout=stdout, stderr=stderr)
        finally:
            code = close_session(terminal)
        return code if code is not None else 255
    container = _running(ref)
    session_id = secrets.token_hex(32)
    process_json = _prepare(container, request, session_id)
    _record(container, session_id, request)
    try:
        code = bundle.runc().exec(
            container.id,
            process_json=process_json,
            detach=request.detach,
            stdin=stdin if request.tty and not request.detach else subprocess.DEVNULL,
            stdout=stdout if not request.detach else subprocess.DEVNULL,
            stderr=stderr if not request.detach else subprocess.DEVNULL,
            timeout=None,
        )
    finally:
        process_json.unlink(missing_ok=True)
    if request.detach:
        return 0
    _finish(session_id, code)
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


def open_session(
    ref: str, request: ExecRequest, *, session_id: str | None = None, record: bool = True
) -> Terminal:
    """Start an exec in the background and return its live session (the Docker API's exec start).

    With `request.tty` the session has a pty (`master_fd`); without, pipes for stdin (only if
    `request.interactive`), stdout and stderr. The caller must end it with `close_session`; a
    process that cannot start (unknown command) raises RuntimeFailure with runc's reason.
    With `record=False` (health checks, one every few seconds) no session row or exec event is
    written, and the caller ends it with `execproc.close`.
    """
    container = _running(ref)
    terminal = Terminal(
        session_id=session_id or secrets.token_hex(32), container_id=container.id, master_fd=-1, pid=0
    )
    process_json = _prepare(container, request, terminal.session_id)
    directory = _exec_dir(container.id)
    try:
        if request.tty:
            execproc.start_with_terminal(
                bundle.runc(),
                terminal,
                process_json=process_json,
                directory=directory,
                adoption_lock=bundle.ADOPTION_LOCK,
            )
        else:
            execproc.start_piped(
                bundle.runc(),
                terminal,
                process_json=process_json,
                directory=directory,
                interactive=request.interactive,
                adoption_lock=bundle.ADOPTION_LOCK,
            )
    except CommandNotRunnable as exc:
        raise CommandNotRunnable(
            f"exec in {container.name} failed: {exc}", reason=exc.reason, exit_status=exc.exit_status
        ) from None
    except RuntimeFailure as exc:
        raise RuntimeFailure(f"exec in {container.name} failed: {exc}") from None
    finally:
        process_json.unlink(missing_ok=True)
    if record:
        _record(container, terminal.session_id, request, terminal.pid)
    return terminal


def close_session(terminal: Terminal, *, timeout: float = 5.0) -> int | None:
    """End a session: close its fds, kill its own process if it still runs, reap it, record the end.

    Returns the exec's exit code (None if unknown); the container, and any process the exec left
    running in the background, are never touched.
    """
    code = execproc.close(terminal, timeout=timeout)
    _finish(terminal.session_id, code)
    return code
