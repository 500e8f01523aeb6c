"""Shared fixtures: a private engine root per test, the root requirement, and the leak guard."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.polling import settle

IN_CI = bool(os.environ.get("CI"))
# Every engine root a test makes starts with this: the leak guard only counts what is ours, so
# another test run on the same machine (a developer's, another session's) cannot fail this one.
TMP_PREFIX = f"bt-{os.getpid()}-"
# Importing dashboard.asgi in tests must not start the server's background monitor thread.
os.environ.setdefault("BERTH_MONITOR", "0")
# aardvark-dns forwards names it does not know to the host's resolvers; tests send no query out.
os.environ["BERTH_DNS_NO_FORWARD"] = "1"


# Network objects of this run carry this prefix: engines' bridges, nft tables and veths (their net
# tag starts with it), and the namespaces and links the tests make themselves. Docker's, Podman's,
# a real Berth's or another test run's are not counted, so the leak guard holds beside them.
NET_PREFIX = f"bt{os.getpid() % 4096:03x}"


def net_tag() -> str:
    """A short unique tag for one engine's bridges, veths and nft table (interface names ≤ 15 chars)."""
    import secrets

    return f"{NET_PREFIX}{secrets.token_hex(2)}"


def require(condition: bool, reason: str) -> None:
    """Skip loudly on a laptop; fail under CI, where a suite that skips itself cannot fail."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required for this test under CI: {reason}")
    pytest.skip(f"SKIPPED (not CI): {reason}")


def require_root() -> None:
    require(os.geteuid() == 0, "must run as root")
    for tool in ("runc", "conmon"):
        require(
            shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin") is not None, f"{tool} is not installed"
        )


@pytest.fixture
def berth_dirs() -> Iterator[tuple[Path, Path]]:
    """Short, private BERTH_ROOT and BERTH_RUN (unix socket paths must stay under 108 bytes)."""
    root = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir="/tmp"))
    run = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir="/run" if os.access("/run", os.W_OK) else "/tmp"))
    yield root, run
    # This clean-up runs before the leak guard looks and would hide what the engine left in its own
    # directories (a rootfs or netns mount, a runc container): note it for the guard first.
    left: list[str] = []

    def cleaned() -> bool:
        left[:] = engine_leftovers(root, run)
        return not left

    settle(cleaned, timeout=5, interval=0.1)  # an exit command may be unmounting right now
    ENGINE_LEFTOVERS.extend(left)
    unmount_under(root)
    unmount_under(run)
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(run, ignore_errors=True)


@pytest.fixture
def engine(berth_dirs: tuple[Path, Path], settings, db) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    """An empty engine: its own root and run directories and an empty database."""
    root, run = berth_dirs
    settings.BERTH_ROOT = root
    settings.BERTH_RUN = run
    settings.BERTH_NET_TAG = net_tag()
    yield root
    _release_network(settings)


def _release_network(settings) -> None:  # type: ignore[no-untyped-def]
    """Take the engine's bridges, nft table and DNS server off the host (they exist once used)."""
    if os.geteuid() != 0:
        return
    from engine.services import networks

    try:
        networks.teardown_host()
    except Exception:  # noqa: BLE001 — a test that left containers running fails on its own
        pass


@pytest.fixture
def engine_tx(berth_dirs: tuple[Path, Path], settings, transactional_db) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    """Like `engine`, but committed: conmon's exit command, a separate process, sees the rows.

    The test database is a file (dashboard/settings.py sets TEST NAME for SQLite), and no transaction
    stays open across the test, so the exit command does not wait on our write lock.
    """
    root, run = berth_dirs
    settings.BERTH_ROOT = root
    settings.BERTH_RUN = run
    settings.BERTH_NET_TAG = net_tag()
    yield root
    _release_network(settings)


def unmount_under(path: Path) -> None:
    prefix = str(path) + "/"
    with open("/proc/self/mountinfo") as f:
        targets = [line.split()[4] for line in f if line.split()[4].startswith(prefix)]
    for target in sorted(targets, key=len, reverse=True):
        subprocess.run(["umount", "-l", target], check=False, capture_output=True)


# What `berth_dirs` found left by the engine of the current test, for the leak guard to report.
ENGINE_LEFTOVERS: list[str] = []


def engine_leftovers(root: Path, run: Path) -> list[str]:
    """The mounts and runc containers still present in one engine's root and run directories."""
    left = [f"mount {m}" for m in _mount_points() if m.startswith((f"{root}/", f"{run}/"))]
    runc_root = run / "runc"
    if runc_root.is_dir():
        left += [f"runc container {p.name}" for p in runc_root.iterdir()]
    return left


