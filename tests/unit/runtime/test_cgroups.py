from __future__ import annotations

import pytest

from engine.errors import InvalidArgument
from engine.runtime import cgroups


def put(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_detect_mode(tmp_path):
    assert cgroups.detect_mode(tmp_path) == "v1"
    put(tmp_path / "unified/cgroup.controllers", "")
    assert cgroups.detect_mode(tmp_path) == "hybrid"
    put(tmp_path / "cgroup.controllers", "cpu memory pids")
    assert cgroups.detect_mode(tmp_path) == "v2"


def test_cgroups_path_is_under_berth_and_refuses_odd_ids():
    assert cgroups.cgroups_path_for("abc123") == "/berth/abc123"
    for bad in ("../x", "a/b", "", ".hidden"):
        with pytest.raises(InvalidArgument):
            cgroups.cgroups_path_for(bad)


def test_read_stats_v1(tmp_path):
    g = "berth/c1"
    put(tmp_path / "cpuacct" / g / "cpuacct.usage", "12345\n")
    put(tmp_path / "memory" / g / "memory.usage_in_bytes", "4096\n")
    put(tmp_path / "memory" / g / "memory.limit_in_bytes", "9223372036854771712\n")
    put(tmp_path / "memory" / g / "memory.stat", "cache 10\ntotal_inactive_file 100\n")
    put(tmp_path / "pids" / g / "pids.current", "3\n")
    put(
        tmp_path / "blkio" / g / "blkio.throttle.io_service_bytes",
        "8:0 Read 10\n8:0 Write 20\n8:16 Read 1\n8:0 Total 30\nTotal 31\n",
    )
    st = cgroups.read_stats("c1", root=tmp_path, mode="v1")
    assert st == cgroups.Stats(12345, 4096, 100, None, 3, 11, 20)


def test_read_stats_v2(tmp_path):
    g = tmp_path / "berth/c1"
    put(g / "cpu.stat", "usage_usec 7\nuser_usec 5\n")
    put(g / "memory.current", "8192\n")
    put(g / "memory.max", "33554432\n")
    put(g / "memory.stat", "inactive_file 50\n")
    put(g / "pids.current", "2\n")
    put(g / "io.stat", "8:0 rbytes=5 wbytes=6 rios=1 wios=1\n")
    assert cgroups.read_stats("c1", root=tmp_path, mode="v2") == cgroups.Stats(
        7000, 8192, 50, 33554432, 2, 5, 6
    )


def test_missing_counters_are_none(tmp_path):
    st = cgroups.read_stats("c1", root=tmp_path, mode="v1")
    assert st == cgroups.Stats(None, None, None, None, None, None, None)


def test_oom_killed_v1_and_v2(tmp_path):
    put(tmp_path / "memory/berth/c1/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    assert cgroups.oom_killed("c1", root=tmp_path, mode="v1")
    put(tmp_path / "berth/c2/memory.events", "low 0\noom 1\noom_kill 0\n")
    assert not cgroups.oom_killed("c2", root=tmp_path, mode="v2")


def test_remove_only_touches_the_containers_berth_groups(tmp_path):
    for h in ("memory", "pids", "unified"):
        (tmp_path / h / "berth/c1").mkdir(parents=True)
    (tmp_path / "memory/other/c1").mkdir(parents=True)
    assert cgroups.remove("c1", root=tmp_path, mode="hybrid")
    assert not any((tmp_path / h / "berth/c1").exists() for h in ("memory", "pids", "unified"))
    assert (tmp_path / "memory/other/c1").exists() and (tmp_path / "memory/berth").exists()
