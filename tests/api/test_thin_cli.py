"""`.venv/bin/berth` as a thin client of the API server (engine/cli/thin.py), and its fall-back.

Every comparison runs the same command twice on the same engine: through the launcher (thin) and with
BERTH_NO_THIN=1 (in-process). The thin runs carry DJANGO_SETTINGS_MODULE of a module that does not
exist, so a thin command that silently fell back to `manage.py` would crash instead of passing.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api.conftest import ApiServer
from tests.conftest import REPO
from tests.polling import wait_until

LAUNCHER = REPO / ".venv" / "bin" / "berth"
NO_DJANGO = "berth_thin_test_no_such_settings"  # importing Django settings from here fails
# Time cells differ between two runs a moment apart ("2 seconds ago" / "3 seconds ago").
DURATION = re.compile(
    r"(Less than a second|About a minute|About an hour|\d+ (second|minute|hour|day|week|month|year)s?)"
)


def launcher(api: ApiServer, *args: str, thin: bool = True, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    environment = dict(api.env)
    if thin:
        environment["DJANGO_SETTINGS_MODULE"] = NO_DJANGO
    else:
        environment["BERTH_NO_THIN"] = "1"
    environment.update(env or {})
    return subprocess.run(
        [str(LAUNCHER), *args], env=environment, capture_output=True, text=True, timeout=120, check=False
    )


def both(
    api: ApiServer, *args: str
) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    thin = launcher(api, *args)
    assert "Traceback" not in thin.stderr, thin.stderr  # a fall-back would crash on NO_DJANGO
    return thin, launcher(api, *args, thin=False)


def cells(table: str) -> list[list[str]]:
    """Rows split at Docker's three-space gaps, durations masked (alignment follows their width)."""
    return [[DURATION.sub("<t>", c) for c in re.split(r" {3,}", line)] for line in table.splitlines()]


@pytest.fixture(autouse=True)
def _launcher_is_thin() -> None:
    if "engine.cli.thin" not in LAUNCHER.read_text():
        pytest.fail(
            f"{LAUNCHER} is not the thin launcher: run `make venv` (Makefile target $(VENV)/.installed)"
        )


def test_the_thin_client_imports_no_django_and_nothing_slow() -> None:
    # The point of the thin client: a command costs a Python start, not Django's import; and the
    # standard modules that cost as much again (json → re, socket, typing, http) stay out too.
    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r}); import engine.cli.thin; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'json', 're', 'socket', "
        "'typing', 'http', 'urllib', 'datetime', 'email', 'ssl') or m.startswith('engine.') "
        "and m not in ('engine.cli', 'engine.cli.thin', 'engine.cli.thinclient', 'engine.cli.thincontainers', "
        "'engine.cli.thinformat', 'engine.humanize')))"
    )
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_thin_formats_are_renders() -> None:
    # thinformat repeats json's and urllib's helpers to avoid their imports; they must never drift apart.
    # (The table and the human formats are one piece of code that render and the thin client share.)
    from engine.cli import render, thinformat

    rows = [["a", "bb", ""], ["cccc", "", "d e"], ["", "", ""]]
    out = io.StringIO()
    render.table(["X", "YY", "Z"], rows, out=out)
    assert thinformat.table(["X", "YY", "Z"], rows) == out.getvalue()
    body = {"a": ['x"é', 1, 2.5, True, None], "b": {"c": False}}
    assert thinformat.loads(thinformat.dumps(body)) == body == json.loads(thinformat.dumps(body))
    assert thinformat.loads(json.dumps(body, indent=4).encode()) == body
    assert thinformat.quote("a/b:c d") == "a%2Fb%3Ac%20d"


