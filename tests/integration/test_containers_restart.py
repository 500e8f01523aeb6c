"""Engine restarts (live-restore), restart policies across them, and the namespace/privilege options.

An "engine restart" is what the server runs once when it starts: supervision.reconcile_all(). A
container whose supervisor died with it is simulated by SIGKILLing its conmon (so no exit command
runs) and then its process: exactly what a reboot of the engine without live containers looks like.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import require_root
from tests.polling import settle

pytestmark = pytest.mark.root


@pytest.fixture
def running(engine_tx: Path):  # type: ignore[no-untyped-def]
    """Start containers in-process; remove every one of them at the end."""
    require_root()
    from engine.models import Container
    from engine.services import containers, lifecycle, system
    from engine.services.options import ContainerOptions, RestartPolicy

    system.seed()
    conmons: list[int] = []

    def start(name: str, *, restart: str = "no", auto_remove: bool = False):  # type: ignore[no-untyped-def]
        options = ContainerOptions(
            image="busybox",
            name=name,
            command=("sleep", "100000"),
            restart=RestartPolicy(restart),
            auto_remove=auto_remove,
        )
        container = containers.create(options)
        lifecycle.start(container.id)
        container.refresh_from_db()
        conmons.append(container.conmon_pid)
        return container

    yield start
    for container in Container.objects.all():
        conmons.append(container.conmon_pid)  # a restarted one has a new conmon
        lifecycle.remove(container.id, force=True, volumes=True)
    # conmon leaves after its exit command has run; give it that moment before the leak check.
    settle(lambda: not any(pid and Path(f"/proc/{pid}").exists() for pid in conmons))


def _kill_supervisor_then_process(container) -> None:  # type: ignore[no-untyped-def]
    os.kill(container.conmon_pid, signal.SIGKILL)
    time.sleep(0.2)
    os.kill(container.pid, signal.SIGKILL)
    settle(lambda: not Path(f"/proc/{container.pid}").exists())  # a zombie until PID 1 reaps it


def test_a_running_container_survives_an_engine_restart_untouched(running) -> None:  # type: ignore[no-untyped-def]
    from engine.services import execs, supervision

    container = running("live")
    supervision.reconcile_all()
    container.refresh_from_db()
    # Live-restore: the same process keeps running and can still be exec'd into.
    assert container.state == "running"
    assert Path(f"/proc/{container.pid}").exists()
    code = execs.run_attached(container.id, execs.ExecRequest(command=("true",)))
    assert code == 0


def test_always_restarts_a_container_that_died_while_the_engine_was_down(running) -> None:  # type: ignore[no-untyped-def]
    from engine.services import supervision

    container = running("phoenix", restart="always")
    old_pid = container.pid
    _kill_supervisor_then_process(container)
    supervision.reconcile_all()
    container.refresh_from_db()
    assert container.state == "running"
    assert container.pid != old_pid
    assert container.restart_count == 1  # a policy restart is counted, as Docker's RestartCount
    assert Path(f"/proc/{container.pid}").exists()


def test_unless_stopped_stays_stopped_after_an_explicit_stop_and_an_engine_restart(running) -> None:  # type: ignore[no-untyped-def]
    from engine.services import lifecycle, supervision

    container = running("calm", restart="unless-stopped")
    lifecycle.stop(container.id, timeout=0)
    supervision.reconcile_all()
    container.refresh_from_db()
    assert container.state == "exited"


def test_a_vanished_container_is_recorded_as_exited_by_the_engine_restart(running) -> None:  # type: ignore[no-untyped-def]
    from engine.services import supervision

    container = running("gone")
    _kill_supervisor_then_process(container)
    supervision.reconcile_all()
    container.refresh_from_db()
    assert container.state == "exited"
    assert "vanished" in container.error  # no exit file: the record says so instead of guessing


def test_an_auto_remove_container_that_exited_during_the_outage_is_removed(running) -> None:  # type: ignore[no-untyped-def]
    from engine.models import Container
    from engine.services import supervision

    container = running("ephemeral", auto_remove=True)
    _kill_supervisor_then_process(container)
    supervision.reconcile_all()
    assert not Container.objects.filter(id=container.id).exists()


# -- namespaces, init and privileges (through the CLI) ---------------------------------------------


def test_init_runs_as_pid_1_and_execs_the_command(berth_cli) -> None:  # type: ignore[no-untyped-def]
    out = berth_cli.ok("run", "--rm", "--init", "busybox", "cat", "/proc/1/cmdline")
    assert out.replace("\0", " ").startswith("/run/berth-init")


def test_network_none_has_only_loopback(berth_cli) -> None:  # type: ignore[no-untyped-def]
    out = berth_cli.ok("run", "--rm", "--network", "none", "busybox", "cat", "/proc/net/dev")
    interfaces = {line.split(":")[0].strip() for line in out.splitlines()[2:] if ":" in line}
    assert interfaces == {"lo"}


def test_network_host_sees_the_hosts_interfaces(berth_cli) -> None:  # type: ignore[no-untyped-def]
    with open("/proc/net/dev") as f:
        host = {line.split(":")[0].strip() for line in f.read().splitlines()[2:] if ":" in line}
    out = berth_cli.ok("run", "--rm", "--network", "host", "busybox", "cat", "/proc/net/dev")
    inside = {line.split(":")[0].strip() for line in out.splitlines()[2:] if ":" in line}
    assert inside == host and len(host) > 1


def test_privileged_gets_every_capability_and_unmasked_proc(berth_cli) -> None:  # type: ignore[no-untyped-def]
    status = berth_cli.ok("run", "--rm", "--privileged", "busybox", "grep", "CapEff", "/proc/self/status")
    default = berth_cli.ok("run", "--rm", "busybox", "grep", "CapEff", "/proc/self/status")
    assert int(status.split()[1], 16) > int(default.split()[1], 16)
    assert int(status.split()[1], 16) & (1 << 21)  # CAP_SYS_ADMIN, never in the default set
