"""The container services in process: log rotation and housekeeping, terminal execs and their reaping.

These need the services' return values (a Terminal's pty, maintain's single step), so they call the
engine directly; conmon's exit command still runs as a separate process against the same (file)
database, which is why they use `engine_tx`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import _conmons, _processes_with, require_root, settle_conmons
from tests.polling import wait_until

pytestmark = pytest.mark.root


@pytest.fixture
def services(engine_tx: Path) -> Iterator[Path]:
    """A seeded engine; every container is removed and its exit command awaited afterwards."""
    require_root()
    from engine.models import Container
    from engine.services import lifecycle, system

    before = _conmons()
    system.seed()
    yield engine_tx
    for container in Container.objects.all():
        try:
            lifecycle.remove(container.id, force=True, volumes=True)
        except Exception:  # noqa: BLE001 — removed by its exit command meanwhile
            pass
    marker = f"BERTH_ROOT={engine_tx}\0".encode()
    wait_until(lambda: not _processes_with(marker), timeout=60, what="the exit commands to finish")
    settle_conmons(before)


def _run(command: str, **options: object):  # type: ignore[no-untyped-def]
    from engine.services import containers, lifecycle
    from engine.services.options import ContainerOptions

    container = containers.create(ContainerOptions(image="busybox", command=("sh", "-c", command), **options))
    lifecycle.start(container.id)
    return container


def _lines(ref: str) -> list[str]:
    from engine.services import containerinfo

    return [line.text for line in containerinfo.logs(ref, containerinfo.LogQuery())]


# -- log rotation ----------------------------------------------------------------------------------


def test_housekeeping_rotates_the_log_and_logs_read_across_the_files(services: Path) -> None:
    from engine.runtime import conmon
    from engine.services import bundle, lifecycle, supervision

    # 8 bursts of 50 lines (about 2.6 kB each) against an 8 kB cap: several rotations, and all
    # 400 lines fit in max-file 3, so nothing may be missing or out of order.
    script = "i=0; while [ $i -lt 400 ]; do echo line-$i; i=$((i+1)); [ $((i % 50)) = 0 ] && sleep 0.3; done"
    container = _run(script, log_max_size=8000, log_max_file=3)
    p = bundle.paths(container.id)

    def rotate_until_exit() -> bool:
        supervision.maintain()  # what the server calls every few seconds
        return conmon.read_exit_code(p.exit_dir, container.id) is not None

    wait_until(rotate_until_exit, timeout=30, what="the writer to exit")
    assert lifecycle.wait(container.id, timeout=30) == 0
    # The log keeper rotates too (the server need not run), so it may have taken some rotations.
    assert Path(f"{p.log}.1").exists() and Path(f"{p.log}.2").exists()
    assert _lines(container.id) == [f"line-{i}" for i in range(400)]


def test_logs_rotate_the_log_when_read(services: Path) -> None:
    from engine.services import bundle, lifecycle

    container = _run(
        "i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); done; read x",
        interactive=True,
        log_max_size=4000,
        log_max_file=3,
    )
    log = bundle.paths(container.id).log
    # Not "wait for 4000 bytes in the live file": the log keeper may rotate it first, leaving less.
    wait_until(lambda: _lines(container.id)[-1:] == ["line-199"], what="the last line in the logs")
    assert _lines(container.id) == [f"line-{i}" for i in range(200)]  # nothing lost across rotations
    assert Path(f"{log}.1").exists()  # reading (or the keeper) rotated it: it had passed max-size
    lifecycle.kill(container.id)


def test_maintain_leaves_a_small_log_alone(services: Path) -> None:
    from engine.services import bundle, supervision

    container = _run("echo one; sleep 1000", log_max_size=1 << 20, log_max_file=3)
    wait_until(lambda: _lines(container.id) == ["one"], what="the line in the log")
    assert supervision.maintain() == 0
    assert not Path(f"{bundle.paths(container.id).log}.1").exists()


def test_conmon_gets_no_cap_while_the_engine_rotates(services: Path) -> None:
    from engine.services import bundle

    # conmon 2.1.6 truncates at every multiple of its cap counted since its start, whatever the
    # engine rotated meanwhile: any cap would lose lines (issue 10, finding 8).
    container = _run("sleep 1000", log_max_size=10000, log_max_file=3)
    conmon_pid = int(bundle.paths(container.id).conmon_pidfile.read_text())
    argv = Path(f"/proc/{conmon_pid}/cmdline").read_bytes().split(b"\0")
    assert b"--log-size-max" not in argv


def test_maintain_records_an_exit_its_exit_command_missed(services: Path) -> None:
    from engine.models import Container, ContainerState
    from engine.services import bundle, lifecycle, supervision

    container = _run("sleep 1000")
    # Pretend the exit command never ran: the exit file exists and the record says running.
    code_file = bundle.paths(container.id).exit_file
    lifecycle.kill(container.id)
    Container.objects.filter(id=container.id).update(state=ContainerState.RUNNING)
    code_file.parent.mkdir(parents=True, exist_ok=True)
    code_file.write_text("137")
    assert supervision.maintain() == 1
    assert Container.objects.get(id=container.id).state == ContainerState.EXITED


# -- terminal execs --------------------------------------------------------------------------------


def _read_until(fd: int, needle: bytes, timeout: float = 10) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while needle not in out:
        assert time.monotonic() < deadline, out
        out += os.read(fd, 4096)
    return out


def test_terminal_exec_is_reaped_and_leaves_the_container_running(services: Path) -> None:
    from engine.models import ContainerState
    from engine.services import containerinfo, execs

    container = _run("sleep 1000")
    terminal = execs.open_terminal(container.id, execs.ExecRequest(command=("sh",)))
    os.write(terminal.master_fd, b"echo $((6*7))\n")
    _read_until(terminal.master_fd, b"42")
    os.write(terminal.master_fd, b"exit 5\n")
    assert terminal.reaped.wait(10)
    assert execs.close_session(terminal) == 5
    assert not Path(f"/proc/{terminal.pid}").exists()  # reaped, not a zombie
    assert containerinfo.get(container.id).state == ContainerState.RUNNING


def test_closing_a_terminal_kills_its_process(services: Path) -> None:
    from engine.models import ExecSession
    from engine.services import execs

    container = _run("sleep 1000")
    terminal = execs.open_terminal(container.id, execs.ExecRequest(command=("sleep", "1000")))
    execs.close_session(terminal)
    assert terminal.reaped.is_set() and not Path(f"/proc/{terminal.pid}").exists()
    assert ExecSession.objects.get(id=terminal.session_id).ended_at is not None


def test_rm_force_with_a_live_terminal_exec_is_prompt(services: Path) -> None:
    from engine.errors import ContainerNotFound
    from engine.services import containers, execs, lifecycle

    container = _run("sleep 1000")
    terminal = execs.open_terminal(container.id, execs.ExecRequest(command=("sh",)))
    try:
        _read_until(terminal.master_fd, b"# ")
        started = time.monotonic()
        lifecycle.remove(container.id, force=True)
        # An unreaped exec zombie would hold the pid namespace and `runc delete` for ~10 s.
        assert time.monotonic() - started < 5
        assert terminal.reaped.wait(5)
    finally:
        execs.close_session(terminal)
    with pytest.raises(ContainerNotFound):
        containers.resolve(container.id)


def test_stop_with_a_live_terminal_exec_is_prompt(services: Path) -> None:
    from engine.services import execs, lifecycle

    container = _run("sleep 1000")
    terminal = execs.open_terminal(container.id, execs.ExecRequest(command=("sh",)))
    try:
        started = time.monotonic()
        lifecycle.stop(container.id, timeout=0)
        assert time.monotonic() - started < 5
    finally:
        execs.close_session(terminal)
