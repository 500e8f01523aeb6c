"""Foreground `run` and `start -a`: stream a container's output (and stdin, and the terminal).

Without -i/-t the output is followed from the log file conmon writes, so stdout and stderr stay
apart and nothing is lost. With -i or -t the CLI connects to conmon's attach socket before the
container starts, puts the user's terminal in raw mode and forwards window size changes.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import sys
import termios
import threading
import tty
from collections.abc import Iterator

from engine.models import Container
from engine.services import attach as attaching
from engine.services import bundle, containerinfo, lifecycle


def run_attached(container: Container, *, interactive: bool, tty: bool) -> int:
    """Start `container` (unless it runs already), relay its I/O until it exits, return its exit code.

    While attached, a shared lock tells conmon's exit command that this client removes an --rm
    container itself, after it has read all output and the exit code.
    """
    with attaching.holding(container):
        return _run_attached(container, interactive=interactive, tty=tty)


def _run_attached(container: Container, *, interactive: bool, tty: bool) -> int:
    if not interactive and not tty:
        return _follow_logs(container)
    holder: dict[str, socket.socket] = {}

    def connect(paths: bundle.Paths) -> None:
        holder["sock"] = attaching.connect(container)

    lifecycle.start(container.id, before_start=connect)
    sock = holder.get("sock")
    if sock is None:
        sock = attaching.connect(container)
    with sock, _raw_terminal(tty):
        if tty:
            _watch_window(container)
        relay(sock, stdin_fd=sys.stdin.fileno() if interactive else -1, close_stdin_at_eof=True)
    return lifecycle.wait(container)


def _follow_logs(container: Container) -> int:
    stop = threading.Event()
    lifecycle.start(container.id)
    query = containerinfo.LogQuery(follow=True)
    try:
        for line in containerinfo.logs(container.id, query, stop=stop):
            out = sys.stdout.buffer if line.stream == "stdout" else sys.stderr.buffer
            out.write(line.data + b"\n")
            out.flush()
    finally:
        stop.set()
    return lifecycle.wait(container)


@contextlib.contextmanager
def _raw_terminal(enabled: bool) -> Iterator[None]:
    if not enabled or not sys.stdin.isatty():
        yield
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _watch_window(container: Container) -> None:
    def resize(*_args: object) -> None:
        with contextlib.suppress(OSError):  # resizing is best effort
            size = os.get_terminal_size(sys.stdout.fileno())
            attaching.resize_terminal(container, size.lines, size.columns)

    if sys.stdout.isatty():
        resize()
        signal.signal(signal.SIGWINCH, resize)


def relay(
    sock: socket.socket, *, stdin_fd: int = -1, close_stdin_at_eof: bool = False, detach_keys: bytes = b""
) -> bool:
    """Copy the container's output to stdout/stderr, and keys from `stdin_fd` (-1: none) to it, until
    the output ends (return False) or the user types `detach_keys` (return True; empty: never).

    At the end of stdin, `close_stdin_at_eof` closes the container's stdin (`run -i`); otherwise only
    the keys stop (`attach` must not close the stdin of a container it leaves running). A key that
    cannot be sent is dropped: the container has gone, and its output's end follows.
    """
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
            stream, data = item
            target = sys.stderr.buffer if stream == "stderr" else sys.stdout.buffer
            target.write(data)
            target.flush()
        if stdin_fd >= 0 and stdin_fd in ready:
            data = os.read(stdin_fd, 4096)
            if not data:
                watched.remove(stdin_fd)
                stdin_fd = -1
                if close_stdin_at_eof:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_WR)
                continue
            data = pending + data
            if detach_keys and detach_keys in data:
                with contextlib.suppress(OSError):
                    sock.sendall(data[: data.index(detach_keys)])
                return True
            # Hold a trailing first key of the detach sequence: the next read may complete it.
            pending = data[-1:] if detach_keys and data.endswith(detach_keys[:1]) else b""
            with contextlib.suppress(OSError):
                sock.sendall(data[: len(data) - len(pending)])
