"""`berth stats --since WINDOW [NAME | --host]`: the recorded history instead of live figures.

The window is a duration (30m, 1h, 1d, 7d, 1h30m); the rows come at the resolution the window
allows (services/metrics picks it) and at most --points of them. `--format json` prints the series.
"""

from __future__ import annotations

import argparse
import re
from datetime import datetime, timedelta

from engine.cli import render
from engine.errors import InvalidArgument
from engine.services import containers, metrics

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_window(text: str) -> timedelta:
    """A duration such as 30m, 1h, 1d, 7d or 1h30m; one clear error otherwise."""
    value = text.strip().lower()
    parts = _PART.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise InvalidArgument(f"invalid window {text!r}: use a duration like 30m, 1h, 1d or 7d")
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise InvalidArgument(f"invalid window {text!r}: it must be longer than zero")
    if seconds > 90 * 86400:
        raise InvalidArgument(f"invalid window {text!r}: history is kept for 90 days")
    return timedelta(seconds=seconds)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", help="show the recorded history of this window (30m, 1h, 1d, 7d) instead")
    p.add_argument("--host", action="store_true", help="with --since: the host's history")
    p.add_argument("--points", type=int, default=60, help="with --since: at most this many rows (default 60)")


def cmd_history(args: argparse.Namespace) -> int:
    if not args.since:
        raise InvalidArgument("--host needs --since (the host has no live view here)")
    window = parse_window(args.since)
    refs = list(args.containers)
    if args.host == bool(refs) or len(refs) > 1:
        raise InvalidArgument("stats --since shows one container's history (or --host): name one")
    if args.points < 1:
        raise InvalidArgument("--points must be at least 1")
    container = None if args.host else containers.resolve(refs[0])
    series = metrics.history(container.id if container else None, window, max_points=args.points)
    if args.format == "json":
        data = series.to_dict()
        data.update(
            container_id=container.id if container else None, name=container.name if container else "host"
        )
        render.print_json(data)
        return 0
    fmt = "%H:%M:%S" if window <= timedelta(days=1) else "%Y-%m-%d %H:%M"
    times = [datetime.fromtimestamp(t).strftime(fmt) for t in series.times]
    if container is None:
        rows = [
            [
                times[i],
                _pct(series.cpu_percent[i]),
                f"{_size(series.memory_bytes[i])} / {_size(series.memory_total[i])}",
                f"{_size(series.disk_free_bytes[i])} / {_size(series.disk_total_bytes[i])}",
            ]
            for i in range(len(series))
        ]
        render.table(["TIME", "CPU %", "MEM USED / TOTAL", "DISK FREE / SIZE"], rows)
        return 0
    rows = [
        [
            times[i],
            _pct(series.cpu_percent[i]),
            _pct(series.cpu_max_percent[i]),
            f"{_size(series.memory_bytes[i])} / {_size(series.memory_limit[i])}",
            f"{_rate(series.net_rx_bps[i])} / {_rate(series.net_tx_bps[i])}",
            f"{_rate(series.blk_read_bps[i])} / {_rate(series.blk_write_bps[i])}",
        ]
        for i in range(len(series))
    ]
    render.table(
        ["TIME", "CPU %", "CPU MAX %", "MEM USAGE / LIMIT", "NET I/O (RX/TX)", "BLOCK I/O (R/W)"], rows
    )
    return 0


def _pct(value: float | None) -> str:
    return "--" if value is None else f"{value:.2f}%"


def _size(value: float | None) -> str:
    return "--" if value is None else render.human_size(value)


def _rate(value: float | None) -> str:
    return "--" if value is None else f"{render.human_size(value)}/s"
