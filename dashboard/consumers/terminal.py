"""An interactive terminal into a running container: an exec with a pseudo-terminal, relayed both ways.

Route: ws/containers/<id>/terminal/?token=… — the token comes from the CSRF-protected POST
`/containers/<id>/terminal/token/` (views_container_io.terminal_token) and is single-use, short-lived and
bound to the user, the container and the command (dashboard/terminals.py). Before accept() the
consumer checks login, the "terminal" policy, and consumes the token.

Frames, browser → server (text, JSON, at most MAX_FRAME bytes):
  {"type": "stdin", "data": "ls\\r"}               keystrokes or pasted text (UTF-8)
  {"type": "resize", "rows": 40, "cols": 120}      1…65535 each; applied with TIOCSWINSZ
Frames, server → browser:
  binary                                          raw pty output (UTF-8 bytes, may split characters)
  {"type": "ready", "session": "…"}               the shell is running
  {"type": "exit", "code": N|null}                the shell ended (null: its status could not be read)
  {"type": "error", "message": "…"}               then a close with 4000 + status (a command that
                                                  cannot start: one readable sentence, "notRunnable": 126|127)

With a grant for *attach* (a container run with -t) the consumer relays the container's own terminal
through conmon's attach socket instead of starting an exec: output and resize as above, input goes to
the main process if it was run with -i; closing detaches and leaves the container running.

Output is read with `loop.add_reader` on the non-blocking master fd, so the event loop never blocks.
A bounded queue between the reader and the sender stops reading while the browser lags (the pty then
fills and the shell blocks, which is the back-pressure a terminal should have). Input that the pty
cannot take right away waits in a buffer drained by `add_writer`. The session closes on idle
(IDLE_TIMEOUT), logout or lost rights (re-checked every RECHECK seconds), or when asked by the
manager; on close the exec session is ended (execs.close_session).
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import json
import logging
import os
import socket
import struct
import termios
import time
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async

from dashboard import policy, terminals
from dashboard.consumers.base import GatedConsumer
from dashboard.terminals import IDLE_TIMEOUT, MAX_FRAME, manager
from engine import events
from engine.errors import CommandNotRunnable, Conflict, EngineError, InvalidArgument
from engine.services import attach as attaching
from engine.services import containerinfo, execs

logger = logging.getLogger(__name__)

READ_SIZE = 65536
MAX_QUEUED_OUTPUT = 64  # chunks of up to READ_SIZE waiting for the browser
MAX_INPUT_BUFFER = 1 << 20
RECHECK = 30.0


def parse_resize(data: dict[str, Any]) -> tuple[int, int]:
    """Validate a resize frame's rows and cols as uint16 (1…65535); raise InvalidArgument otherwise."""
    rows, cols = data.get("rows"), data.get("cols")
    for value in (rows, cols):
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
            raise InvalidArgument("resize needs integer rows and cols between 1 and 65535")
    return int(rows), int(cols)  # type: ignore[arg-type]


