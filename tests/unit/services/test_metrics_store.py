"""The metrics store's rollups, retention and downsampling, fed directly with synthetic timestamps."""

from __future__ import annotations

import sqlite3
import time
from datetime import timedelta
from pathlib import Path

import pytest

from engine.errors import InvalidArgument
from engine.runtime import metricstore as ms
from engine.services.metrics import bucket_width, tier_for

T0 = 1_700_000_000.0 - (1_700_000_000 % 600)  # a 10-minute boundary, so buckets are easy to reason about
DAY = 86400


@pytest.fixture
def store(tmp_path: Path) -> sqlite3.Connection:
    conn = ms.connect(tmp_path / ms.FILE_NAME)
    conn.execute("PRAGMA synchronous=OFF")  # durability is not under test; speed is welcome
    yield conn
    conn.close()


def _sample(subject: str, t: float, cpu: float, mem: float = 1000.0) -> ms.Sample:
    return ms.Sample(subject=subject, t=t, cpu=cpu, mem=mem, mem_limit=4000.0, rx=1.0, tx=2.0, rd=3.0, wr=4.0)


def _feed(conn: sqlite3.Connection, subjects: list[str], start: float, end: float, step: float, cpu) -> None:  # type: ignore[no-untyped-def]
    """One sample per subject every `step` seconds; every simulated ten minutes are one transaction that
    ends with maintenance (the sampler maintains every round; a coarser pace keeps this test quick)."""
    t = start
    while t < end:
        with ms.Transaction(conn):
            batch_end = min(end, (t // 600 + 1) * 600)
            while t < batch_end:
                ms.add(conn, [_sample(s, t, cpu(s, t)) for s in subjects])
                t += step
            ms.maintain(conn, t)


def _count(conn: sqlite3.Connection, subject: str) -> int:
    sql = "SELECT count(*) FROM samples JOIN subjects ON subjects.id = samples.subject WHERE name = ?"
    return int(conn.execute(sql, (subject,)).fetchone()[0])


def test_a_simulated_week_for_50_containers_stays_under_its_bound_with_exact_aggregates(
    store: sqlite3.Connection,
) -> None:
    subjects = [f"{i:064x}" for i in range(50)]

    # CPU that varies inside every minute (10 s steps 0..50) and from subject to subject.
    def cpu(subject: str, t: float) -> float:
        return int(subject, 16) + (t % 60)

    end = T0 + 7 * DAY
    _feed(store, subjects, T0, end, 10, cpu)
    ms.maintain(store, end)
    rows = ms.count_rows(store)
    # The bound: 6 h of raw rows, 7 days of minutes, and the ten-minute rows (90 days' worth at most),
    # per subject, plus at most one round of slack per tier.
    assert rows[ms.RAW] <= 50 * (6 * 3600 // 10 + 6)
    assert rows[ms.MINUTE] <= 50 * (7 * 1440 + 1)
    assert rows[ms.TEN_MINUTES] <= 50 * (7 * 144)
    # Nothing older than the raw retention is left raw; the earliest minute is at most 7 days old.
    oldest_raw = store.execute("SELECT min(t) FROM samples WHERE tier = 0").fetchone()[0]
    assert oldest_raw >= end - 6 * 3600 - 60
    # A minute holds the average of its six samples (offsets 0..50 → 25) and their maximum (50).
    minute = ms.query(store, subjects[3], ms.MINUTE, end - 3600, end - 3540, width=None)
    assert len(minute) == 1
    assert minute[0].cpu == pytest.approx(3 + 25)
    assert minute[0].cpu_max == pytest.approx(3 + 50)
    # Ten minutes average ten minutes, weighted by their sample counts, and keep the peak.
    ten = ms.query(store, subjects[7], ms.TEN_MINUTES, T0 + DAY, T0 + DAY + 600, width=None)
    assert len(ten) == 1
    assert ten[0].cpu == pytest.approx(7 + 25)
    assert ten[0].cpu_max == pytest.approx(7 + 50)
    n = store.execute(
        "SELECT n FROM samples WHERE subject = ? AND tier = 600 AND t = ?",
        (ms.subject_id(store, subjects[7]), T0 + DAY),
    ).fetchone()[0]
    assert n == 60  # ten minutes of 10-second samples


def test_ten_minute_rows_go_after_90_days(store: sqlite3.Connection) -> None:
    # One sample every ten minutes is enough to make every tier; 100 days of them for one subject.
    _feed(store, ["a" * 64], T0, T0 + 100 * DAY, 600, lambda s, t: 1.0)
    ms.maintain(store, T0 + 100 * DAY)
    oldest = store.execute("SELECT min(t) FROM samples WHERE tier = 600").fetchone()[0]
    assert oldest >= T0 + 10 * DAY
    assert ms.count_rows(store)[ms.TEN_MINUTES] <= 90 * 144


def test_rows_not_yet_rolled_up_are_never_pruned(store: sqlite3.Connection) -> None:
    # Samples from a day ago that were never maintained (the sampler was down): the next round rolls
    # them up before raw retention deletes them.
    ms.add(store, [_sample("b" * 64, T0 + i * 10, 10.0) for i in range(12)])
    ms.maintain(store, T0 + DAY)
    minutes = ms.query(store, "b" * 64, ms.MINUTE, T0, T0 + 120, width=None)
    assert [p.cpu for p in minutes] == [10.0, 10.0]
    assert ms.count_rows(store).get(ms.RAW, 0) == 0


def test_forget_deletes_every_tier_and_keeps_a_late_sample_out(store: sqlite3.Connection) -> None:
    gone, kept = "c" * 64, "d" * 64
    _feed(store, [gone, kept], T0, T0 + 3600, 10, lambda s, t: 5.0)
    ms.forget(store, gone, T0 + 3600)
    assert _count(store, gone) == 0
    # The sampler read the container just before it was removed and writes after the removal.
    ms.add(store, [_sample(gone, T0 + 3600, 5.0), _sample(kept, T0 + 3600, 5.0)])
    assert _count(store, gone) == 0
    assert _count(store, kept) > 0


def test_query_downsamples_into_weighted_buckets(store: sqlite3.Connection) -> None:
    subject = "e" * 64
    _feed(store, [subject], T0, T0 + 3600, 10, lambda s, t: 100.0 if t % 20 else 0.0)
    width = bucket_width(3600, 10, 60)
    assert width == 60
    points = ms.query(store, subject, ms.RAW, T0, T0 + 3600, width=width)
    assert len(points) == 60
    assert all(p.cpu == pytest.approx(50.0) and p.cpu_max == 100.0 for p in points)
    assert [p.t for p in points[:2]] == [T0, T0 + 60]


def test_usage_ranks_containers_and_leaves_the_host_out(store: sqlite3.Connection) -> None:
    ms.add(
        store,
        [
            _sample(s, T0 + i * 10, c, mem=m)
            for i in range(6)
            for s, c, m in (("f" * 64, 10.0, 900.0), ("1" * 64, 80.0, 100.0), (ms.HOST, 99.0, 1e9))
        ],
    )
    by_cpu = ms.usage(store, ms.RAW, T0, T0 + 60, by="cpu", limit=10)
    assert [u.subject for u in by_cpu] == ["1" * 64, "f" * 64]
    by_memory = ms.usage(store, ms.RAW, T0, T0 + 60, by="memory", limit=1)
    assert [u.subject for u in by_memory] == ["f" * 64]


def test_the_tier_follows_how_far_back_the_window_reaches() -> None:
    assert tier_for(3600) == ms.RAW
    assert tier_for(6 * 3600) == ms.RAW
    assert tier_for(DAY) == ms.MINUTE
    assert tier_for(7 * DAY) == ms.MINUTE
    assert tier_for(30 * DAY) == ms.TEN_MINUTES


def test_bucket_width_keeps_points_under_the_cap() -> None:
    assert bucket_width(3600, 10, 600) is None  # 360 rows fit
    assert bucket_width(7 * DAY, 60, 600) == 60 * 17  # 10080 rows → 17 per point → 593 points
    with pytest.raises(InvalidArgument):
        bucket_width(60, 10, 0)


def test_above_for_needs_a_covered_window_and_every_sample_above(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from engine.services import metrics

    settings.BERTH_ROOT = tmp_path
    conn = ms.connect(tmp_path / ms.FILE_NAME)
    ms.set_meta(conn, "interval", 10.0)
    subject = "9" * 64
    now = time.time()
    # Three minutes at 90 % CPU and 900 of 1000 bytes of memory, up to now.
    ms.add(conn, [ms.Sample(subject, now - 180 + i * 10, 90.0, 900.0, 1000.0) for i in range(19)])
    assert metrics.above_for(subject, "cpu", 80, 2) is True
    assert metrics.above_for(subject, "memory", 80, 2) is True
    assert metrics.above_for(subject, "cpu", 95, 2) is False
    assert metrics.above_for(subject, "cpu", 80, 5) is None  # only three minutes are known
    assert metrics.above_for("0" * 64, "cpu", 80, 2) is None  # never sampled
    ms.add(conn, [ms.Sample(subject, now - 35, 10.0, 900.0, 1000.0)])  # one dip breaks the streak
    assert metrics.above_for(subject, "cpu", 80, 2) is False
    series = metrics.history(subject, timedelta(minutes=3), max_points=600)
    assert series.resolution == 10.0 and 18 <= len(series) <= 20
    assert series.to_dict()["memory_bytes"][0] == 900.0
    assert metrics.latest_host() is None
    conn.close()
