"""The metrics store: one SQLite file per engine ($BERTH_ROOT/metrics.sqlite3), bounded by rollups.

The sampler (runtime/sampler) is its one regular writer: it adds raw samples every interval and calls
`maintain`, which rolls complete minutes of raw samples into 1-minute rows, complete ten minutes of
those into 10-minute rows, and prunes each tier past its retention (never a row not yet rolled up).
Every row keeps `n`, the number of raw samples behind it, so averages of averages stay exact.
Readers (services/metrics) query a tier and let SQLite bucket rows into at most N points.
Subjects (container ids, "host") are stored once and referred to by a small integer, which keeps rows
about 75 bytes. `forget` deletes a container's rows and marks its subject forgotten, so a sample taken
just before the container was removed is not written after it. Imports no Django: the sampler uses it.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

RAW, MINUTE, TEN_MINUTES = 0, 60, 600
RETENTION = {RAW: 6 * 3600, MINUTE: 7 * 86400, TEN_MINUTES: 90 * 86400}
HOST = "host"  # the host's subject; container subjects are 64-hex ids, so never equal to it
TOMBSTONE_TTL = 86400  # seconds a forgotten subject keeps the sampler from writing it again
FILE_NAME = "metrics.sqlite3"

# Averaged columns (weighted by n) and the columns kept as the maximum of the bucket.
AVERAGED = ("cpu", "mem", "mem_limit", "rx", "tx", "rd", "wr", "disk_free", "disk_total")
MAXED = ("cpu_max", "mem_max")
COLUMNS = AVERAGED + MAXED

_SCHEMA = """
CREATE TABLE IF NOT EXISTS subjects (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, forgotten REAL
);
CREATE TABLE IF NOT EXISTS samples (
    subject INTEGER NOT NULL, tier INTEGER NOT NULL, t REAL NOT NULL, n INTEGER NOT NULL,
    cpu REAL, mem REAL, mem_limit REAL, rx REAL, tx REAL, rd REAL, wr REAL,
    disk_free REAL, disk_total REAL, cpu_max REAL, mem_max REAL,
    PRIMARY KEY (subject, tier, t)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS samples_by_time ON samples (tier, t);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value REAL NOT NULL) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class Sample:
    """One raw sample: rates are per second, CPU in percent of one core (host: of the whole machine)."""

    subject: str
    t: float
    cpu: float | None
    mem: float | None
    mem_limit: float | None
    rx: float | None = None
    tx: float | None = None
    rd: float | None = None
    wr: float | None = None
    disk_free: float | None = None
    disk_total: float | None = None


@dataclass(frozen=True)
class Point:
    """One bucket of a queried series: averages, maxima and the bucket's start time."""

    t: float
    cpu: float | None
    mem: float | None
    mem_limit: float | None
    rx: float | None
    tx: float | None
    rd: float | None
    wr: float | None
    disk_free: float | None
    disk_total: float | None
    cpu_max: float | None
    mem_max: float | None


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the store in WAL mode; autocommit, transactions are explicit."""
    conn = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # a crash may lose the last samples, never corrupt
    conn.executescript(_SCHEMA)
    return conn


def add(conn: sqlite3.Connection, samples: Iterable[Sample]) -> None:
    """Write raw samples (one transaction), skipping subjects that were forgotten meanwhile."""
    with Transaction(conn):
        # One read of the (small: existing containers plus a day of removed ones) subjects table.
        known = {
            name: (number, gone)
            for number, name, gone in conn.execute("SELECT id, name, forgotten FROM subjects")
        }
        rows = []
        for s in samples:
            number, gone = known.get(s.subject) or (subject_id(conn, s.subject), None)
            if gone is None:
                rows.append(
                    (
                        number,
                        s.t,
                        s.cpu,
                        s.mem,
                        s.mem_limit,
                        s.rx,
                        s.tx,
                        s.rd,
                        s.wr,
                        s.disk_free,
                        s.disk_total,
                    )
                )
        conn.executemany(
            "INSERT OR REPLACE INTO samples (subject, tier, t, n, cpu, mem, mem_limit, rx, tx, rd, wr,"
            " disk_free, disk_total, cpu_max, mem_max)"
            " VALUES (?1, 0, ?2, 1, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?3, ?4)",
            rows,
        )


def subject_id(conn: sqlite3.Connection, name: str) -> int:
    """The subject's number, creating it on first use."""
    number = _find(conn, name)
    if number is not None:
        return number
    return int(conn.execute("INSERT INTO subjects (name) VALUES (?)", (name,)).lastrowid or 0)


def _find(conn: sqlite3.Connection, name: str) -> int | None:
    row = conn.execute("SELECT id FROM subjects WHERE name = ?", (name,)).fetchone()
    return None if row is None else int(row[0])


def maintain(conn: sqlite3.Connection, now: float) -> None:
    """Roll up what is complete and prune what is past retention (one transaction; cheap when idle)."""
    with Transaction(conn):
        rollup(conn, RAW, MINUTE, now)
        rollup(conn, MINUTE, TEN_MINUTES, now)
        prune(conn, now)


