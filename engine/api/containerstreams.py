"""Docker API: the container endpoints that stream (wait, logs, stats).

Each handler validates and resolves before it returns its Stream, so a bad parameter or an unknown
container is still a plain 4xx; after that the status line and headers go out at once and the body
follows as it is produced. Every generator ends when the client hangs up (`request.gone`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from engine.api import containerformat as fmt
from engine.api.containers import docker_not_found, resolve
from engine.api.http import Request, Stream
from engine.api.router import route
from engine.errors import ContainerNotFound, EngineError, InvalidArgument, RuntimeFailure
from engine.models import Container
from engine.services import containerinfo, lifecycle

WAIT_CONDITIONS = ("not-running", "next-exit", "removed")
POLL = 0.05  # how often a waiter looks at a container that is not running
MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"
BATCH = 64 * 1024
STATS_INTERVAL = 1.0
PREREAD_INTERVAL = 0.5  # non-streamed stats sample twice; the CLI gives up after 2 s


# -- wait -----------------------------------------------------------------------------------------


@route("POST", "/containers/{id}/wait")
def wait(request: Request) -> Stream:
    condition = request.arg("condition") or "not-running"
    if condition not in WAIT_CONDITIONS:
        raise InvalidArgument(f'invalid condition: "{condition}"')
    container = resolve(request.params["id"])

    def body() -> Iterator[bytes]:
        code = wait_for(container, condition, request)
        if code is not None:
            yield json.dumps({"StatusCode": code, "Error": None}).encode() + b"\n"

    return Stream(body())


def wait_for(container: Container, condition: str, request: Request) -> int | None:
    """Block until `condition` holds; the exit code, or None if the client went away first.

    not-running: now, if the container is not running. next-exit: the end of the next run, even if
    it has not started yet (`docker run` waits before it starts). removed: the row is gone.
    """
    baseline = container.started_at
    while not request.gone.is_set():
        row = Container.objects.filter(id=container.id).first()
        if row is None:
            return lifecycle.wait(container)  # removed: the code of its last `die`
        if row.state in lifecycle.ACTIVE:
            try:
                code = lifecycle.wait(row, timeout=0.5)
            except (RuntimeFailure, ContainerNotFound):
                continue  # still running (or just removed): look at the client again, then again
            if condition != "removed":
                return code
        elif condition == "not-running":
            return row.exit_code
        elif condition == "next-exit" and row.started_at is not None and row.started_at != baseline:
            return row.exit_code  # it started and ended between two looks
        request.gone.wait(POLL)
    return None


# -- logs -----------------------------------------------------------------------------------------


@route("GET", "/containers/{id}/logs")
def logs(request: Request) -> Stream:
    stdout, stderr = request.flag("stdout"), request.flag("stderr")
    if not stdout and not stderr:
        raise InvalidArgument("you must choose at least one stream: stdout=1 and/or stderr=1")
    since = fmt.parse_unix_timestamp(request.arg("since") or "0", "since")
    until = fmt.parse_unix_timestamp(request.arg("until") or "0", "until")
    follow = request.flag("follow")
    timestamps = request.flag("timestamps")
    query = containerinfo.LogQuery(
        follow=follow, tail=_tail(request.arg("tail")), since=since, until=until, stdout=stdout, stderr=stderr
    )
    ref = request.params["id"]
    container = resolve(ref)
    tty = bool(container.config.get("Tty"))
    with docker_not_found(ref):
        lines = containerinfo.logs(container.id, query, stop=request.gone)

    def body() -> Iterator[bytes]:
        batch = bytearray()
        try:
            for line in lines:
                data = line.data + b"\n"
                if timestamps:
                    data = fmt.rfc3339_nano(line.time).encode() + b" " + data
                if not tty:
                    data = fmt.frame(fmt.STDERR if line.stream == "stderr" else fmt.STDOUT, data)
                if follow:
                    yield data  # a follower wants each line as it comes
                    continue
                batch += data
                if len(batch) >= BATCH:
                    yield bytes(batch)
                    batch.clear()
            if batch:
                yield bytes(batch)
        finally:
            close = getattr(lines, "close", None)
            if close is not None:
                close()  # stops a follower at once when the client has gone

    multiplexed = not tty and request.version >= (1, 42)
    return Stream(body(), content_type=MULTIPLEXED if multiplexed else RAW)


def _tail(value: str | None) -> int | None:
    if value is None or value in ("", "all"):
        return None
    try:
        number = int(value)
    except ValueError:
        raise InvalidArgument(f'invalid value for "tail": {value!r} (use a number or "all")') from None
    return None if number < 0 else number


# -- stats ----------------------------------------------------------------------------------------


@route("GET", "/containers/{id}/stats")
def stats(request: Request) -> Stream:
    ref = request.params["id"]
    container = resolve(ref)
    stream = request.flag("stream", default=True)
    one_shot = request.flag("one-shot")
    if one_shot and stream:
        raise InvalidArgument("cannot have stream=true and one-shot=true")
    networked = (container.host_config.get("NetworkMode") or "bridge") not in ("host", "none")

    def sample(previous: dict[str, Any] | None) -> tuple[dict[str, Any], bool]:
        with docker_not_found(ref):
            s = containerinfo.stats(container.id)
        running = bool(s.cpu_ns or s.memory_usage or s.pids)
        return (
            fmt.stats_object(
                container_id=s.container_id,
                name=s.name,
                read=datetime.fromtimestamp(s.time, UTC) if running else None,
                cpu_ns=s.cpu_ns,
                system_ns=system_cpu_ns(),
                online_cpus=online_cpus(),
                memory_usage=s.memory_usage,
                memory_limit=s.memory_limit,
                pids=s.pids,
                block_read=s.block_read,
                block_write=s.block_write,
                networks={"eth0": (s.net_rx, s.net_tx)} if networked and running else None,
                previous=previous,
            ),
            running,
        )

    def body() -> Iterator[bytes]:
        first, running = sample(None)
        if not stream:
            if running and not one_shot and not request.gone.wait(PREREAD_INTERVAL):
                first, _ = sample(first)
            yield json.dumps(first).encode() + b"\n"
            return
        current = first
        while True:
            yield json.dumps(current).encode() + b"\n"
            if not running or request.gone.wait(STATS_INTERVAL):
                return
            try:
                current, running = sample(current)
            except EngineError:
                return  # removed meanwhile: the stream simply ends

    return Stream(body())


def system_cpu_ns() -> int:
    """The host's CPU time in nanoseconds (the `cpu` line of /proc/stat), as Docker's system_cpu_usage."""
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("cpu "):
                    ticks = sum(int(v) for v in line.split()[1:8])
                    return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        pass
    return 0


def online_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except OSError:
        return os.cpu_count() or 1
