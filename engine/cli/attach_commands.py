"""CLI: `berth attach CONTAINER` — the terminal of a running container started with -t.

The dashboard's terminal tab offers the same as *Attach to main process*; both go through
services.attach.open_console (an "attach" event) and close_console (a "detach" event). Keys go to the
main process when it was run with -i; Ctrl-P Ctrl-Q (Docker's default) detaches and leaves it running.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import socket
import sys

from engine.cli.attach import _raw_terminal, _watch_window
from engine.services import attach as attaching
from engine.services import lifecycle

DETACH_KEYS = b"\x10\x11"  # Ctrl-P Ctrl-Q


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("attach", help="Attach to the terminal of a running container run with -t")
    p.add_argument("container")
    p.add_argument("--no-stdin", action="store_true", help="do not send keys to the container")
    p.set_defaults(handler=cmd_attach)


def cmd_attach(args: argparse.Namespace) -> int:
    container, sock = attaching.open_console(args.container)
    detached = False
    try:
        with sock, _raw_terminal(True):
            _watch_window(container)
            detached = _relay(sock, send_keys=not args.no_stdin and sys.stdin.isatty())
    finally:
        attaching.close_console(container, sock)
    return 0 if detached else lifecycle.wait(container)


def _relay(sock: socket.socket, *, send_keys: bool) -> bool:
    """Copy the terminal's output to stdout and keys to it; True when the user detached."""
    stdin_fd = sys.stdin.fileno() if send_keys else -1
    watched: list[socket.socket | int] = [sock] + ([stdin_fd] if stdin_fd >= 0 else [])
    pending = b""
    while True:
        try:
            ready, _, _ = select.select(watched, [], [])
        except InterruptedError:
            continue
        if sock in ready:
            item = attaching.receive(sock)
            if item is None:
                return False
            sys.stdout.buffer.write(item[1])
            sys.stdout.buffer.flush()
        if stdin_fd >= 0 and stdin_fd in ready:
            data = os.read(stdin_fd, 4096)
            if not data:
                watched.remove(stdin_fd)
                stdin_fd = -1
                continue
            data = pending + data
            if DETACH_KEYS in data:
                with contextlib.suppress(OSError):
                    sock.sendall(data[: data.index(DETACH_KEYS)])
                return True
            # Hold a trailing Ctrl-P: it may be the first key of the detach sequence.
            pending = data[-1:] if data.endswith(DETACH_KEYS[:1]) else b""
            with contextlib.suppress(OSError):
                sock.sendall(data[: len(data) - len(pending)])