def _owned(text: str, base: str) -> bool:
    # The trailing slash: pytest-1 must not claim the temp dirs of a concurrent run's pytest-12.
    return f"/{TMP_PREFIX}" in text or (bool(base) and f"{base}/" in text)


def _mounts(base: str = "") -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f if _owned(line.split()[4], base)}


def _links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=False).stdout
    names = {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line}
    return {n for n in names if n.startswith(NET_PREFIX)}


def _netns() -> set[str]:
    names: set[str] = set()
    for directory in (Path("/run/netns"), Path("/var/run/netns")):
        if directory.is_dir():
            names |= {p.name for p in directory.iterdir() if p.name.startswith(NET_PREFIX)}
    return names


def _conmons(base: str = "") -> set[int]:
    out = subprocess.run(["pgrep", "-x", "conmon"], capture_output=True, text=True, check=False).stdout
    owned = set()
    for pid in out.split():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        if _owned(cmdline, base):
            owned.add(int(pid))
    return owned


def _nft() -> str:
    """The tables of test engines (their names are net tags), as nft prints them."""
    if not shutil.which("nft", path="/usr/sbin:/usr/bin:/sbin"):
        return ""
    run = subprocess.run
    tables = run(["nft", "list", "tables"], capture_output=True, text=True, check=False).stdout.split("\n")
    ours = [
        line.split()[1:3]
        for line in tables
        if len(line.split()) == 3 and line.split()[2].startswith(NET_PREFIX)
    ]
    return "".join(
        run(["nft", "list", "table", family, name], capture_output=True, text=True, check=False).stdout
        for family, name in sorted(ours)
    )


def snapshot(base: str = "") -> dict[str, object]:
    return {
        "mounts": _mounts(base),
        "links": _links(),
        "netns": _netns(),
        "conmon": _conmons(base),
        "nft": _nft(),
    }


def _settled_snapshot(base: str, before: dict[str, object], timeout: float = 10) -> dict[str, object]:
    """The state after a test, once the kernel has finished destroying namespaces in the background.

    A removed network namespace takes its veth pairs with it asynchronously, so a link can outlive
    the namespace file by a few milliseconds; waiting for that is not hiding a leak.
    """
    last: dict[str, object] = {}

    def settled() -> bool:
        last.update(snapshot(base))
        return last["links"] <= before["links"]  # type: ignore[operator,no-any-return]

    settle(settled, timeout=timeout)
    return last


