"""Attach to a container's stdio from a front end that is not the container's starter (the Docker API).

Two sources of output, as engine/cli/attach.py uses them:
- the log file conmon writes, read at the record level from a byte position (`LogCursor`): exact
  bytes, stdout and stderr apart, and nothing lost however early the output came, because the
  position is taken when the client attaches;
- conmon's attach socket (`connect`), needed for stdin and for terminals.
A request to attach usually arrives before the start request (`docker run`), so `observing` hooks
this process's starts (lifecycle.observing_start) and `started_since` notices starts made elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from engine import events, locks
from engine.errors import ContainerNotFound, EngineError, InvalidState
from engine.models import Container, ContainerState
from engine.runtime import conmon, logfile
from engine.services import bundle, containerinfo, lifecycle

READ_SIZE = 65536


@dataclass(frozen=True)
class Mark:
    """Where a container stood when a client attached."""

    started_at: datetime | None
    running: bool


def get(ref: str) -> Container:
    """The container, reconciled (ContainerNotFound for an unknown name)."""
    return containerinfo.get(ref)


def mark(container: Container) -> Mark:
    return Mark(started_at=container.started_at, running=container.state in lifecycle.ACTIVE)


def started_since(container: Container, since: Mark) -> bool:
    """True once the container runs, or ran, after `since` (a start by any process)."""
    fresh = Container.objects.filter(id=container.id).only("state", "started_at").first()
    if fresh is None:
        return True  # removed meanwhile: `ended` says so too, and the caller stops waiting
    if fresh.started_at != since.started_at:
        return True
    return fresh.state in lifecycle.ACTIVE


def exit_file(container: Container) -> Path:
    """Where conmon records the exit code of the container's current run."""
    return bundle.paths(container.id).exit_file


def ended(container: Container) -> bool:
    """True once the container's current run is over (its exit file exists, or it is gone)."""
    p = bundle.paths(container.id)
    if conmon.read_exit_code(p.exit_dir, container.id) is not None:
        return True
    fresh = Container.objects.filter(id=container.id).only("state", "pid", "conmon_pid").first()
    if fresh is None or fresh.state not in lifecycle.ACTIVE:
        return True
    # Neither the process nor conmon is left, and no exit file: it vanished (reconcile will say so).
    return not lifecycle._alive(fresh.pid) and not lifecycle._alive(fresh.conmon_pid)


def observing(container: Container, callback: Callable[[bundle.Paths], None]):  # type: ignore[no-untyped-def]
    """Context: `callback` runs before `runc start` of any start of the container in this process."""
    return lifecycle.observing_start(container.id, callback)


def holding(container: Container):  # type: ignore[no-untyped-def]
    """Context: while held, conmon's exit command leaves an --rm container to `finish`."""
    return locks.holding_shared("attached", container.id)


def finish(container: Container) -> None:
    """After an attached client is done: remove an --rm container that has exited."""
    if not container.host_config.get("AutoRemove"):
        return
    fresh = Container.objects.filter(id=container.id).first()
    if fresh is None:
        return
    with contextlib.suppress(ContainerNotFound):
        fresh = lifecycle.refresh(fresh)
        if fresh.state in (ContainerState.EXITED, ContainerState.DEAD):
            lifecycle.remove(fresh.id, force=True, volumes=True)


def connect(container: Container) -> socket.socket:
    """Connect to the container's conmon attach socket (SOCK_SEQPACKET; see runtime/conmon.py)."""
    return conmon.attach(bundle.paths(container.id).attach_socket)


def receive(sock: socket.socket) -> tuple[str, bytes] | None:
    """The next packet from a `connect` socket as ("stdout" or "stderr", bytes); None once it closes or fails."""
    try:
        packet = sock.recv(conmon.ATTACH_BUFFER)
    except OSError:
        return None
    if not packet:
        return None  # conmon closes attach clients when the container exits
    stream, data = conmon.split_packet(packet)
    return ("stderr" if stream == conmon.STREAM_STDERR else "stdout"), data


def resize_terminal(container: Container, rows: int, cols: int) -> None:
    """Set the size of the container's terminal without looking it up again (best effort: never raises)."""
    with contextlib.suppress(OSError, EngineError):
        conmon.resize(bundle.paths(container.id).ctl, min(rows, 1000), min(cols, 1000))


def socket_ready(container: Container) -> bool:
    return bundle.paths(container.id).attach_socket.exists()


