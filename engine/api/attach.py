"""Docker API: attach to a container (`POST /containers/{id}/attach`, hijacked) and resize its terminal.

After the server's `101 UPGRADED`, output goes to the client multiplexed (an 8-byte header: stream 1
stdout or 2 stderr, three zero bytes, a big-endian length) unless the container has a terminal, then
raw. Without stdin and terminal, output is read from the log file from where it stood when the client
attached, so a `docker run` that attaches before it starts loses nothing; with stdin or a terminal it
comes from conmon's attach socket, connected before `runc start` when this process starts the
container. A client's half-close (shutdown of its write side) closes the container's stdin; output
keeps flowing until the container exits. The detach keys (ctrl-p ctrl-q unless `detachKeys` says
otherwise) end the attachment and leave the container running.

The framing, hang-up and detach-key helpers, shared with the exec endpoints (engine/api/execs.py), are
in engine/api/hijack.py.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
import weakref

from engine.api.hijack import (
    HANGUP,
    STDERR,
    STDOUT,
    DetachMatcher,
    content_type,
    frame,
    parse_detach_keys,
    send,
)
from engine.api.http import Hijack, Request, Response
from engine.api.router import route
from engine.errors import InvalidArgument, RuntimeFailure
from engine.models import Container
from engine.services import attach as attaching

POLL_MS = 25
STDIN_BUFFER = 1024 * 1024  # stdin sent before the container starts is held up to this much
STDIN_PACKET = 4096  # conmon reads each SOCK_SEQPACKET message into a buffer about this big


# --- routes ----------------------------------------------------------------------------------------


@route("POST", "/containers/{id}/attach")
def attach_container(request: Request) -> Hijack:
    container = attaching.get(request.params["id"])
    session = _Attachment(
        container,
        stdin=request.flag("stdin"),
        stdout=request.flag("stdout"),
        stderr=request.flag("stderr"),
        logs=request.flag("logs"),
        stream=request.flag("stream"),
        detach_keys=parse_detach_keys(request.arg("detachKeys")),
    )
    return Hijack(run=session.run, content_type=content_type(tty=session.tty, version=request.version))


@route("POST", "/containers/{id}/resize")
def resize_container(request: Request) -> Response:
    rows, cols = size_args(request)
    attaching.resize(request.params["id"], rows, cols)
    return Response(status=200, body=None)


def size_args(request: Request) -> tuple[int, int]:
    rows = request.int_arg("h", 0)
    cols = request.int_arg("w", 0)
    assert rows is not None and cols is not None
    if not 0 <= rows <= 65535 or not 0 <= cols <= 65535:
        raise InvalidArgument("h and w must be within 0..65535")
    return min(rows, 1000), min(cols, 1000)


class _Attachment:
    """One client attached to one container: set up in the handler, run after the 101."""

    def __init__(
        self,
        container: Container,
        *,
        stdin: bool,
        stdout: bool,
        stderr: bool,
        logs: bool,
        stream: bool,
        detach_keys: bytes,
    ) -> None:
        self.container = container
        self.tty = bool(container.config.get("Tty"))
        self.stdin = stdin and bool(container.config.get("OpenStdin"))
        self.streams = {STDOUT: stdout, STDERR: stderr}
        self.logs = logs
        self.stream = stream
        self.matcher = DetachMatcher(detach_keys)
        self.use_socket = self.stdin or self.tty
        self.mark = attaching.mark(container)
        self.ran = self.mark.running
        self._conmon: socket.socket | None = None
        self._connected = threading.Event()
        self._started = threading.Event()  # set by a start in this process, just before runc start
        # Everything below must be in place before the 101 goes out: the start request can follow
        # straight after, and a short-lived container's output and --rm removal would race us.
        self._stack = contextlib.ExitStack()
        weakref.finalize(self, self._stack.close)  # if the 101 cannot be sent, run is never called
        self.cursor: attaching.LogCursor | None = None
        if not stream:
            return
        self._stack.enter_context(attaching.holding(container))
        if self.use_socket:
            self._stack.enter_context(attaching.observing(container, self._connect_before_start))
        else:
            self.cursor = attaching.LogCursor(container, from_start=logs)
            self._stack.callback(self.cursor.close)
            self._stack.enter_context(attaching.observing(container, lambda _paths: self._started.set()))

    def _connect_before_start(self, _paths: object) -> None:
        if self._conmon is None:
            self._conmon = attaching.connect(self.container)
            self._connected.set()

    def _send_item(self, client: socket.socket, stream_name: str, data: bytes) -> bool:
        stream = STDERR if stream_name == "stderr" else STDOUT
        if not self.streams[stream] or not data:
            return True
        return send(client, frame(stream, data, tty=self.tty))

    def run(self, client: socket.socket, leftover: bytes) -> None:
        try:
            if self.logs and (self.use_socket or not self.stream):
                for stream_name, data in attaching.replay(self.container):
                    if not self._send_item(client, stream_name, data):
                        return
            if not self.stream:
                return
            if self.use_socket:
                self._relay_socket(client, leftover)
            else:
                self._follow_log(client)
        finally:
            self._stack.close()
            if self._conmon is not None:
                if self.tty or self.matcher.detached:
                    # A terminal's input stays open when its client leaves, as in Docker.
                    _park(self._conmon)
                else:
                    self._conmon.close()  # conmon closes stdin: StdinOnce, as `docker run -i` asks
            if self.ran:
                with contextlib.suppress(Exception):
                    attaching.finish(self.container)

    # --- output from the log ----------------------------------------------------------------------

    def _follow_log(self, client: socket.socket) -> None:
        """Relay the log as it grows until the run ends.

        The run counts as started once the row says so; a start made by this process sets
        `_started` just before `runc start`, and from then on the row is looked at every turn (10 ms)
        instead of every 50 ms. The end is the exit file conmon writes after the last log line (a
        stat per turn), or the row (checked calmly) for a container that vanished or was removed.
        """
        assert self.cursor is not None
        poller = select.poll()
        poller.register(client, select.POLLIN)
        exit_file = attaching.exit_file(self.container)
        next_check = 0.0
        began = time.monotonic()
        while True:
            for stream_name, data in self.cursor.read():
                if not self._send_item(client, stream_name, data):
                    return
            now = time.monotonic()
            if not self.ran and (self._started.is_set() or now >= next_check):
                next_check = now + (0.05 if now - began < 5 else 0.25)
                if attaching.started_since(self.container, self.mark):
                    self.ran, began, next_check = True, now, now + 0.25
            elif self.ran and exit_file.exists():
                self._drain_after_exit(client)
                return
            elif self.ran and now >= next_check:
                next_check = now + 0.25
                if attaching.ended(self.container):
                    self._drain_after_exit(client)
                    return
            for _, mask in poller.poll(10 if now - began < 2 else POLL_MS * 4):
                if mask & HANGUP:
                    return
                if mask & select.POLLIN:
                    try:
                        data = client.recv(65536)  # no stdin attached: input is dropped
                    except OSError:
                        return
                    if not data:
                        poller.modify(client, 0)  # half-closed: watch for the hang-up only

    def _drain_after_exit(self, client: socket.socket) -> None:
        assert self.cursor is not None
        for stream_name, data in self.cursor.read():  # conmon writes the exit file after the log
            if not self._send_item(client, stream_name, data):
                return

    # --- stdin and terminal through conmon's attach socket ------------------------------------------

    def _relay_socket(self, client: socket.socket, leftover: bytes) -> None:
        pending = bytearray(self.matcher.feed(leftover)) if self.stdin else bytearray()
        client_eof = False
        if self.mark.running:
            self._try_connect()
        poller = select.poll()
        poller.register(client, select.POLLIN)
        next_check = 0.0
        while self._conmon is None:
            if self.matcher.detached:
                return
            now = time.monotonic()
            if now >= next_check:
                next_check = now + 0.05
                if attaching.started_since(self.container, self.mark):
                    self.ran = True
                    if not self._connected.wait(0.2):  # started by another process: connect late
                        self._try_connect()
                    if self._conmon is None:
                        return
                    break
            for _, mask in poller.poll(POLL_MS):
                if mask & HANGUP:
                    return
                if mask & select.POLLIN:
                    data = _recv(client)
                    if not data:
                        client_eof = True
                        poller.modify(client, 0)
                    elif self.stdin and len(pending) < STDIN_BUFFER:
                        pending += self.matcher.feed(data)
        self.ran = True
        conmon_sock = self._conmon
        assert conmon_sock is not None
        if pending and not _send_stdin(conmon_sock, bytes(pending)):
            return
        if client_eof:
            self._close_stdin(conmon_sock)
        poller = select.poll()
        poller.register(conmon_sock, select.POLLIN)
        poller.register(client, 0 if client_eof else select.POLLIN)
        while True:
            for fd, mask in poller.poll(1000):
                if fd == conmon_sock.fileno():
                    item = attaching.receive(conmon_sock)
                    if item is None:
                        return  # conmon closes attach clients when the container exits
                    name, data = item
                    if not self._send_item(client, name, data):
                        return
                    continue
                if mask & select.POLLIN:
                    data = _recv(client)
                    if not data:
                        poller.modify(client, 0)
                        self._close_stdin(conmon_sock)
                        continue
                    if not self.stdin:
                        continue
                    data = self.matcher.feed(data)
                    if data and not _send_stdin(conmon_sock, data):
                        return
                    if self.matcher.detached:
                        return
                elif mask & HANGUP:
                    return

    def _try_connect(self) -> None:
        if self._conmon is not None:
            return
        try:
            self._conmon = attaching.connect(self.container)
        except RuntimeFailure:
            self._conmon = None  # not running any more (or not yet): nothing to attach to

    def _close_stdin(self, conmon_sock: socket.socket) -> None:
        # conmon closes the container's stdin when an attach client ends its input; with a terminal
        # that would hang it up, and Docker leaves a terminal alone too.
        if self.stdin and not self.tty:
            with contextlib.suppress(OSError):
                conmon_sock.shutdown(socket.SHUT_WR)


def _recv(client: socket.socket) -> bytes:
    try:
        return client.recv(65536)
    except OSError:
        return b""


def _send_stdin(conmon_sock: socket.socket, data: bytes) -> bool:
    try:
        for start in range(0, len(data), STDIN_PACKET):
            conmon_sock.send(data[start : start + STDIN_PACKET])
        return True
    except OSError:
        return False


def _park(conmon_sock: socket.socket) -> None:
    """Keep a detached client's conmon connection open until the container exits.

    conmon closes the container's stdin when an attach connection ends, which would end a shell
    the user only detached from; a drained connection held open keeps it.
    """

    def drain() -> None:
        with conmon_sock:
            while attaching.receive(conmon_sock) is not None:
                pass

    threading.Thread(target=drain, name="berth-attach-parked", daemon=True).start()
