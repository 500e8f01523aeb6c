"""What every hijacked Docker API stream shares (attach and exec): the content type, Docker's stdcopy
framing, the detach keys and the client's hang-up.
"""

from __future__ import annotations

import select
import socket
import struct

from engine.errors import InvalidArgument

RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"
DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q
STDOUT, STDERR = 1, 2
HANGUP = select.POLLHUP | select.POLLERR | select.POLLNVAL


def content_type(*, tty: bool, version: tuple[int, int]) -> str:
    return MULTIPLEXED_STREAM if not tty and version >= (1, 42) else RAW_STREAM


def frame(stream: int, data: bytes, *, tty: bool) -> bytes:
    """One write to the client: raw with a terminal, else with Docker's stdcopy header."""
    if tty:
        return data
    return struct.pack(">BxxxI", stream, len(data)) + data


def parse_detach_keys(text: str | None) -> bytes:
    """Docker's detach key syntax ("ctrl-p,ctrl-q", "a,ctrl-@") as bytes; empty gives the default."""
    if not text:
        return DEFAULT_DETACH_KEYS
    keys = bytearray()
    for part in text.split(","):
        key = part.strip()
        if len(key) == 1:
            keys.append(ord(key))
            continue
        lower = key.lower()
        if lower.startswith("ctrl-") and len(key) == 6:
            char = lower[5]
            if "a" <= char <= "z":
                keys.append(ord(char) - ord("a") + 1)
                continue
            special = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}
            if char in special:
                keys.append(special[char])
                continue
        raise InvalidArgument(f"invalid detach keys ({text}) provided: {key!r} is not a key")
    return bytes(keys)


class DetachMatcher:
    """Watch a stdin byte stream for the detach sequence; bytes held while they might start it."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self._held = b""
        self.detached = False

    def feed(self, data: bytes) -> bytes:
        """The bytes to pass on; sets `detached` (and drops the sequence) when it is complete."""
        if not self.keys:
            return data
        out = bytearray()
        for byte in data:
            candidate = self._held + bytes([byte])
            if self.keys.startswith(candidate):
                self._held = candidate
                if candidate == self.keys:
                    self.detached = True
                    self._held = b""
                    return bytes(out)
            else:
                out += self._held
                self._held = b""
                if self.keys.startswith(bytes([byte])):
                    self._held = bytes([byte])
                    if self._held == self.keys:
                        self.detached = True
                        self._held = b""
                        return bytes(out)
                else:
                    out.append(byte)
        return bytes(out)


def client_hung_up(client: socket.socket) -> bool:
    """True once the client closed both directions (a half-close alone is not a hang-up)."""
    poller = select.poll()
    poller.register(client, 0)
    return any(mask & HANGUP for _, mask in poller.poll(0))


def send(client: socket.socket, data: bytes) -> bool:
    """Write to the client; False once it is gone."""
    try:
        client.sendall(data)
        return True
    except OSError:
        return False
