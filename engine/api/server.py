"""The Docker Engine API server: a unix socket, one thread per connection, HTTP/1.1 through h11.

A thread per connection keeps every handler a plain blocking function over the engine's services
(which use Django's ORM) and lets hijacked connections (attach, exec) own their socket after the
`101` answer; a slow or idle client ties up only its own thread. h11 does all HTTP parsing and
framing; this module moves bytes and maps errors. The socket itself (its path, mode and group, and who
may connect) is engine/api/apisocket.py.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
import traceback
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import h11

from engine import events
from engine.api import router
from engine.api.apisocket import GROUP_NAME, bind, peer_allowed, peer_credentials, socket_path
from engine.api.http import ApiError, BodyReader, Hijack, Request, Response, Stream, error_body
from engine.errors import DiskFull, EngineError, NotFound
from engine.services.disk import full_disk

log = logging.getLogger("berth.api")

HEADER_LIMIT = 64 * 1024  # larger request heads are refused with 431
DRAIN_LIMIT = 1024 * 1024  # unread request bodies up to this are skipped to keep the connection
SERVER_NAME = "Berth"


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def common_headers() -> list[tuple[str, str]]:
    return [
        ("Api-Version", router.API_VERSION),
        ("Docker-Experimental", "false"),
        ("Ostype", "linux"),
        ("Server", f"{SERVER_NAME} (linux)"),
    ]


class ClientGone(Exception):
    """The peer closed the connection or broke the protocol mid-request."""


class Connection:
    """One client connection: requests in order, until it closes or is hijacked."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=HEADER_LIMIT)
        self.pid, self.uid, self.gid = peer_credentials(sock)
        self.actor = f"api:{self.uid}"

    # --- reading -----------------------------------------------------------------------------

    def _next_event(self) -> Any:
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            try:
                data = self.sock.recv(256 * 1024)
            except OSError as exc:
                raise ClientGone(str(exc)) from exc
            self.conn.receive_data(data)

    def _pull_body(self) -> bytes | None:
        """The next piece of the current request's body, or None at its end."""
        if self.conn.their_state is not h11.SEND_BODY:
            return None
        if self.conn.client_is_waiting_for_100_continue and self.conn.our_state is h11.SEND_RESPONSE:
            self._send(h11.InformationalResponse(status_code=100, headers=[]))
        try:
            event = self._next_event()
        except h11.RemoteProtocolError as exc:
            raise ApiError(400, f"the request body is malformed: {exc}") from None
        if isinstance(event, h11.Data):
            return bytes(event.data)
        if isinstance(event, h11.EndOfMessage):
            return None
        raise ApiError(400, "the request body ended before its declared length")

    # --- writing -----------------------------------------------------------------------------

    def _send(self, event: Any) -> None:
        data = self.conn.send(event)
        if data:
            try:
                self.sock.sendall(data)
            except OSError as exc:
                raise ClientGone(str(exc)) from exc

    def _send_error(self, status: int, message: str) -> None:
        self._send_response(Response(status=status, body=error_body(message)), head=False)

    def _send_response(self, response: Response, *, head: bool) -> None:
        body = response.encoded()
        headers = [
            *common_headers(),
            *response.headers,
            ("Content-Length", str(len(body))),
        ]
        if response.status != 204 and response.status != 304:
            headers.append(("Content-Type", response.content_type))
        self._send(
            h11.Response(status_code=response.status, headers=headers, reason=_reason(response.status))
        )
        if body and not head and response.status not in (204, 304):
            self._send(h11.Data(data=body))
        self._send(h11.EndOfMessage())

    def _send_stream(self, stream: Stream, request: Request, *, head: bool) -> None:
        headers = [*common_headers(), *stream.headers, ("Content-Type", stream.content_type)]
        watcher = threading.Thread(target=self._watch_for_close, args=(request,), daemon=True)
        try:
            self._send(
                h11.Response(status_code=stream.status, headers=headers, reason=_reason(stream.status))
            )
            if not head:
                watcher.start()
                for chunk in stream.chunks:
                    if request.gone.is_set():
                        raise ClientGone("client closed the stream")
                    if chunk:
                        self._send(h11.Data(data=chunk))
            self._send(h11.EndOfMessage())
        finally:
            request.gone.set()  # stops the watcher too
            if stream.close is not None:
                stream.close()
            close_iterator = getattr(stream.chunks, "close", None)
            if close_iterator is not None:
                with contextlib.suppress(Exception):
                    close_iterator()

    def _watch_for_close(self, request: Request) -> None:
        """While a stream runs, notice the client hanging up even if no chunk is being written."""
        while not request.gone.is_set():
            try:
                ready, _, _ = select.select([self.sock], [], [], 0.25)
                if ready and not self.sock.recv(1, socket.MSG_PEEK):
                    request.gone.set()
                    return
            except (OSError, ValueError):
                request.gone.set()
                return

    def _hijack(self, hijack: Hijack, request: Request) -> None:
        # The body (exec start's JSON) must be read to its end before the protocol can switch.
        while self._pull_body() is not None:
            pass
        upgrade = "upgrade" in request.headers.get("connection", "").lower()
        if upgrade:
            headers = [
                *common_headers(),
                ("Content-Type", hijack.content_type),
                ("Connection", "Upgrade"),
                ("Upgrade", "tcp"),
            ]
            self._send(h11.InformationalResponse(status_code=101, headers=headers, reason=b"UPGRADED"))
            leftover, _closed = self.conn.trailing_data
        else:
            # Old clients without Upgrade: a 200 head, then the raw stream on the same connection.
            head = "HTTP/1.1 200 OK\r\n" + "".join(
                f"{k}: {v}\r\n" for k, v in [*common_headers(), ("Content-Type", hijack.content_type)]
            )
            self.sock.sendall(head.encode() + b"\r\n")
            leftover = b""
        hijack.run(self.sock, bytes(leftover))

    # --- the request cycle -------------------------------------------------------------------

    def serve(self) -> None:
        try:
            if not peer_allowed(self.pid, self.uid, self.gid):
                self._reject_peer()
                return
            while True:
                try:
                    event = self._next_event()
                except h11.RemoteProtocolError as exc:
                    if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                        self._send_error(exc.error_status_hint, f"bad request: {exc}")
                    return
                if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                    return
                if not isinstance(event, h11.Request):
                    return
                if sum(len(k) + len(v) + 4 for k, v in event.headers) + len(event.target) > HEADER_LIMIT:
                    self._send_error(431, f"the request head is larger than {HEADER_LIMIT} bytes")
                    return
                if self._handle(event) == "hijacked":
                    return
                if not self._finish_cycle():
                    return
        except ClientGone:
            return
        except Exception:  # noqa: BLE001 - a bug must not take the server down; it is logged
            log.error("API connection failed:\n%s", traceback.format_exc())
        finally:
            with contextlib.suppress(OSError):
                self.sock.close()
            _close_database_connection()

    def _reject_peer(self) -> None:
        event = self._next_event()
        if isinstance(event, h11.Request):
            self._send_error(403, f"uid {self.uid} may not use the Berth API: join the {GROUP_NAME!r} group")

    def _finish_cycle(self) -> bool:
        """Skip what is left of the request body, then get ready for the next request."""
        skipped = 0
        try:
            while self.conn.their_state is h11.SEND_BODY and skipped <= DRAIN_LIMIT:
                chunk = self._pull_body()
                if chunk is None:
                    break
                skipped += len(chunk)
        except ApiError:
            return False
        if self.conn.our_state is not h11.DONE or self.conn.their_state is not h11.DONE:
            return False
        try:
            self.conn.start_next_cycle()
        except h11.LocalProtocolError:
            return False
        return True

    def _handle(self, event: h11.Request) -> str:
        method = event.method.decode("ascii", "replace").upper()
        target = event.target.decode("latin-1")
        raw_path, _, raw_query = target.partition("?")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers}
        request = Request(
            method=method,
            path=unquote(raw_path),
            query=Request.parse_query(raw_query),
            headers=headers,
            body=BodyReader(self._pull_body),
            uid=self.uid,
            actor=self.actor,
        )
        head = method == "HEAD"
        try:
            request.version, request.path = router.split_version(request.path)
            handler, request.params = router.resolve(method, request.path)
            with events.acting_as(self.actor):
                result = handler(request)
                if isinstance(result, Hijack):
                    self._hijack(result, request)
                    return "hijacked"
                if isinstance(result, Stream):
                    self._send_stream(result, request, head=head)
                    return "ok"
        except ClientGone:
            raise
        except EngineError as exc:
            result = Response(status=_status_of(exc), body=error_body(_docker_message(exc)))
            if method not in ("GET", "HEAD") and result.status >= 400 and not isinstance(exc, DiskFull):
                _record_failure(request, str(exc), self.actor)
        except h11.LocalProtocolError:
            raise ClientGone("the response could not be framed") from None
        except Exception as exc:  # noqa: BLE001 - every failure becomes Docker's error shape
            # A full disk surfaces raw (ENOSPC, SQLite's "database or disk is full") from anywhere.
            full = full_disk(exc)
            if full is not None:
                result = Response(status=_status_of(full), body=error_body(_docker_message(full)))
            else:
                log.error("API %s %s failed:\n%s", method, request.path, traceback.format_exc())
                result = Response(status=500, body=error_body(f"internal error: {type(exc).__name__}: {exc}"))
        if result is None:
            result = Response(status=204)
        if not isinstance(result, Response):
            result = Response(body=result)
        if self.conn.our_state is not h11.SEND_RESPONSE:
            raise ClientGone("a response was already started")
        self._send_response(result, head=head)
        return "ok"


