"""What a Docker API handler receives and returns.

Handlers are plain functions run in the connection's own thread: they call engine services and
return one of the responses below. The server turns them into HTTP with h11; nothing here parses
HTTP.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from engine.errors import EngineError, InvalidArgument

JSON_TYPE = "application/json"


class ApiError(EngineError):
    """An error with an explicit Docker status (for answers the engine's classes do not cover)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class BodyReader:
    """The request body as a file: `read(n)` pulls it off the socket as the handler asks for it."""

    def __init__(self, pull: Callable[[], bytes | None]) -> None:
        self._pull = pull
        self._buffer = bytearray()
        self._done = False
        self.consumed = 0

    def read(self, size: int = -1) -> bytes:
        while not self._done and (size < 0 or len(self._buffer) < size):
            chunk = self._pull()
            if chunk is None:
                self._done = True
                break
            self._buffer += chunk
        if size < 0 or size >= len(self._buffer):
            data = bytes(self._buffer)
            self._buffer.clear()
        else:
            data = bytes(self._buffer[:size])
            del self._buffer[:size]
        self.consumed += len(data)
        return data

    def __iter__(self) -> Iterator[bytes]:
        while True:
            chunk = self.read(64 * 1024)
            if not chunk:
                return
            yield chunk


@dataclass
class Request:
    method: str
    path: str  # without the /vX.Y prefix
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: BodyReader
    params: dict[str, str] = field(default_factory=dict)  # from the route pattern
    version: tuple[int, int] = (1, 44)
    uid: int = -1
    actor: str = "api:unknown"
    gone: threading.Event = field(default_factory=threading.Event)  # the client hung up

    @classmethod
    def parse_query(cls, raw: str) -> dict[str, list[str]]:
        return parse_qs(raw, keep_blank_values=True)

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.arg(name)
        if value is None:
            return default
        return value.lower() not in ("", "0", "false", "no")

    def int_arg(self, name: str, default: int | None = None) -> int | None:
        value = self.arg(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise InvalidArgument(f"query parameter {name!r} must be an integer, not {value!r}") from None

    def json_arg(self, name: str) -> Any:
        """A JSON-encoded query parameter such as `filters` (absent or empty gives None)."""
        value = self.arg(name)
        if not value:
            return None
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise InvalidArgument(f"query parameter {name!r} is not valid JSON: {exc}") from None

    def filters(self, allowed: Collection[str] | None = None) -> dict[str, list[str]]:
        """Docker's `filters` parameter in either of its shapes: {k: [v]} or {k: {v: true}}.

        With `allowed`, a key outside it is a 400 naming the key, as moby answers.
        """
        raw = self.json_arg("filters")
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise InvalidArgument("filters must be a JSON object")
        result: dict[str, list[str]] = {}
        for key, value in raw.items():
            if isinstance(value, dict):
                result[str(key)] = [str(v) for v, on in value.items() if on]
            elif isinstance(value, list):
                result[str(key)] = [str(v) for v in value]
            elif isinstance(value, str):
                result[str(key)] = [value]
            else:
                raise InvalidArgument(f"filter {key!r} must be a list of strings")
        for key in result:
            if allowed is not None and key not in allowed:
                raise InvalidArgument(f"invalid filter '{key}'")
        return result

    def json(self, *, limit: int = 4 * 1024 * 1024, required: bool = True) -> Any:
        """The body as JSON (an object unless the handler says otherwise)."""
        data = self.body.read(limit + 1)
        if len(data) > limit:
            raise ApiError(413, f"request body is larger than {limit} bytes")
        if not data.strip():
            if required:
                raise InvalidArgument("a JSON body is required")
            return {}
        try:
            return json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidArgument(f"the request body is not valid JSON: {exc}") from None

    def json_object(self, *, required: bool = True) -> dict[str, Any]:
        value = self.json(required=required)
        if not isinstance(value, dict):
            raise InvalidArgument("the request body must be a JSON object")
        return value


@dataclass
class Response:
    """A complete answer: JSON (the default), bytes, or nothing."""

    status: int = 200
    body: Any = None
    content_type: str = JSON_TYPE
    headers: list[tuple[str, str]] = field(default_factory=list)

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if self.content_type == JSON_TYPE:
            return json.dumps(self.body).encode() + b"\n"
        return str(self.body).encode()


@dataclass
class Stream:
    """An answer sent as it is produced (chunked): progress lines, logs, stats, events, tar files.

    The status line and headers go out before the first chunk is asked for, which `/wait` relies on.
    `close` is called when the client goes away or the stream ends.
    """

    chunks: Iterable[bytes]
    status: int = 200
    content_type: str = JSON_TYPE
    headers: list[tuple[str, str]] = field(default_factory=list)
    close: Callable[[], None] | None = None


@dataclass
class Hijack:
    """Take over the connection after `101 UPGRADED` (attach, exec start): `run(sock)` owns it.

    `run` gets the raw, blocking socket and any bytes the client sent after its request; the server
    closes the socket when `run` returns.
    """

    run: Callable[[socket.socket, bytes], None]
    content_type: str = "application/vnd.docker.raw-stream"


def json_lines(items: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    for item in items:
        yield json.dumps(item).encode() + b"\r\n"


def no_content() -> Response:
    return Response(status=204)


def not_modified() -> Response:
    return Response(status=304)


def error_body(message: str) -> dict[str, str]:
    return {"message": message}