def rollup(conn: sqlite3.Connection, source: int, target: int, now: float) -> None:
    """Aggregate the complete `target`-second buckets of `source` rows not yet rolled up."""
    done = get_meta(conn, f"rolled:{target}")
    if done is None:
        first = conn.execute("SELECT min(t) FROM samples WHERE tier = ?", (source,)).fetchone()[0]
        if first is None:
            return
        done = math.floor(first / target) * target
    limit = now if source == RAW else (get_meta(conn, f"rolled:{source}") or 0.0)
    end = math.floor(limit / target) * target
    if end <= done:
        return
    averages = ", ".join(
        f"sum({c} * n) / nullif(sum(CASE WHEN {c} IS NULL THEN 0 ELSE n END), 0)" for c in AVERAGED
    )
    maxima = ", ".join(f"max({c})" for c in MAXED)
    conn.execute(
        f"INSERT OR REPLACE INTO samples (subject, tier, t, n, {', '.join(COLUMNS)})"
        f" SELECT subject, ?1, CAST(t / ?1 AS INTEGER) * ?1, sum(n), {averages}, {maxima}"
        " FROM samples WHERE tier = ?2 AND t >= ?3 AND t < ?4 GROUP BY subject, CAST(t / ?1 AS INTEGER)",
        (target, source, done, end),
    )
    set_meta(conn, f"rolled:{target}", end)


def prune(conn: sqlite3.Connection, now: float) -> None:
    """Delete rows past their tier's retention, but never raw or minute rows not yet rolled up."""
    for tier, above in ((RAW, MINUTE), (MINUTE, TEN_MINUTES), (TEN_MINUTES, None)):
        cutoff = now - RETENTION[tier]
        if above is not None:
            cutoff = min(cutoff, get_meta(conn, f"rolled:{above}") or -math.inf)
        if cutoff > -math.inf:
            conn.execute("DELETE FROM samples WHERE tier = ? AND t < ?", (tier, cutoff))
    conn.execute("DELETE FROM subjects WHERE forgotten < ?", (now - TOMBSTONE_TTL,))


def forget(conn: sqlite3.Connection, subject: str, now: float) -> None:
    """Delete every row of `subject` and keep the sampler from writing it again."""
    with Transaction(conn):
        number = subject_id(conn, subject)
        conn.execute("DELETE FROM samples WHERE subject = ?", (number,))
        conn.execute("UPDATE subjects SET forgotten = ? WHERE id = ?", (now, number))


def query(
    conn: sqlite3.Connection, subject: str, tier: int, start: float, end: float, *, width: float | None
) -> list[Point]:
    """The subject's rows of `tier` in [start, end), averaged into `width`-second buckets (None: as stored)."""
    number = _find(conn, subject)
    if number is None:
        return []
    columns = ", ".join(COLUMNS)
    if width is None:
        sql = (
            f"SELECT t, {columns} FROM samples WHERE subject = ? AND tier = ? AND t >= ? AND t < ? ORDER BY t"
        )
        rows = conn.execute(sql, (number, tier, start, end)).fetchall()
    else:
        averages = ", ".join(
            f"sum({c} * n) / nullif(sum(CASE WHEN {c} IS NULL THEN 0 ELSE n END), 0)" for c in AVERAGED
        )
        maxima = ", ".join(f"max({c})" for c in MAXED)
        sql = (
            f"SELECT CAST(t / ?1 AS INTEGER) * ?1 AS b, {averages}, {maxima} FROM samples"
            " WHERE subject = ?2 AND tier = ?3 AND t >= ?4 AND t < ?5 GROUP BY b ORDER BY b"
        )
        rows = conn.execute(sql, (width, number, tier, start, end)).fetchall()
    return [Point(*row) for row in rows]


@dataclass(frozen=True)
class Usage:
    """One subject's average and peak CPU and memory over a window (for `top`)."""

    subject: str
    cpu_avg: float
    cpu_max: float
    mem_avg: float
    mem_max: float


def usage(
    conn: sqlite3.Connection, tier: int, start: float, end: float, *, by: str, limit: int
) -> list[Usage]:
    """The containers (not the host) using the most CPU ("cpu") or memory ("memory") on average."""
    order = {"cpu": "cpu_avg", "memory": "mem_avg"}[by]
    sql = (
        "SELECT name, sum(cpu * n) / nullif(sum(CASE WHEN cpu IS NULL THEN 0 ELSE n END), 0) AS cpu_avg,"
        " max(cpu_max), sum(mem * n) / nullif(sum(CASE WHEN mem IS NULL THEN 0 ELSE n END), 0) AS mem_avg,"
        " max(mem_max) FROM samples JOIN subjects ON subjects.id = samples.subject"
        " WHERE tier = ? AND t >= ? AND t < ? AND name != ?"
        f" GROUP BY samples.subject ORDER BY {order} DESC LIMIT ?"
    )
    rows = conn.execute(sql, (tier, start, end, HOST, limit)).fetchall()
    return [Usage(r[0], r[1] or 0.0, r[2] or 0.0, r[3] or 0.0, r[4] or 0.0) for r in rows]


def latest(conn: sqlite3.Connection, subject: str) -> Point | None:
    """The subject's newest raw sample."""
    number = _find(conn, subject)
    if number is None:
        return None
    row = conn.execute(
        f"SELECT t, {', '.join(COLUMNS)} FROM samples WHERE subject = ? AND tier = 0 ORDER BY t DESC LIMIT 1",
        (number,),
    ).fetchone()
    return Point(*row) if row else None


def get_meta(conn: sqlite3.Connection, key: str) -> float | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def set_meta(conn: sqlite3.Connection, key: str, value: float) -> None:
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


def count_rows(conn: sqlite3.Connection) -> dict[int, int]:
    """Rows per tier (for tests and the benchmark)."""
    return dict(conn.execute("SELECT tier, count(*) FROM samples GROUP BY tier").fetchall())


class Transaction:
    """BEGIN IMMEDIATE … COMMIT (ROLLBACK on error); nests as a no-op inside an open transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.outer = False

    def __enter__(self) -> None:
        self.outer = not self.conn.in_transaction
        if self.outer:
            self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *_: object) -> None:
        if self.outer:
            self.conn.execute("ROLLBACK" if kind else "COMMIT")