_OBJECT_TYPES = {
    "containers": "container",
    "images": "image",
    "build": "image",
    "volumes": "volume",
    "networks": "network",
    "exec": "exec",
    "auth": "registry",
}


def _record_failure(request: Request, message: str, actor: str) -> None:
    """A refused or failed change is an audit event too: who tried what on which object, and why."""
    segments = [part for part in request.path.split("/") if part]
    object_type = _OBJECT_TYPES.get(segments[0] if segments else "", "api")
    obj = request.params.get("id") or request.params.get("name") or ""
    if request.method == "DELETE":
        action = "delete"
    elif len(segments) > 1 and segments[-1] != obj:
        action = segments[-1]
    else:
        action = segments[0] if segments else "request"
    with contextlib.suppress(Exception):  # recording must not hide the original error
        events.record(
            object_type, action[:32], object_name=obj[:200], result="error", message=message, actor=actor
        )


def _docker_message(exc: EngineError) -> str:
    """Docker capitalises its not-found messages, and clients test for them (compose: 'No such image')."""
    message = str(exc)
    if isinstance(exc, NotFound) and message.startswith("no such "):
        return "N" + message[1:]
    return message


def _status_of(exc: EngineError) -> int:
    status = int(getattr(exc, "status", 500) or 500)
    return status if 300 <= status < 600 else 500


def _close_database_connection() -> None:
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        with contextlib.suppress(Exception):
            connection.close()


class Server:
    """Accepts connections on the socket and serves each in its own thread."""

    def __init__(self, path: Path | None = None) -> None:
        router.ensure_loaded()
        self.path = path or socket_path()
        self.listener = bind(self.path)
        self._stopping = threading.Event()

    def serve_forever(self) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    client, _ = self.listener.accept()
                except OSError:
                    if self._stopping.is_set():
                        return
                    raise
                client.setblocking(True)
                threading.Thread(target=Connection(client).serve, name="berth-api", daemon=True).start()
        finally:
            self.close()

    def close(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.listener.close()
        with contextlib.suppress(FileNotFoundError):
            if self.path.is_socket():
                self.path.unlink()

    def start_in_background(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="berth-api-accept", daemon=True)
        thread.start()
        return thread
