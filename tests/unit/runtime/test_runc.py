from __future__ import annotations

from pathlib import Path

from engine.errors import RuntimeFailure
from engine.runtime import runc
from engine.runtime.runc import ContainerGone

ROOT = Path("/run/berth/runc")


def test_state_and_start_argv():
    assert runc.state_argv(ROOT, "abc") == ["--root", "/run/berth/runc", "state", "abc"]
    assert runc.start_argv(ROOT, "abc") == ["--root", "/run/berth/runc", "start", "abc"]


def test_kill_argv_puts_all_before_the_id():
    assert runc.kill_argv(ROOT, "abc", 9, all=True) == [
        "--root",
        "/run/berth/runc",
        "kill",
        "--all",
        "abc",
        "9",
    ]
    assert runc.kill_argv(ROOT, "abc", "SIGTERM") == ["--root", "/run/berth/runc", "kill", "abc", "SIGTERM"]


def test_delete_argv_force():
    assert runc.delete_argv(ROOT, "abc", force=True)[-2:] == ["--force", "abc"]


def test_exec_argv_uses_a_process_file_and_console_socket():
    argv = runc.exec_argv(
        ROOT,
        "abc",
        process_json=Path("/b/p.json"),
        pid_file=Path("/b/pid"),
        console_socket=Path("/b/cs"),
        detach=True,
    )
    assert argv == [
        "--root",
        "/run/berth/runc",
        "exec",
        "--process",
        "/b/p.json",
        "--detach",
        "--pid-file",
        "/b/pid",
        "--console-socket",
        "/b/cs",
        "abc",
    ]


def test_parse_state():
    st = runc.parse_state(
        {
            "ociVersion": "1.0.2",
            "id": "abc",
            "pid": 42,
            "status": "running",
            "bundle": "/b",
            "rootfs": "/b/rootfs",
            "created": "2026-01-01T00:00:00Z",
            "owner": "",
        }
    )
    assert st == runc.RuncState("abc", "running", 42, "/b", "2026-01-01T00:00:00Z", {})


def test_parse_version_of_debian_runc():
    text = "runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\nspec: 1.0.2-dev\n"
    assert runc.parse_version(text)[:3] == (1, 1, 5)
    assert runc.parse_version("runc version 1.4.0-rc.2") == (1, 4, 0, 2)


def test_check_version_warns_loudly_for_this_hosts_runc():
    warning = runc.check_version("runc version 1.1.5+ds1")
    assert warning and "CVE-2024-21626" in warning and "CVE-2025" in warning


def test_check_version_knows_each_fixed_line():
    assert "CVE-2025" in runc.check_version("1.1.15")
    assert "CVE-2024-21626" not in runc.check_version("1.1.15")
    assert runc.check_version("1.2.8") is None
    assert runc.check_version("1.3.2") is not None
    assert runc.check_version("1.3.3") is None
    assert runc.check_version("1.4.0-rc.2") is not None
    assert runc.check_version("1.4.0-rc.3") is None
    assert runc.check_version("1.4.1") is None


def test_does_not_exist_becomes_container_gone():
    err = runc._failure(
        ["runc", "--root", "/r", "state", "x"], 1, 'time="2026" level=error msg="container does not exist"\n'
    )
    assert isinstance(err, ContainerGone) and err.exit_code == 1
    assert str(err) == "runc state failed: container does not exist"


def test_other_failures_keep_argv_and_stderr():
    err = runc._failure(
        ["runc", "--root", "/r", "start", "x"],
        1,
        'level=error msg="cannot start a container that has stopped"',
    )
    assert type(err) is RuntimeFailure and err.argv[3] == "start" and "stopped" in err.stderr


def test_console_socket_uses_a_proc_alias_for_long_paths(tmp_path):
    deep = tmp_path / ("d" * 100)
    deep.mkdir()
    with runc.ConsoleSocket(deep / "console.sock") as cs:
        assert cs.runc_path.startswith("/proc/") and len(cs.runc_path) < 108
        assert (deep / "console.sock").exists()
    assert not (deep / "console.sock").exists()
