from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.errors import InvalidArgument, RuntimeFailure
from engine.runtime import conmon


def argv(**kw):
    base = dict(
        conmon="/usr/bin/conmon",
        runtime="/usr/sbin/runc",
        runtime_root=Path("/run/b/runc"),
        container_id="abc",
        name="web",
        bundle=Path("/b"),
        log_path=Path("/b/ctr.log"),
        log_max_size=None,
        exit_dir=Path("/run/b/exits"),
        socket_dir=Path("/run/b/s"),
        pidfile=Path("/b/pid"),
        conmon_pidfile=Path("/b/conmon.pid"),
        terminal=False,
        stdin=False,
    )
    base.update(kw)
    return conmon.spawn_argv(**base)


def pairs(a):
    return list(zip(a, a[1:], strict=False))


def test_spawn_argv_passes_the_runtime_root_and_k8s_log():
    a = argv()
    assert ("-r", "/usr/sbin/runc") in pairs(a)
    assert ("--runtime-arg", "--root") in pairs(a) and ("--runtime-arg", "/run/b/runc") in pairs(a)
    assert ("-l", "k8s-file:/b/ctr.log") in pairs(a)
    assert "-t" not in a and "-i" not in a and "--log-size-max" not in a


def test_spawn_argv_terminal_stdin_and_exit_command():
    a = argv(terminal=True, stdin=True, log_max_size=1000, exit_command=["/usr/bin/berth", "cleanup", "abc"])
    assert "-t" in a and "-i" in a and ("--log-size-max", "1000") in pairs(a)
    assert ("--exit-command", "/usr/bin/berth") in pairs(a)
    assert [v for k, v in pairs(a) if k == "--exit-command-arg"] == ["cleanup", "abc"]


def test_split_packet():
    assert conmon.split_packet(b"\x02hello") == (conmon.STREAM_STDOUT, b"hello")
    assert conmon.split_packet(b"") == (0, b"")


def test_read_exit_code(tmp_path):
    assert conmon.read_exit_code(tmp_path, "abc") is None
    (tmp_path / "abc").write_text("137")
    assert conmon.read_exit_code(tmp_path, "abc") == 137
    (tmp_path / "abc").write_text("")  # being written
    assert conmon.read_exit_code(tmp_path, "abc") is None


@pytest.mark.parametrize("rows,cols", [(-1, 80), (24, 1001), (24.0, 80)])
def test_resize_refuses_out_of_range_sizes(tmp_path, rows, cols):
    with pytest.raises(InvalidArgument):
        conmon.resize(tmp_path / "ctl", rows, cols)


def test_resize_writes_a_ctl_line(tmp_path):
    fifo = tmp_path / "ctl"
    os.mkfifo(fifo)
    r = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        conmon.resize(fifo, 24, 80)
        assert os.read(r, 100) == b"1 24 80\n"
    finally:
        os.close(r)


def test_resize_without_conmon_is_a_runtime_failure(tmp_path):
    os.mkfifo(tmp_path / "ctl")  # nobody reads it
    with pytest.raises(RuntimeFailure):
        conmon.resize(tmp_path / "ctl", 24, 80)


def test_read_sync_parses_pid_and_failure():
    r, w = os.pipe()
    os.write(w, b'{"data": -1, "message": "runc create failed"}\n')
    os.close(w)
    try:
        assert conmon._read_sync(r, 1.0) == {"data": -1, "message": "runc create failed"}
    finally:
        os.close(r)


def test_read_sync_returns_none_on_eof():
    r, w = os.pipe()
    os.close(w)
    try:
        assert conmon._read_sync(r, 1.0) is None
    finally:
        os.close(r)
