"""How the thin client reaches the engine: HTTP/1.1 over the API server's unix socket, or the
in-process CLI (`manage.py berth …`) when it cannot.

The HTTP client is minimal on purpose: `http.client` alone costs ~28 ms to import (email.parser,
ssl), as much as the whole thin command. It sends one request per connection (`Connection: close`)
and reads answers framed by Content-Length, chunked, or a hijacked (101) stream until the end.
"""

from __future__ import annotations

import _socket
import os
import sys

from engine.cli.thinformat import Fallback, dumps, loads, urlencode

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
API_PREFIX = "/v1.44"
STDERR = 2
MULTIPLEXED = "application/vnd.docker.multiplexed-stream"


def socket_path() -> str:
    """Where the server listens: `$BERTH_RUN/docker.sock`, as dashboard/settings.py derives BERTH_RUN."""
    return os.path.join(os.environ.get("BERTH_RUN", "/run/berth"), "docker.sock")


# --- HTTP over the unix socket -----------------------------------------------------------------


class Reply:
    """One HTTP answer: status, lower-case headers, and the body read as it is asked for."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self._buffer = b""
        self._eof = False
        line = self._readline()
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise OSError(f"not an HTTP answer: {line[:80]!r}")
        self.status = int(parts[1])
        self.headers: dict[str, str] = {}
        while True:
            line = self._readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self._body: bytes | None = None

    def _fill(self) -> bool:
        if self._eof:
            return False
        data = self.sock.recv(65536)
        if not data:
            self._eof = True
            return False
        self._buffer += data
        return True

    def _readline(self) -> bytes:
        while b"\n" not in self._buffer:
            if len(self._buffer) > 65536 or not self._fill():
                line, self._buffer = self._buffer, b""
                return line
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line + b"\n"

    def _read(self, size: int) -> bytes:
        while len(self._buffer) < size and self._fill():
            pass
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _some(self, limit: int) -> bytes:
        if not self._buffer:
            self._fill()
        data, self._buffer = self._buffer[:limit], self._buffer[limit:]
        return data

    def chunks(self) -> Iterator[bytes]:
        """The body's pieces (chunked, by length, or up to the end of the connection)."""
        if self._body is not None:
            yield self._body
            return
        if self.status in (204, 304):
            return
        if self.status != 101 and "chunked" in self.headers.get("transfer-encoding", "").lower():
            while True:
                size_line = self._readline()
                if not size_line:
                    return
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    return
                data = self._read(size)
                self._readline()
                if data:
                    yield data
                if len(data) < size:
                    return
        elif self.status != 101 and "content-length" in self.headers:
            remaining = int(self.headers["content-length"])
            while remaining > 0:
                data = self._some(min(remaining, 65536))
                if not data:
                    return
                remaining -= len(data)
                yield data
        else:
            while True:
                data = self._some(65536)
                if not data:
                    return
                yield data

    def read(self) -> bytes:
        if self._body is None:
            self._body = b"".join(self.chunks())
        return self._body

    def json(self) -> Any:
        return loads(self.read())

    def message(self) -> str:
        try:
            return str(loads(self.read()).get("message", ""))
        except (ValueError, AttributeError, StopIteration):
            return ""

    def close(self) -> None:
        self.sock.close()


class Client:
    def __init__(self, path: str) -> None:
        self.path = path
        self.reached = False  # until the server has been reached once, failing to connect means no server

    def connect(self) -> _socket.socket:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            if not self.reached:
                raise Fallback from None  # a stale socket file: nothing was done yet
            raise
        self.reached = True
        return sock

    def send(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None = None,
        body: Any = None,
        *,
        upgrade: bool = False,
    ) -> Reply:
        """Send one request on a new connection and read the answer's head."""
        target = API_PREFIX + path + ("?" + urlencode(query) if query else "")
        payload = b"" if body is None else dumps(body).encode()
        head = [f"{method} {target} HTTP/1.1", "Host: api.moby.localhost", "User-Agent: berth-thin"]
        if upgrade:
            head += ["Connection: Upgrade", "Upgrade: tcp"]
        else:
            head.append("Connection: close")
        if body is not None or method in ("POST", "PUT"):
            head += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
        sock = self.connect()
        try:
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
            return Reply(sock)
        except BaseException:
            sock.close()
            raise

    def call(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None) -> Reply:
        """Send a request and read its whole answer (kept for `reply.read()` / `reply.json()`)."""
        reply = self.send(method, path, query, body)
        try:
            reply.read()
        finally:
            reply.close()
        return reply

    def get_json(self, path: str, query: dict[str, Any] | None = None) -> Any:
        """GET a JSON answer; any error hands the command to the in-process CLI (it is read-only)."""
        reply = self.call("GET", path, query)
        if reply.status != 200:
            raise Fallback
        return reply.json()


def frames(chunks: Iterator[bytes]) -> Iterator[tuple[int, bytes]]:
    """Split Docker's multiplexed stream into (stream, payload) pairs (1 stdout, 2 stderr)."""
    buffer = b""
    for chunk in chunks:
        buffer += chunk
        while len(buffer) >= 8:
            size = int.from_bytes(buffer[4:8], "big")
            if len(buffer) < 8 + size:
                break
            yield buffer[0], buffer[8 : 8 + size]
            buffer = buffer[8 + size :]


def relay(reply: Reply, *, multiplexed: bool, timestamps: bool = False) -> None:
    out, err = sys.stdout.buffer, sys.stderr.buffer
    if not multiplexed:
        for chunk in reply.chunks():
            out.write(chunk)
            out.flush()
        return
    for stream, data in frames(reply.chunks()):
        if timestamps:
            data = _micro_timestamp(data)
        target = err if stream == STDERR else out
        target.write(data)
        target.flush()


def _micro_timestamp(data: bytes) -> bytes:
    """The in-process CLI prints microseconds (…:08.123456Z); Docker's API gives nanoseconds."""
    stamp, sep, rest = data.partition(b" ")
    if not sep or not stamp.endswith(b"Z"):
        return data
    whole, dot, fraction = stamp[:-1].partition(b".")
    return whole + b"." + (fraction + b"000000")[:6] + b"Z " + rest if dot else data


# --- the in-process CLI ------------------------------------------------------------------------


def in_process_argv(argv: Sequence[str]) -> list[str]:
    return [sys.executable, os.path.join(REPO, "manage.py"), "berth", *argv]


def in_process(argv: Sequence[str]) -> int:
    """Run one command in-process in a child (used for a single failed container of start/stop/rm)."""
    import subprocess

    return subprocess.run(in_process_argv(argv), check=False).returncode


def fall_back(argv: Sequence[str]) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    args = in_process_argv(argv)
    os.execv(args[0], args)