def test_ps_through_the_server_prints_what_the_in_process_cli_prints(api: ApiServer) -> None:
    api.docker("create", "--name", "thin-created", "-l", "tier=web", "busybox", "sleep", "300")
    api.docker("run", "-d", "--name", "thin-running", "--network", "none", "busybox", "sleep", "300")
    api.docker(
        "run", "--name", "thin-exited", "--network", "none", "busybox", "sh", "-c", "exit 3", check=False
    )
    for args in (
        ("ps",),
        ("ps", "-a"),
        ("ps", "-a", "--no-trunc"),
        ("ps", "-a", "--filter", "label=tier=web"),
        ("ps", "-a", "-f", "status=exited"),
        ("container", "ls", "-a", "--filter", "name=thin-run"),
    ):
        thin, local = both(api, *args)
        assert (thin.returncode, thin.stderr) == (local.returncode, local.stderr) == (0, ""), args
        assert cells(thin.stdout) == cells(local.stdout), args
        assert len(thin.stdout.splitlines()) > 1 or args == ("ps", "-a", "-f", "status=exited"), args
    thin, local = both(api, "ps", "-aq")
    assert thin.stdout == local.stdout and len(thin.stdout.split()) == 3
    assert "Exited (3)" in launcher(api, "ps", "-a").stdout


def test_list_commands_match_the_in_process_cli(api: ApiServer) -> None:
    api.docker("volume", "create", "thin-vol")
    api.docker("network", "create", "thin-net")
    api.docker("tag", "busybox", "localhost:5000/thin/bb:1")
    try:
        for args in (
            ("images",),
            ("images", "-q"),
            ("images", "busybox"),
            ("image", "ls", "--no-trunc"),
            ("volume", "ls"),
            ("volume", "ls", "-q"),
            ("volume", "ls", "--format", "json"),
            ("network", "ls"),
            ("network", "ls", "-q", "--no-trunc"),
        ):
            thin, local = both(api, *args)
            assert (thin.returncode, thin.stderr) == (local.returncode, local.stderr) == (0, ""), args
            assert cells(thin.stdout) == cells(local.stdout), args
    finally:
        api.docker("rmi", "localhost:5000/thin/bb:1", check=False)


def test_run_rm_prints_the_output_and_returns_the_exit_code(api: ApiServer) -> None:
    script = "echo out; echo err >&2; seq 1 2000 | tail -n 1; exit 3"
    thin = launcher(api, "run", "--rm", "--network", "none", "busybox", "sh", "-c", script)
    assert "Traceback" not in thin.stderr, thin.stderr
    assert (thin.returncode, thin.stdout, thin.stderr) == (3, "out\n2000\n", "err\n")
    # --rm: gone once the command has returned, as in-process
    assert api.docker("ps", "-aq").stdout.strip() == ""


def test_run_keeps_every_line_of_a_fast_writer(api: ApiServer) -> None:
    # Output written before the client could attach must not be lost.
    thin = launcher(api, "run", "--rm", "--network", "none", "busybox", "seq", "1", "20000")
    assert thin.returncode == 0, thin.stderr
    assert thin.stdout.splitlines() == [str(i) for i in range(1, 20001)]


def test_run_detached_then_logs_stop_start_rm(api: ApiServer) -> None:
    script = "echo one; echo two >&2; echo three; sleep 300"
    thin = launcher(
        api,
        "run",
        "-d",
        "--name",
        "thin-d",
        "--network",
        "none",
        "-e",
        "A=1",
        "-l",
        "k=v",
        "-w",
        "/tmp",
        "busybox",
        "sh",
        "-c",
        script,
    )
    assert thin.returncode == 0, thin.stderr
    cid = thin.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    info = api.get_json(f"/containers/{cid}/json")
    assert info["Config"]["WorkingDir"] == "/tmp" and "A=1" in info["Config"]["Env"]
    assert info["Config"]["Labels"] == {"k": "v"}
    wait_until(
        lambda: launcher(api, "logs", "thin-d").stdout == "one\nthree\n",
        timeout=20,
        interval=0.1,
        what="the container's output in its log",
    )
    for args in (("logs", "thin-d"), ("logs", "-t", "thin-d"), ("logs", "--tail", "1", "thin-d")):
        thin, local = both(api, *args)
        assert (thin.returncode, thin.stdout, thin.stderr) == (
            local.returncode,
            local.stdout,
            local.stderr,
        ), args
    thin, local = both(api, "inspect", "thin-d")
    assert thin.returncode == local.returncode == 0
    assert json.loads(thin.stdout) == json.loads(local.stdout)
    assert thin.stdout == local.stdout  # same keys, order and indentation
    assert launcher(api, "stop", "-t", "0", "thin-d").stdout == "thin-d\n"
    # -f of a stopped container prints its log and ends, as in-process
    thin, local = both(api, "logs", "-f", "thin-d")
    assert (
        (thin.returncode, thin.stdout, thin.stderr)
        == (0, "one\nthree\n", "two\n")
        == (
            local.returncode,
            local.stdout,
            local.stderr,
        )
    )
    assert launcher(api, "start", "thin-d").stdout == "thin-d\n"
    assert launcher(api, "rm", "-f", "thin-d").stdout == "thin-d\n"
    assert api.docker("ps", "-aq").stdout.strip() == ""