def set_window_size(fd: int, rows: int, cols: int) -> None:
    """Set the pty's window size; the kernel sends SIGWINCH to the shell."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class TerminalConsumer(GatedConsumer):
    action = "terminal"

    def resolve(self) -> Any:
        user = self.scope["user"]
        # The role first: a viewer's request must not even spend a token.
        policy.check(user, "terminal")
        container = containerinfo.get(self.scope["url_route"]["kwargs"]["container_id"])
        params = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        token = (params.get("token") or [""])[0]
        self.grant = manager.redeem(token, user_id=user.pk, container_id=container.id)
        policy.check(user, "terminal", container, spec={"command": list(self.grant.command)})
        return container

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.fd = -1
        self.terminal: execs.Terminal | None = None
        self.console: socket.socket | None = None  # set instead of `terminal` when attached
        self.output: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.input_buffer = bytearray()
        self.reading = False
        self.closed = False
        self.last_activity = time.monotonic()
        user = self.scope["user"]
        try:
            self.session = manager.register(
                user_id=user.pk,
                container_id=self.target.id,
                command=self.grant.command,
                close=self._close_from_outside,
            )
        except Conflict as exc:
            await self.fail(exc)
            return
        if self.grant.attach:
            await self._start_attached(user)
            return
        try:
            self.terminal = await database_sync_to_async(_open)(
                user.get_username(), self.target.id, self.grant.command, self.grant.exec_user
            )
        except CommandNotRunnable as exc:
            manager.release(self.session.key)
            # A short sentence, not runc's log line: the bar shows it as the state.
            message = terminals.start_failure(exc, self.grant.command, self.target.name)
            await self.send_json({"type": "error", "message": message, "notRunnable": exc.exit_status})
            await self.close(code=4000 + exc.status)
            return
        except EngineError as exc:
            manager.release(self.session.key)
            await self.fail(exc)
            return
        self.fd = self.terminal.master_fd
        os.set_blocking(self.fd, False)
        self._resume_reading()
        self.sender = asyncio.create_task(self._send_output())
        self.watchdog = asyncio.create_task(self._watch())
        logger.info("terminal %s opened by %s into %s", self.terminal.session_id, user, self.target.name)
        await self.send_json({"type": "ready", "session": self.terminal.session_id[:12]})

    async def _start_attached(self, user: Any) -> None:
        """Attach to the container's own terminal: conmon's socket in place of an exec's pty."""
        try:
            self.console = await database_sync_to_async(_attach)(user.get_username(), self.target.id)
        except EngineError as exc:
            manager.release(self.session.key)
            await self.fail(exc)
            return
        self.fd = self.console.fileno()
        self.console.setblocking(False)
        self._resume_reading()
        self.sender = asyncio.create_task(self._send_output())
        self.watchdog = asyncio.create_task(self._watch())
        logger.info("terminal attached by %s to %s", user, self.target.name)
        await self.send_json({"type": "ready", "session": "attach", "attached": True})

    # -- output: pty → browser ---------------------------------------------------------------------

    def _resume_reading(self) -> None:
        if not self.reading and self.fd >= 0:
            self.loop.add_reader(self.fd, self._on_readable)
            self.reading = True

    def _pause_reading(self) -> None:
        if self.reading:
            self.loop.remove_reader(self.fd)
            self.reading = False

    def _on_readable(self) -> None:
        if self.console is not None:
            self._on_console_readable()
            return
        try:
            data = os.read(self.fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:  # EIO: every slave fd is closed, i.e. the shell is gone
                logger.warning("terminal read failed: %s", exc)
            data = b""
        if not data:
            self._pause_reading()
            self.output.put_nowait(None)
            return
        self.output.put_nowait(data)
        if self.output.qsize() >= MAX_QUEUED_OUTPUT:
            self._pause_reading()

    def _on_console_readable(self) -> None:
        assert self.console is not None
        try:
            item = attaching.receive(self.console)
        except BlockingIOError:
            return
        if item is None:  # conmon closes attach clients when the container exits
            self._pause_reading()
            self.output.put_nowait(None)
            return
        self.output.put_nowait(item[1])
        if self.output.qsize() >= MAX_QUEUED_OUTPUT:
            self._pause_reading()

    async def _send_output(self) -> None:
        while True:
            data = await self.output.get()
            if data is None:
                break
            self.last_activity = time.monotonic()
            await self.send(bytes_data=data)
            if self.output.qsize() < MAX_QUEUED_OUTPUT // 2:
                self._resume_reading()
        if self.console is not None:
            await self.send_json({"type": "exit", "code": None, "attached": True})
            await self._shutdown(code=1000)
            return
        code = await asyncio.to_thread(_exit_code, self.terminal) if self.terminal else None
        await self.send_json({"type": "exit", "code": code})
        await self._shutdown(code=1000)

    # -- input: browser → pty ----------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if (self.terminal is None and self.console is None) or self.closed:
            return
        size = len(text_data.encode()) if text_data is not None else len(bytes_data or b"")
        if size > MAX_FRAME:
            await self.send_json({"type": "error", "message": f"frame too large (limit {MAX_FRAME} bytes)"})
            await self._shutdown(code=1009)
            return
        if bytes_data is not None:
            self._write(bytes_data)
            return
        try:
            frame = json.loads(text_data or "")
        except ValueError:
            return
        if not isinstance(frame, dict):
            return
        kind = frame.get("type")
        if kind == "stdin" and isinstance(frame.get("data"), str):
            self._write(frame["data"].encode("utf-8", errors="replace"))
        elif kind == "resize":
            try:
                rows, cols = parse_resize(frame)
                if self.console is not None:
                    await asyncio.to_thread(attaching.resize_terminal, self.target, rows, cols)
                else:
                    set_window_size(self.fd, rows, cols)
            except InvalidArgument as exc:
                await self.send_json({"type": "error", "message": str(exc)})
            except OSError:
                pass  # the pty is closing

    def _write(self, data: bytes) -> None:
        self.last_activity = time.monotonic()
        if len(self.input_buffer) + len(data) > MAX_INPUT_BUFFER:
            return  # the shell is not reading; dropping beats holding unbounded input
        self.input_buffer += data
        self._drain_input()

    def _drain_input(self) -> None:
        while self.input_buffer and self.fd >= 0:
            try:
                chunk = bytes(self.input_buffer[:4096])
                # conmon's attach socket is SOCK_SEQPACKET: one send is one packet, taken whole.
                written = self.console.send(chunk) if self.console is not None else os.write(self.fd, chunk)
            except BlockingIOError:
                self.loop.add_writer(self.fd, self._on_writable)
                return
            except OSError:
                self.input_buffer.clear()
                return
            del self.input_buffer[:written]

    def _on_writable(self) -> None:
        self.loop.remove_writer(self.fd)
        self._drain_input()

    # -- lifetime ----------------------------------------------------------------------------------

    async def _watch(self) -> None:
        """Close on idle, and re-check the user's session and rights (Channels checks them only once)."""
        user = self.scope["user"]
        session = self.scope.get("session")
        session_key = getattr(session, "session_key", None)
        while not self.closed:
            await asyncio.sleep(min(RECHECK, IDLE_TIMEOUT))
            if time.monotonic() - self.last_activity > IDLE_TIMEOUT:
                await self.send_json({"type": "error", "message": "closed after 15 minutes without activity"})
                await self._shutdown(code=4408)
                return
            if not await database_sync_to_async(_still_allowed)(user.pk, session, session_key):
                await self.send_json({"type": "error", "message": "your session ended or lost the right"})
                await self._shutdown(code=4403)
                return

    def _close_from_outside(self, reason: str) -> None:
        """Called by the manager from any thread (logout, container removal)."""

        async def close() -> None:
            if not self.closed:
                await self.send_json({"type": "error", "message": f"terminal closed: {reason}"})
                await self._shutdown(code=4403)

        try:
            self.loop.call_soon_threadsafe(lambda: asyncio.ensure_future(close()))
        except RuntimeError:
            pass

    async def _shutdown(self, *, code: int) -> None:
        if self.closed:
            return
        await self._release()
        await self.close(code=code)

    async def _release(self) -> None:
        if self.closed:
            return
        self.closed = True
        if getattr(self, "session", None) is not None:
            manager.release(self.session.key)
        if self.fd >= 0:
            self._pause_reading()
            self.loop.remove_writer(self.fd)
        for name in ("watchdog", "sender"):
            task = getattr(self, name, None)
            if task is not None and task is not asyncio.current_task() and not task.done():
                task.cancel()
        terminal, self.terminal = self.terminal, None
        console, self.console = self.console, None
        self.fd = -1
        if terminal is not None:
            await database_sync_to_async(execs.close_session)(terminal)
        if console is not None:
            await database_sync_to_async(_detach)(self.scope["user"].get_username(), self.target, console)

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "loop"):
            await self._release()


def _open(
    username: str, container_id: str, command: tuple[str, ...], exec_user: str | None
) -> execs.Terminal:
    with events.acting_as(username):
        return execs.open_terminal(container_id, execs.ExecRequest(command=command, tty=True, user=exec_user))


def _attach(username: str, container_id: str) -> socket.socket:
    with events.acting_as(username):
        return attaching.open_console(container_id)[1]


def _detach(username: str, container: Any, console: socket.socket) -> None:
    with events.acting_as(username):
        attaching.close_console(container, console)


def _exit_code(terminal: execs.Terminal) -> int | None:
    """The shell's exit code, once the engine's reaper thread has it (never waitpid here: that
    would steal the status from the reaper). None when the engine could not adopt the process."""
    reaped = getattr(terminal, "reaped", None)
    if reaped is None:
        return None
    reaped.wait(2.0)
    return getattr(terminal, "exit_code", None)


def _still_allowed(user_id: int, session: Any, session_key: str | None) -> bool:
    from django.contrib.auth import get_user_model

    if session is not None and session_key and not session.exists(session_key):
        return False  # logged out
    user = get_user_model().objects.filter(pk=user_id).first()
    return user is not None and policy.allowed(user, "terminal")
