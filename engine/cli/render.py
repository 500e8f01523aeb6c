"""Rendering for the CLI: Docker-like aligned tables, human sizes and ages, JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from engine.cli import thinformat
from engine.humanize import human_duration, human_size  # noqa: F401 — render.human_size is the CLI's name


def ago(when: datetime | None, *, now: datetime | None = None) -> str:
    if when is None:
        return "N/A"
    now = now or datetime.now(UTC)
    return human_duration((now - when).total_seconds()) + " ago"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, out: TextIO | None = None) -> None:
    """Print an aligned table with three spaces between columns, as Docker's tabwriter does."""
    (out or sys.stdout).write(thinformat.table(headers, rows))


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
