"""The fast tail (reading backwards) must give exactly what reading everything gives."""

from __future__ import annotations

import random
from pathlib import Path

from engine.runtime import logfile


def _write_log(path: Path, lines: int, *, seed: int) -> None:
    rng = random.Random(seed)
    records = []
    for i in range(lines):
        stream = rng.choice(["stdout", "stderr"])
        stamp = f"2026-11-28T00:{i // 3600 % 60:02d}:{i % 60:02d}.{rng.randrange(10**9):09d}+00:00"
        text = f"line {i} " + "x" * rng.randrange(0, 300)
        pieces = [text[j : j + 100] for j in range(0, len(text), 100)] or [""]
        for k, piece in enumerate(pieces):
            flag = "F" if k == len(pieces) - 1 else "P"
            records.append(f"{stamp} {stream} {flag} {piece}")
    # Rotated files hold the older part, as the engine's rotation leaves them.
    third = len(records) // 3
    (path.parent / f"{path.name}.2").write_text("\n".join(records[:third]) + "\n")
    (path.parent / f"{path.name}.1").write_text("\n".join(records[third : 2 * third]) + "\n")
    path.write_text("\n".join(records[2 * third :]) + "\n")


def _slow(path: Path, tail: int, streams: tuple[str, ...]) -> list[logfile.LogLine]:
    lines = [line for line in logfile.read_log(path, streams=streams)]
    return lines[-tail:] if tail else []


def test_tail_reads_the_same_lines_as_a_full_read_across_rotated_files(tmp_path: Path) -> None:
    path = tmp_path / "ctr.log"
    _write_log(path, 3000, seed=1)
    for tail in (0, 1, 7, 100, 999, 2500, 5000):
        for streams in (("stdout", "stderr"), ("stdout",), ("stderr",)):
            fast = list(logfile.read_log(path, tail=tail, streams=streams))
            assert fast == _slow(path, tail, streams), (tail, streams)


def test_the_fast_timestamp_path_agrees_with_the_general_parser() -> None:
    stamp = "2026-11-28T00:21:26.864821083+01:00"
    fast = logfile.parse_timestamp(stamp)
    slow = logfile.parse_timestamp("2026-11-28T00:21:26.864821+01:00")
    assert fast == slow and fast.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
