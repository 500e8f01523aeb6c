"""Metrics history: the sampler's records of CPU, memory, network and block I/O, per container and host.

The sampler (runtime/sampler) is a detached process per engine that writes `$BERTH_ROOT/metrics.sqlite3`
(runtime/metricstore) every BERTH_METRICS_INTERVAL seconds (default 10) while a container runs or a
server is up; `ensure_sampler` starts it. Reading picks the resolution from how far back a window
reaches (raw samples for 6 hours, 1-minute rollups for 7 days, 10-minute rollups for 90 days) and
averages rows into at most `max_points` points. Container CPU is in percent of one core, as in
`docker stats` (200 % is two cores busy); the host's CPU is in percent of the whole machine.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings

from engine import conf
from engine.errors import EngineError, InvalidArgument
from engine.models import Container
from engine.runtime import metricstore, sampler

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL = 10.0


@dataclass
class Series:
    """A container's (or the host's) history: parallel lists, one entry per point of `times` (unix seconds).

    `resolution` is the seconds one point covers. Memory limits fall back to the host's memory for
    unlimited containers, as `docker stats` shows them. The host series also fills memory_total and
    the disk lists, and has no network or block I/O (None entries).
    """

    resolution: float
    times: list[float] = field(default_factory=list)
    cpu_percent: list[float | None] = field(default_factory=list)
    cpu_max_percent: list[float | None] = field(default_factory=list)
    memory_bytes: list[float | None] = field(default_factory=list)
    memory_max_bytes: list[float | None] = field(default_factory=list)
    memory_limit: list[float | None] = field(default_factory=list)
    net_rx_bps: list[float | None] = field(default_factory=list)
    net_tx_bps: list[float | None] = field(default_factory=list)
    blk_read_bps: list[float | None] = field(default_factory=list)
    blk_write_bps: list[float | None] = field(default_factory=list)
    memory_total: list[float | None] = field(default_factory=list)
    disk_free_bytes: list[float | None] = field(default_factory=list)
    disk_total_bytes: list[float | None] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __len__(self) -> int:
        return len(self.times)


@dataclass(frozen=True)
class TopRow:
    container_id: str
    name: str
    cpu_avg: float
    cpu_max: float
    memory_avg: float
    memory_max: float


@dataclass(frozen=True)
class HostSample:
    time: float
    cpu_percent: float | None
    memory_bytes: float | None
    memory_total: float | None
    disk_free_bytes: float | None
    disk_total_bytes: float | None


def interval() -> float:
    """Seconds between samples: BERTH_METRICS_INTERVAL (setting or environment), default 10."""
    value = getattr(settings, "BERTH_METRICS_INTERVAL", None) or os.environ.get("BERTH_METRICS_INTERVAL")
    try:
        seconds = float(value) if value else DEFAULT_INTERVAL
    except ValueError:
        seconds = DEFAULT_INTERVAL
    return seconds if seconds > 0 else DEFAULT_INTERVAL


def store_path() -> Path:
    return conf.root() / metricstore.FILE_NAME


def ensure_sampler() -> None:
    """Start this engine's sampler unless it runs. A failure is logged, not raised: the container runs."""
    from engine.services.bundle import ADOPTION_LOCK  # bundle calls us: imported here, not at the top

    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
    env.update(BERTH_ROOT=str(conf.root()), BERTH_RUN=str(conf.run_dir()))  # marks whose sampler it is
    try:
        sampler.ensure_running(conf.root(), conf.run_dir(), interval=interval(), env=env, lock=ADOPTION_LOCK)
    except (EngineError, OSError) as exc:
        logger.warning("metrics history is not recorded: %s", exc)


def tier_for(age: float) -> int:
    """The finest tier that still holds data `age` seconds old."""
    if age <= metricstore.RETENTION[metricstore.RAW]:
        return metricstore.RAW
    if age <= metricstore.RETENTION[metricstore.MINUTE]:
        return metricstore.MINUTE
    return metricstore.TEN_MINUTES


def bucket_width(window: float, resolution: float, max_points: int) -> float | None:
    """Seconds per point so that `window` fits in `max_points`, a multiple of `resolution`; None: as stored."""
    if max_points < 1:
        raise InvalidArgument("max_points must be at least 1")
    rows = window / resolution
    if rows <= max_points:
        return None
    return resolution * math.ceil(rows / max_points)