def resize(ref: str, rows: int, cols: int) -> None:
    """Set the size of a running container's terminal (409 if it does not run)."""
    container = get(ref)
    if container.state not in (ContainerState.RUNNING, ContainerState.PAUSED):
        raise InvalidState(f"container {container.name} is not running")
    conmon.resize(bundle.paths(container.id).ctl, rows, cols)


def replay(container: Container) -> Iterator[tuple[str, bytes]]:
    """Everything in the log so far, as (stream, bytes) in the order written (rotated files first)."""
    for path in logfile.log_files(bundle.paths(container.id).log):
        try:
            with open(path, "rb") as fh:
                for raw in fh:
                    item = _record_bytes(raw)
                    if item is not None:
                        yield item
        except FileNotFoundError:
            continue


def _record_bytes(raw: bytes) -> tuple[str, bytes] | None:
    """One log record as the bytes the container wrote: a full (F) record ends with a newline."""
    if not raw.endswith(b"\n"):
        return None
    record = logfile.parse_record(raw)
    if record is None:
        return None
    return record.stream, record.data if record.partial else record.data + b"\n"


class LogCursor:
    """The container's log from the moment of creation on, record by record (exact bytes).

    Opened at the current end of the live log (or at its start once a missing log appears). A
    log replaced by rotation is read to its end before the new file is opened.
    """

    def __init__(self, container: Container, *, from_start: bool = False) -> None:
        self.path: Path = bundle.paths(container.id).log
        self._fh = None
        self._buffer = b""
        self._skip_partial = False
        # With from_start, the rotated files are read first, then the live one from its beginning.
        self._history = [f for f in logfile.log_files(self.path) if f != self.path] if from_start else []
        if from_start:
            with contextlib.suppress(FileNotFoundError):
                self._fh = open(self.path, "rb")  # noqa: SIM115 — held for the cursor's life
            return
        try:
            self._fh = open(self.path, "rb")  # noqa: SIM115 — held for the cursor's life
        except FileNotFoundError:
            return
        end = self._fh.seek(0, os.SEEK_END)
        if end:
            self._fh.seek(end - 1)
            # Attaching while a record is being written: start at the next record.
            self._skip_partial = self._fh.read(1) != b"\n"

    def read(self) -> list[tuple[str, bytes]]:
        """The records written since the last call (possibly none)."""
        out: list[tuple[str, bytes]] = []
        while self._history:
            with contextlib.suppress(FileNotFoundError), open(self._history.pop(0), "rb") as old:
                out += [item for item in map(_record_bytes, old) if item is not None]
        if self._fh is None:
            try:
                self._fh = open(self.path, "rb")  # noqa: SIM115
            except FileNotFoundError:
                return out
        self._drain(out)
        if self._replaced():
            self._drain(out)
            self._fh.close()
            self._buffer = b""
            self._skip_partial = False
            try:
                self._fh = open(self.path, "rb")  # noqa: SIM115
            except FileNotFoundError:
                self._fh = None
                return out
            self._drain(out)
        return out

    def _drain(self, out: list[tuple[str, bytes]]) -> None:
        assert self._fh is not None
        while True:
            chunk = self._fh.read(READ_SIZE)
            if not chunk:
                return
            self._buffer += chunk
            *lines, self._buffer = self._buffer.split(b"\n")
            for line in lines:
                if self._skip_partial:
                    self._skip_partial = False
                    continue
                item = _record_bytes(line + b"\n")
                if item is not None:
                    out.append(item)

    def _replaced(self) -> bool:
        assert self._fh is not None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        own = os.fstat(self._fh.fileno())
        return (st.st_dev, st.st_ino) != (own.st_dev, own.st_ino) or st.st_size < self._fh.tell()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def open_console(ref: str) -> tuple[Container, socket.socket]:
    """Attach to the terminal of a running container started with -t (the dashboard's Attach).

    Returns the container and a connected conmon socket (see `receive`); recorded as an "attach"
    event. Raises ContainerNotFound, InvalidState when it does not run or has no terminal.
    """
    container = get(ref)
    if container.state != ContainerState.RUNNING:
        raise InvalidState(f"container {container.name} is {container.state}; start it to attach")
    if not container.config.get("Tty"):
        raise InvalidState(
            f"container {container.name} has no terminal (run it with -t to attach); use its logs instead"
        )
    sock = connect(container)
    events.record("container", "attach", object_id=container.id, object_name=container.name)
    return container, sock


def close_console(container: Container, sock: socket.socket) -> None:
    """Detach: close the socket (the container keeps running) and record a "detach" event."""
    with contextlib.suppress(OSError):
        sock.close()
    with contextlib.suppress(Exception):
        events.record("container", "detach", object_id=container.id, object_name=container.name)
