"""Rendering for the CLI: Docker-like aligned tables, human sizes and ages, JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO


def human_size(size: float) -> str:
    """Docker's HumanSize: decimal units, three significant digits (4.26MB, 512B, 1.2GB)."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000.0
        i += 1
    return f"{size:.3g}{units[i]}"


def human_duration(seconds: float) -> str:
    """Docker's HumanDuration ("About a minute", "3 hours", "2 weeks")."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    # Go's int(h + 0.5) rounds halves up; Python's round() would round 2.5 hours down to 2.
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def ago(when: datetime | None, *, now: datetime | None = None) -> str:
    if when is None:
        return "N/A"
    now = now or datetime.now(UTC)
    return human_duration((now - when).total_seconds()) + " ago"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, out: TextIO | None = None) -> None:
    """Print an aligned table with three spaces between columns, as Docker's tabwriter does."""
    out = out or sys.stdout
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        line = "   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:-1]))
        line = (line + "   " if len(row) > 1 else "") + row[-1]
        out.write(line.rstrip() + "\n")


def print_json(data: Any, *, out: TextIO | None = None, indent: int | None = 4) -> None:
    out = out or sys.stdout
    out.write(json.dumps(data, indent=indent, default=str) + "\n")


def json_lines(items: Sequence[dict[str, Any]], *, out: TextIO | None = None) -> None:
    """`--format json` on list commands prints one JSON object per line, as Docker does."""
    out = out or sys.stdout
    for item in items:
        out.write(json.dumps(item, default=str) + "\n")


def iso(when: datetime | None) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if when else ""
