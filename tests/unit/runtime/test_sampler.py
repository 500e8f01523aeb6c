"""The sampler's rounds against a fake cgroup tree and runc state root (no root, no containers needed)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from engine.runtime import metricstore, sampler
from tests.polling import wait_until

CID = "a" * 64


@pytest.fixture
def engine_dirs(tmp_path: Path) -> tuple[Path, Path, Path]:
    root, run, cg = tmp_path / "root", tmp_path / "run", tmp_path / "cg"
    root.mkdir()
    (run / "runc" / CID).mkdir(parents=True)
    # Our own pid stands in for the container's init: alive, with a network namespace to read.
    (run / "runc" / CID / "state.json").write_text(json.dumps({"init_process_pid": os.getpid()}))
    (cg / "berth" / CID).mkdir(parents=True)
    (cg / "cgroup.controllers").write_text("cpu memory io pids\n")
    _write_group(cg, usage_usec=1_000_000)
    return root, run, cg


def _write_group(cg: Path, *, usage_usec: int) -> None:
    g = cg / "berth" / CID
    (g / "cpu.stat").write_text(f"usage_usec {usage_usec}\nuser_usec 0\n")
    (g / "memory.current").write_text("1000000\n")
    (g / "memory.stat").write_text("anon 800000\ninactive_file 100000\n")
    (g / "memory.max").write_text("max\n")
    (g / "io.stat").write_text("8:0 rbytes=4096 wbytes=0 rios=1 wios=0\n")


def test_a_round_after_the_first_writes_rates_for_containers_and_the_host(engine_dirs) -> None:  # type: ignore[no-untyped-def]
    root, run, cg = engine_dirs
    s = sampler.Sampler(root, run, 10, cgroup_root=cg)
    try:
        assert s.step(1000.0) == 1  # the first round only primes the counters
        assert metricstore.latest(s.store, CID) is None
        _write_group(cg, usage_usec=1_500_000)  # half a CPU second more
        s.step(1010.0)
        row = metricstore.latest(s.store, CID)
        assert row is not None and row.t == 1010.0
        assert row.cpu is not None and row.cpu > 0
        # Docker's usage: charged memory minus the inactive page cache; unlimited → the host's memory.
        assert row.mem == 900_000
        assert row.mem_limit == sampler.host_memory()[1]
        # The host's CPU needs /proc/stat to have moved on (it counts in ticks of 10 ms).
        t = iter(range(1020, 10**6, 10))
        host = wait_until(
            lambda: s.step(float(next(t))) and metricstore.latest(s.store, metricstore.HOST),
            what="a host row",
        )
        assert host is not None and host.disk_total and host.disk_free is not None
        assert 0 <= (host.cpu or 0) <= 100
    finally:
        s.close()


def test_the_sampler_is_idle_once_no_container_is_left_and_no_server_is_up(engine_dirs) -> None:  # type: ignore[no-untyped-def]
    root, run, cg = engine_dirs
    s = sampler.Sampler(root, run, 10, cgroup_root=cg)
    try:
        s.step(1000.0)
        assert not s.idle()
        shutil.rmtree(run / "runc" / CID)
        assert s.idle()
        fd = sampler.presence.hold(run)  # a server is up: stay, to sample the host
        try:
            assert not s.idle()
        finally:
            os.close(fd)
    finally:
        s.close()


def test_rates_ignore_counter_resets() -> None:
    assert sampler.rate(150, 100, 10) == 5
    assert sampler.rate(50, 100, 10) is None  # a new cgroup after a restart starts from zero
    assert sampler.rate(None, 100, 10) is None
