"""Metrics history end to end: the sampler records a busy container, `stats --since` shows it, `rm`
deletes its history, and the sampler leaves once nothing runs (no server is up in these tests)."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from tests.polling import wait_until

pytestmark = pytest.mark.root


def _samplers(run_dir: Path) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if b"engine.runtime.sampler" in cmdline and str(run_dir).encode() in cmdline:
            found.append(int(entry))
    return found


def _rows_of(root: Path, container_id: str) -> int:
    conn = sqlite3.connect(root / "metrics.sqlite3")
    try:
        sql = "SELECT count(*) FROM samples JOIN subjects ON subjects.id = samples.subject WHERE name = ?"
        return int(conn.execute(sql, (container_id,)).fetchone()[0])
    finally:
        conn.close()


def test_a_busy_container_shows_cpu_in_its_history_until_it_is_removed(berth_cli) -> None:  # type: ignore[no-untyped-def]
    berth_cli.env["BERTH_METRICS_INTERVAL"] = "0.5"
    cid = berth_cli.ok("run", "-d", "--name", "burner", "busybox", "sh", "-c", "while :; do :; done").strip()
    assert len(_samplers(berth_cli.run_dir)) == 1  # started with the container, one per engine

    def history() -> dict:  # type: ignore[type-arg]
        return json.loads(berth_cli.ok("stats", "--since", "1m", "--format", "json", "burner"))

    # A shell spinning in a loop keeps most of a core busy; "non-zero" with margin for a loaded host.
    data = wait_until(
        lambda: (h := history()) and any((c or 0) > 5 for c in h["cpu_percent"]) and h,
        timeout=60,
        interval=0.5,
        what="CPU in the recorded history",
    )
    # A minute of 0.5 s samples in at most 60 rows (the CLI's default): points of one second.
    assert data["container_id"] == cid and data["resolution"] == 1.0
    assert all(m and m > 0 for m in data["memory_bytes"])
    table = berth_cli.ok("stats", "--since", "1m", "burner")
    assert table.splitlines()[0].split()[:3] == ["TIME", "CPU", "%"]
    assert len(table.splitlines()) >= 2
    host = json.loads(berth_cli.ok("stats", "--since", "1m", "--host", "--format", "json"))
    assert host["times"] and all(d and d > 0 for d in host["disk_total_bytes"])

    berth_cli.ok("rm", "-f", "burner")
    # The history goes with the container, in every tier.
    assert _rows_of(berth_cli.root, cid) == 0
    # Nothing runs and no server is up: the sampler leaves by itself, within a couple of seconds.
    wait_until(lambda: not _samplers(berth_cli.run_dir), timeout=5, what="the sampler to exit")


def test_stats_since_refuses_a_bad_window_with_one_line(berth_cli) -> None:  # type: ignore[no-untyped-def]
    assert "invalid window" in berth_cli.fail("stats", "--since", "yesterday", "x")
    assert "one container" in berth_cli.fail("stats", "--since", "1h")