@pytest.fixture
def leak_guard(tmp_path_factory) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Fail the test if it left a mount, link, netns, conmon process or nft rule behind.

    Mounts and conmons count when they belong to this run (its TMP_PREFIX roots or its pytest
    temp dir); links, netns and nft tables when they carry the tests' NET_PREFIX; and whatever
    `berth_dirs` found left in the engine's own directories (mounts, runc containers). Nothing of
    Docker's, Podman's or another run's is counted.
    """
    if os.geteuid() != 0:
        yield
        return
    base = str(tmp_path_factory.getbasetemp())
    before = snapshot(base)
    ENGINE_LEFTOVERS.clear()
    yield
    after = _settled_snapshot(base, before)
    leaks = [f"engine: {sorted(ENGINE_LEFTOVERS)}"] if ENGINE_LEFTOVERS else []
    for key in ("mounts", "links", "netns", "conmon"):
        new = after[key] - before[key]  # type: ignore[operator]
        if new:
            leaks.append(f"{key}: {sorted(new)}")
    if after["nft"] != before["nft"]:
        leaks.append("nft ruleset changed")
    if leaks:
        pytest.fail("test leaked: " + "; ".join(leaks))


# -- the CLI as a user runs it, against a private engine ------------------------------------------

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def _berth_template() -> Iterator[Path]:
    """One migrated and seeded BERTH_ROOT, copied for each test (`manage.py setup` takes seconds)."""
    require_root()
    template = Path(tempfile.mkdtemp(prefix=TMP_PREFIX + "tpl-", dir="/tmp"))
    run = Path(tempfile.mkdtemp(prefix=TMP_PREFIX + "tpl-", dir="/tmp"))
    env = _cli_env(template, run)
    subprocess.run(
        [sys.executable, str(REPO / "manage.py"), "setup"],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    shutil.rmtree(run, ignore_errors=True)
    yield template
    shutil.rmtree(template, ignore_errors=True)


def _cli_env(root: Path, run: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BERTH_TEST_DB")}
    env.update(
        BERTH_ROOT=str(root),
        BERTH_RUN=str(run),
        BERTH_ADMIN_PASSWORD="test-only-password",
        BERTH_NET_TAG=net_tag(),
        DJANGO_SETTINGS_MODULE="dashboard.settings",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


class BerthCLI:
    """`manage.py berth …` in subprocesses against one private engine root, as a user would type it."""

    def __init__(self, root: Path, run: Path) -> None:
        self.root = root
        self.run_dir = run
        self.env = _cli_env(root, run)
        self.argv = [sys.executable, str(REPO / "manage.py"), "berth"]
        self.conmons_before = _conmons()

    def __call__(
        self, *args: str, timeout: float = 120, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*self.argv, *args], env=self.env, capture_output=True, text=True, timeout=timeout, input=input
        )
        # Whatever happens, the CLI never shows a traceback (errors are one `Error: …` line).
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc

    def ok(self, *args: str, timeout: float = 120) -> str:
        proc = self(*args, timeout=timeout)
        assert proc.returncode == 0, f"berth {' '.join(args)} → {proc.returncode}: {proc.stderr}"
        return proc.stdout

    def fail(self, *args: str, timeout: float = 120) -> str:
        """Run a command that must fail; return its one `Error: …` line."""
        proc = self(*args, timeout=timeout)
        assert proc.returncode != 0, f"berth {' '.join(args)} unexpectedly succeeded: {proc.stdout}"
        errors = [line for line in proc.stderr.splitlines() if line.startswith("Error: ")]
        assert len(errors) == 1, proc.stderr
        return errors[0]

    def popen(self, *args: str, **kwargs: object) -> subprocess.Popen[str]:
        return subprocess.Popen([*self.argv, *args], env=self.env, text=True, **kwargs)  # type: ignore[call-overload]

    def inspect(self, ref: str) -> dict:  # type: ignore[type-arg]
        import json

        return json.loads(self.ok("container", "inspect", ref))[0]

    def cleanup(self) -> None:
        """Force-remove every container, then wait for the exit commands conmon started."""
        ids = self("ps", "-aq", "--no-trunc").stdout.split()
        if ids:
            self("rm", "-f", "-v", *ids, timeout=120)
        self.wait_for_engine_processes()
        self("network", "teardown")
        settle_conmons(self.conmons_before)
        # The engine cleans up after itself: no mount, runc container or conmon of this root is
        # left once every container is removed. Checked per root, so other engines on the host
        # (other test runs) cannot make this pass or fail.
        left = [m for m in _mount_points() if m.startswith((f"{self.root}/", f"{self.run_dir}/"))]
        assert not left, f"mounts left by the engine: {left}"
        runc_root = self.run_dir / "runc"
        assert not runc_root.is_dir() or not any(runc_root.iterdir()), list(runc_root.iterdir())
        assert not _processes_with(str(self.run_dir).encode(), where="cmdline")

    def wait_for_engine_processes(self, timeout: float = 60) -> None:
        """Wait until no process of this engine is left (exit commands finish after the container)."""
        marker = f"BERTH_ROOT={self.root}\0".encode()
        if not settle(lambda: not _processes_with(marker), timeout=timeout):
            raise AssertionError(f"engine processes still running: {_processes_with(marker)}")


def settle_conmons(before: set[int], timeout: float = 15) -> None:
    """Wait for exited conmons to be reaped before the leak guard looks.

    conmon daemonises, so its parent is PID 1, which on these hosts reaps orphans only after a
    second or two: a `[conmon] <defunct>` that is about to go is not a leak.
    """
    settle(lambda: not _conmons() - before, timeout=timeout, interval=0.1)


def _mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


def _processes_with(marker: bytes, *, where: str = "environ") -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            if marker in Path(f"/proc/{entry}/{where}").read_bytes():
                found.append(int(entry))
        except OSError:
            continue
    return found


@pytest.fixture
def berth_cli(_berth_template: Path) -> Iterator[BerthCLI]:
    """A fresh engine (a copy of the migrated, seeded template) driven through the CLI."""
    root = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir="/tmp"))
    run = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir="/run" if os.access("/run", os.W_OK) else "/tmp"))
    root.rmdir()
    shutil.copytree(_berth_template, root, symlinks=True)
    cli = BerthCLI(root, run)
    try:
        yield cli
    finally:
        try:
            cli.cleanup()
        finally:
            unmount_under(root)
            unmount_under(run)
            shutil.rmtree(root, ignore_errors=True)
            shutil.rmtree(run, ignore_errors=True)


def pytest_sessionfinish(session, exitstatus) -> None:  # type: ignore[no-untyped-def]
    """Remove this run's file test database and its WAL files, which late exit commands may reopen."""
    from django.conf import settings

    name = str(settings.DATABASES["default"].get("TEST", {}).get("NAME") or "")
    if name.startswith("/tmp/berth-test-"):
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(name + suffix).unlink(missing_ok=True)