def test_errors_read_as_in_process(api: ApiServer) -> None:
    for args in (
        ("rm", "thin-nothere"),
        ("logs", "thin-nothere"),
        ("inspect", "thin-nothere"),
        ("stop", "thin-nothere"),
    ):
        thin = launcher(api, *args, env={"DJANGO_SETTINGS_MODULE": "dashboard.settings"})
        local = launcher(api, *args, thin=False)
        assert (thin.returncode, thin.stdout, thin.stderr) == (
            local.returncode,
            local.stdout,
            local.stderr,
        ), args
        assert thin.returncode != 0 and thin.stderr.startswith("Error:"), args


def test_several_containers_are_stopped_at_once_in_process(api: ApiServer) -> None:
    for name in ("thin-m1", "thin-m2"):
        api.docker("run", "-d", "--network", "none", "--name", name, "busybox", "sleep", "600")
    # Several names go in-process, where services/bulk acts on all at once: with Django poisoned,
    # the hand-over shows as a failed settings import, and nothing was stopped over the socket.
    poisoned = launcher(api, "stop", "-t", "0", "thin-m1", "thin-m2")
    assert poisoned.returncode != 0 and NO_DJANGO in poisoned.stderr
    assert poisoned.stdout == ""
    done = launcher(
        api, "stop", "-t", "0", "thin-m1", "thin-m2", env={"DJANGO_SETTINGS_MODULE": "dashboard.settings"}
    )
    assert (done.returncode, sorted(done.stdout.split())) == (0, ["thin-m1", "thin-m2"]), done.stderr


def test_run_of_a_missing_command_exits_127_and_removes_the_container(api: ApiServer) -> None:
    thin = launcher(api, "run", "--rm", "--network", "none", "busybox", "thin-no-such-command")
    # As in-process (engine/cli/container_commands.py): the runtime's reason, Docker's exit code.
    assert thin.returncode == 127, thin.stderr
    assert thin.stderr.startswith("Error: container ") and "executable file not found" in thin.stderr
    assert api.docker("ps", "-aq").stdout.strip() == ""


def test_without_a_server_the_launcher_works_in_process(api: ApiServer, tmp_path: Path) -> None:
    # A socket file nobody listens on (a server that died) and no socket at all both fall back.
    run = tmp_path / "run"
    run.mkdir()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(run / "docker.sock"))
    try:
        api.docker("create", "--name", "thin-fb", "busybox", "true")
        for env in ({"BERTH_RUN": str(run)}, {"BERTH_RUN": str(tmp_path / "absent")}):
            # ps on another BERTH_RUN still reads the same BERTH_ROOT's records
            proc = launcher(api, "ps", "-a", env=env, thin=True)
            # thin=True poisons Django settings: falling back must then fail loudly, which proves it fell back
            assert proc.returncode != 0 and "berth_thin_test_no_such_settings" in proc.stderr
            proc = launcher(api, "ps", "-aq", env={**env, "DJANGO_SETTINGS_MODULE": "dashboard.settings"})
            assert proc.returncode == 0 and len(proc.stdout.split()) == 1, proc.stderr
    finally:
        stale.close()


def test_no_thin_forces_the_in_process_path(api: ApiServer) -> None:
    proc = launcher(api, "ps", thin=False, env={"DJANGO_SETTINGS_MODULE": NO_DJANGO})
    assert proc.returncode != 0 and NO_DJANGO in proc.stderr


def test_options_the_thin_client_does_not_know_go_in_process(api: ApiServer) -> None:
    # `ps -n 1` and `run -i` are not handled by the thin client: with poisoned settings they fail.
    for args in (("ps", "-n", "1"), ("run", "-i", "--rm", "busybox", "true"), ("version",)):
        proc = launcher(api, *args)
        assert proc.returncode != 0 and NO_DJANGO in proc.stderr, args
    assert os.environ.get("BERTH_NO_THIN") is None