def history(
    container_id: str | None, since: timedelta, until: datetime | None = None, max_points: int = 600
) -> Series:
    """The history of a container (None: the host) from `until - since` (until defaults to now)."""
    if since.total_seconds() <= 0:
        raise InvalidArgument("the window must be longer than zero")
    now = time.time()
    end = until.timestamp() if until is not None else now
    start = end - since.total_seconds()
    tier = tier_for(now - start)
    with _store() as conn:
        if conn is None:
            return Series(resolution=interval() if tier == metricstore.RAW else float(tier))
        resolution = (
            (metricstore.get_meta(conn, "interval") or interval()) if tier == metricstore.RAW else tier
        )
        width = bucket_width(end - start, resolution, max_points)
        subject = container_id or metricstore.HOST
        points = metricstore.query(conn, subject, tier, start, end, width=width)
    series = Series(resolution=float(width or resolution))
    host = container_id is None
    for p in points:
        series.times.append(p.t)
        series.cpu_percent.append(p.cpu)
        series.cpu_max_percent.append(p.cpu_max)
        series.memory_bytes.append(p.mem)
        series.memory_max_bytes.append(p.mem_max)
        series.memory_limit.append(p.mem_limit)
        series.net_rx_bps.append(p.rx)
        series.net_tx_bps.append(p.tx)
        series.blk_read_bps.append(p.rd)
        series.blk_write_bps.append(p.wr)
        series.memory_total.append(p.mem_limit if host else None)
        series.disk_free_bytes.append(p.disk_free)
        series.disk_total_bytes.append(p.disk_total)
    return series


def top(since: timedelta, by: str = "cpu", limit: int = 10) -> list[TopRow]:
    """The containers with the highest average CPU ("cpu") or memory ("memory") over the last `since`."""
    if by not in ("cpu", "memory"):
        raise InvalidArgument(f"cannot rank by {by!r}: use cpu or memory")
    now = time.time()
    start = now - since.total_seconds()
    with _store() as conn:
        if conn is None:
            return []
        rows = metricstore.usage(conn, tier_for(now - start), start, now + 1, by=by, limit=limit)
    names = dict(Container.objects.filter(id__in=[r.subject for r in rows]).values_list("id", "name"))
    return [
        TopRow(r.subject, names.get(r.subject, r.subject[:12]), r.cpu_avg, r.cpu_max, r.mem_avg, r.mem_max)
        for r in rows
    ]


def above_for(container_id: str | None, metric: str, percent: float, minutes: float) -> bool | None:
    """True when every sample of the last `minutes` is above `percent` (memory: of the limit).

    None when the history does not cover the window yet (the sampler started less than `minutes`
    ago, or its last sample is stale).
    """
    if metric not in ("cpu", "memory"):
        raise InvalidArgument(f"unknown metric {metric!r}: use cpu or memory")
    now = time.time()
    window = minutes * 60
    tier = tier_for(window)
    with _store() as conn:
        if conn is None:
            return None
        step = (metricstore.get_meta(conn, "interval") or interval()) if tier == metricstore.RAW else tier
        points = metricstore.query(
            conn, container_id or metricstore.HOST, tier, now - window - step, now + 1, width=None
        )
    if not points or points[0].t > now - window + step or points[-1].t < now - max(3 * step, 2 * tier):
        return None
    inside = [p for p in points if p.t >= now - window] or points[-1:]
    for p in inside:
        if metric == "cpu":
            value = p.cpu
        else:
            value = None if p.mem is None or not p.mem_limit else p.mem / p.mem_limit * 100
        if value is None or value <= percent:
            return False
    return True


def latest_host() -> HostSample | None:
    """The host's newest sample, or None when the sampler has recorded none."""
    with _store() as conn:
        point = None if conn is None else metricstore.latest(conn, metricstore.HOST)
    if point is None:
        return None
    return HostSample(point.t, point.cpu, point.mem, point.mem_limit, point.disk_free, point.disk_total)


def forget(container_id: str) -> None:
    """Delete a removed container's history. Logged, not raised: removal must not fail on metrics."""
    try:
        with _store() as conn:
            if conn is not None:
                metricstore.forget(conn, container_id, time.time())
    except sqlite3.Error as exc:
        logger.warning("metrics of %s not deleted: %s", container_id[:12], exc)


_local = threading.local()  # one open connection per thread: the monitor asks about many containers a round


@contextmanager
def _store() -> Iterator[sqlite3.Connection | None]:
    """The store, or None when no sampler has written one yet (reading never creates it).

    The connection is kept per thread and per file (a new BERTH_ROOT or a re-created file reopens).
    """
    path = store_path()
    try:
        key = (str(path), os.stat(path).st_ino)
    except FileNotFoundError:
        yield None
        return
    cached = getattr(_local, "store", None)
    if cached is None or cached[0] != key:
        if cached is not None:
            cached[1].close()
            _local.store = None
        try:
            _local.store = (key, metricstore.connect(path))
        except sqlite3.Error as exc:
            raise EngineError(f"cannot read the metrics history {path}: {exc}") from exc
    yield _local.store[1]
