"""Benchmark: the Docker API server and the thin `berth` CLI, each against a baseline from the same run.

    .venv/bin/python bench/api.py [--reps 15] [--profile]

A private engine (BERTH_ROOT/BERTH_RUN under /tmp and /run, BERTH_NET_TAG=bbapi) runs `berth serve-api`;
the real docker CLI talks to it. Measured, alternating the two sides sample by sample, medians:
  1. `docker run --rm --network none busybox true` through the socket vs the same through the services
     in this warm process (containers.create + lifecycle.start + wait + remove). Goal <= 1.3x.
  2. `docker ps -a` with 100 created containers vs list_containers + refresh in this process, and
     `docker logs` of a 100,000-line container vs containerinfo.logs() here (every line read).
  3. `berth ps` (.venv/bin/berth: the thin client) vs `docker ps` against the same server. Goal <= 3x.
  4. `berth run --rm busybox true` as typed in a shell vs `podman run --rm --network none busybox true`.
     Goal <= 1.0x. Podman is installed with apt-get if missing (said so), runs on a private storage root
     with busybox loaded from a `berth save` archive, and its storage is removed at the end.
--profile runs the server under cProfile during 10 `docker run --rm` and prints where its time goes.
Between samples the bench waits until conmon's exit commands of the previous one have finished.
Everything (containers, server, podman's images and storage, network state, temp dirs) is removed at
the end, even after a failure or a signal.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cleanup import exit_cleanly_on_signals, hold_signals, remove_containers, remove_dirs, unmount_all

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
BERTH = REPO / ".venv" / "bin" / "berth"
sys.path.insert(0, str(REPO))

if "--serve-profiled" in sys.argv:  # the bench's own server child: the parent's engine
    ROOT, RUN = Path(os.environ["BERTH_ROOT"]), Path(os.environ["BERTH_RUN"])
else:
    ROOT = Path(tempfile.mkdtemp(prefix="bt-api-", dir="/tmp"))
    RUN = Path(tempfile.mkdtemp(prefix="bt-api-", dir="/run" if os.access("/run", os.W_OK) else "/tmp"))
os.environ.update(
    BERTH_ROOT=str(ROOT),
    BERTH_RUN=str(RUN),
    BERTH_ADMIN_PASSWORD="bench-only",
    DJANGO_SETTINGS_MODULE="dashboard.settings",
    BERTH_NET_TAG="bbapi",  # bridge bbapi0 and nft table bbapi: a real install is never touched
    BERTH_DNS_NO_FORWARD="1",
    BERTH_MONITOR="0",
    DOCKER_HOST=f"unix://{RUN}/docker.sock",
    DOCKER_CONFIG=str(ROOT / "docker-config"),
    DOCKER_CLI_HINTS="false",
)
os.environ.pop("DATABASE_URL", None)
# As after any first run of the launcher: the thin client's bytecode is cached (this environment
# variable would make every run compile engine/cli/thin.py again, ~9 ms).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
PODMAN_ROOT = ROOT / "podman"
PODMAN = [
    "podman",
    "--root", str(PODMAN_ROOT / "storage"),
    "--runroot", str(RUN / "podman-run"),
    "--tmpdir", str(RUN / "podman-tmp"),
    "--cgroup-manager", "cgroupfs",
    "--events-backend", "file",
]  # fmt: skip
PODMAN_RUN = [
    "run", "--rm", "--runtime", "runc", "--network", "none",
    "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096", "busybox", "true",
]  # fmt: skip
RUN_GOAL, THIN_PS_GOAL, PODMAN_GOAL = 1.3, 3.0, 1.0
LOG_LINES = 100_000
PS_CONTAINERS = 100


def setup_django() -> None:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    from engine.services import system

    system.seed()


def run(cmd: list[str], *, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    # podman reads DOCKER_CONFIG for registry auth and fails if it names a missing file
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_CONFIG"} if cmd[0] == "podman" else None
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False)
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.decode()[-2000:]}")
    return proc


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def settle(timeout: float = 30) -> None:
    """Wait until no exit command (`container-exited`) of this engine runs: it must not eat the next sample."""
    marker = f"BERTH_ROOT={ROOT}".encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = False
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                if b"container-exited" in cmdline and (
                    marker in cmdline or marker in Path(f"/proc/{pid}/environ").read_bytes()
                ):
                    busy = True
                    break
            except OSError:
                continue
        if not busy:
            return
        time.sleep(0.01)


def alternate(
    a: Callable[[], object], b: Callable[[], object], reps: int, *, between=settle
) -> tuple[list[float], list[float]]:  # type: ignore[no-untyped-def]
    """Time a and b alternately (the order flips every round so drift hits both alike)."""
    ta: list[float] = []
    tb: list[float] = []
    for i in range(reps):
        pair = ((a, ta), (b, tb)) if i % 2 == 0 else ((b, tb), (a, ta))
        for fn, samples in pair:
            samples.append(timed(fn))
            between()
    return ta, tb


def report(rows: list[tuple[str, list[float], list[float], float | None]]) -> None:
    print(f"{'measurement':<48} {'median':>10} {'baseline':>10} {'ratio':>7}  goal")
    for name, side, base, goal in rows:
        m, b = statistics.median(side), statistics.median(base)
        ratio = m / b
        verdict = "" if goal is None else f"<= {goal:.1f}x: {'met' if ratio <= goal else 'NOT met'}"
        print(f"{name:<48} {m * 1000:>8.1f}ms {b * 1000:>8.1f}ms {ratio:>6.2f}x  {verdict}")


# --- the server ----------------------------------------------------------------------------------


class ApiServer:
    def __init__(self, *, profile: Path | None = None) -> None:
        if profile is None:
            argv = [PYTHON, str(REPO / "manage.py"), "berth", "serve-api"]
        else:
            argv = [PYTHON, str(Path(__file__).resolve()), "--serve-profiled", str(profile)]
        self.log = open(ROOT / "serve-api.log", "ab")  # noqa: SIM115 — closed in stop()
        self.proc = subprocess.Popen(argv, cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT)
        path = RUN / "docker.sock"
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(
                    f"serve-api exited {self.proc.returncode}: {(ROOT / 'serve-api.log').read_text()}"
                )
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(str(path))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("serve-api did not listen within 60 s") from None
                time.sleep(0.05)
            finally:
                probe.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# --- 1. run --rm ----------------------------------------------------------------------------------


def in_process_run() -> None:
    from engine.services import containers, lifecycle
    from engine.services.options import ContainerOptions

    container = containers.create(
        ContainerOptions(image="busybox", command=("true",), auto_remove=True, network="none")
    )
    lifecycle.start(container.id)
    code = lifecycle.wait(container.id)
    lifecycle.remove(container.id, force=True, volumes=True)
    assert code == 0


def docker_run() -> None:
    run(["docker", "run", "--rm", "--network", "none", "busybox", "true"])


# --- 2. ps with 100 containers, logs of 100,000 lines -----------------------------------------------


def make_containers(count: int) -> list[str]:
    from engine.services import containers
    from engine.services.options import ContainerOptions

    return [
        containers.create(
            ContainerOptions(image="busybox", name=f"bbapi-{i}", command=("sleep", "1"), network="none")
        ).id
        for i in range(count)
    ]


def in_process_ps() -> None:
    from engine.services import containers, lifecycle

    rows = [lifecycle.refresh(c) for c in containers.list_containers(all=True)]
    assert len(rows) >= PS_CONTAINERS


def make_log_container() -> str:
    from engine.services import containers, lifecycle
    from engine.services.options import ContainerOptions

    c = containers.create(
        ContainerOptions(
            image="busybox", name="bbapi-logs", command=("seq", "1", str(LOG_LINES)), network="none"
        )
    )
    lifecycle.start(c.id)
    assert lifecycle.wait(c.id) == 0
    return c.id


def in_process_logs(cid: str) -> Callable[[], None]:
    from engine.services import containerinfo

    def read() -> None:
        n = sum(1 for _ in containerinfo.logs(cid, containerinfo.LogQuery()))
        assert n == LOG_LINES, n

    return read


def docker_logs(cid: str) -> Callable[[], None]:
    def read() -> None:
        out = subprocess.run(["docker", "logs", cid], capture_output=True, check=True).stdout
        assert out.count(b"\n") == LOG_LINES, out.count(b"\n")

    return read


# --- 4. podman --------------------------------------------------------------------------------------


# Host paths podman (netavark) creates on first use even with --network none; removed again if they
# did not exist before the bench.
PODMAN_HOST_DIRS = [Path("/run/containers/networks"), Path("/run/containers")]
_podman_created: list[Path] = []


def prepare_podman() -> str | None:
    """Podman ready with busybox loaded, or the reason it cannot run."""
    _podman_created[:] = [p for p in PODMAN_HOST_DIRS if not p.exists()]
    if not shutil.which("podman"):
        print("podman is not installed: apt-get install -y --no-install-recommends podman")
        apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        proc = subprocess.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", "podman"],
            env=apt_env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode != 0 or not shutil.which("podman"):
            return f"apt-get install podman failed: {proc.stderr.strip()[-500:]}"
    archive = ROOT / "busybox.tar"
    saved = subprocess.run(
        [str(BERTH), "save", "-o", str(archive), "busybox"], capture_output=True, text=True, check=False
    )
    if saved.returncode != 0:
        return f"berth save busybox failed: {saved.stderr.strip()}"
    PODMAN_ROOT.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_CONFIG"}
    loaded = subprocess.run(
        [*PODMAN, "load", "-i", str(archive)], env=env, capture_output=True, text=True, check=False
    )
    if loaded.returncode != 0:
        return f"podman load failed: {loaded.stderr.strip()[-500:]}"
    trial = subprocess.run([*PODMAN, *PODMAN_RUN], env=env, capture_output=True, text=True, check=False)
    if trial.returncode != 0:
        return f"podman run failed: {trial.stderr.strip()[-500:]}"
    return None


def clean_podman() -> None:
    if not shutil.which("podman") or not PODMAN_ROOT.exists():
        return
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_CONFIG"}
    for command in (["rm", "-a", "-f"], ["rmi", "-a", "-f"], ["system", "reset", "-f"]):
        subprocess.run([*PODMAN, *command], env=env, capture_output=True, check=False)
    for path in (PODMAN_ROOT, RUN / "podman-run", RUN / "podman-tmp"):
        unmount_all(path)
        shutil.rmtree(path, ignore_errors=True)
    for path in _podman_created:
        try:
            path.rmdir()
        except OSError as exc:
            print(f"cleanup: podman left {path}: {exc.strerror}", file=sys.stderr)


# --- main -------------------------------------------------------------------------------------------


def serve_profiled(outdir: Path) -> int:
    """`serve-api` with every connection thread under cProfile and every request timed (--profile).

    cProfile sees one thread only, and the server serves each connection in its own: so each
    connection gets a profiler, and the stats are merged when SIGTERM ends the server.
    """
    import cProfile
    import re
    import threading

    import django

    django.setup()
    from engine.api import server as api_server
    from engine.services import supervision

    lock = threading.Lock()
    profiles: list[cProfile.Profile] = []
    timings: list[str] = []
    serve, handle = api_server.Connection.serve, api_server.Connection._handle

    def profiled_serve(self: api_server.Connection) -> None:
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            serve(self)
        finally:
            profiler.disable()
            with lock:
                profiles.append(profiler)

    def timed_handle(self: api_server.Connection, event: object) -> str:
        t0 = time.perf_counter()
        try:
            return handle(self, event)  # type: ignore[arg-type]
        finally:
            target = event.target.decode().partition("?")[0]  # type: ignore[attr-defined]
            target = re.sub(r"/v1\.\d+", "", re.sub(r"[0-9a-f]{64}", "{id}", target))
            with lock:
                timings.append(f"{event.method.decode()} {target}\t{time.perf_counter() - t0:.6f}")  # type: ignore[attr-defined]

    api_server.Connection.serve = profiled_serve  # type: ignore[method-assign]
    api_server.Connection._handle = timed_handle  # type: ignore[method-assign]
    server = api_server.Server()
    signal.signal(signal.SIGTERM, lambda *_: server.close())
    supervision.reconcile_all()
    server.serve_forever()
    time.sleep(0.5)  # connection threads that are finishing add their profiles
    outdir.mkdir(parents=True, exist_ok=True)
    with lock:
        for n, profiler in enumerate(profiles):
            profiler.dump_stats(str(outdir / f"conn-{n}.prof"))
        (outdir / "timings.tsv").write_text("\n".join(timings) + "\n")
    return 0


def profile_server(reps: int) -> None:
    """Run `docker run --rm` against a profiled server; print per-request times and the hot spots."""
    import pstats

    outdir = ROOT / "serve-api-profile"
    server = ApiServer(profile=outdir)
    try:
        for _ in range(reps):
            docker_run()
            settle()
    finally:
        server.stop()
    by_request: dict[str, list[float]] = {}
    for line in (outdir / "timings.tsv").read_text().splitlines():
        request, _, seconds = line.partition("\t")
        by_request.setdefault(request, []).append(float(seconds))
    print(f"--- the server during {reps} x docker run --rm --network none busybox true")
    print(f"{'request':<40} {'n':>3} {'median ms':>10}  (wait and attach last until the exit)")
    for request, samples in sorted(by_request.items()):
        print(f"{request:<40} {len(samples):>3} {statistics.median(samples) * 1000:>10.1f}")
    files = sorted(str(p) for p in outdir.glob("conn-*.prof"))
    for order, count in (("tottime", 25), ("cumulative", 60)):
        out = io.StringIO()
        pstats.Stats(*files, stream=out).sort_stats(order).print_stats(count)
        text = out.getvalue()
        print(f"--- merged connection threads, by {order}")
        print(text[text.index("function calls") - 20 :] if "function calls" in text else text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--only-profile", action="store_true", help="skip the measurements")
    parser.add_argument("--serve-profiled", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_profiled:
        return serve_profiled(args.serve_profiled)
    exit_cleanly_on_signals()
    if os.geteuid() != 0:
        raise SystemExit("run as root (runc, conmon and overlay mounts need it)")
    if "engine.cli.thin" not in BERTH.read_text():
        raise SystemExit(f"{BERTH} is not the thin launcher: run `make venv`")
    Path(os.environ["DOCKER_CONFIG"]).mkdir()
    server: ApiServer | None = None
    django_ready = False
    try:
        setup_django()
        django_ready = True
        thin_modules = sorted(str(p) for p in (REPO / "engine" / "cli").glob("thin*.py"))
        thin_modules.append(str(REPO / "engine" / "humanize.py"))  # thinformat's human formats
        subprocess.run([PYTHON, "-m", "py_compile", *thin_modules], check=True)
        if args.only_profile:
            profile_server(args.reps)
            return 0
        server = ApiServer()
        # Warm both sides (imports, seccomp profile, the server's first connection).
        for _ in range(2):
            docker_run()
            in_process_run()
            settle()
        rows: list[tuple[str, list[float], list[float], float | None]] = []
        sock, local = alternate(docker_run, in_process_run, args.reps)
        rows.append(("1. docker run --rm --network none (socket)", sock, local, RUN_GOAL))

        make_containers(PS_CONTAINERS)
        sock, local = alternate(
            lambda: run(["docker", "ps", "-a"]), in_process_ps, args.reps, between=lambda: None
        )
        rows.append((f"2. docker ps -a, {PS_CONTAINERS} containers", sock, local, None))
        cid = make_log_container()
        settle()
        sock, local = alternate(
            docker_logs(cid), in_process_logs(cid), max(args.reps // 3, 3), between=lambda: None
        )
        rows.append((f"2. docker logs, {LOG_LINES:,} lines", sock, local, None))

        # The thin client must answer through the server: with Django unusable a fall-back would fail.
        poisoned = {**os.environ, "DJANGO_SETTINGS_MODULE": "bbapi_no_such_settings"}
        if subprocess.run([str(BERTH), "ps"], env=poisoned, capture_output=True).returncode != 0:
            raise SystemExit("berth ps did not go through the server (it fell back to manage.py)")
        thin_ps, docker_ps = alternate(
            lambda: run([str(BERTH), "ps"]), lambda: run(["docker", "ps"]), args.reps, between=lambda: None
        )
        rows.append(("3. berth ps (thin) vs docker ps", thin_ps, docker_ps, THIN_PS_GOAL))
        thin_ps, docker_ps = alternate(
            lambda: run([str(BERTH), "ps", "-a"]),
            lambda: run(["docker", "ps", "-a"]),
            args.reps,
            between=lambda: None,
        )
        rows.append((f"3. berth ps -a vs docker ps -a, {PS_CONTAINERS} rows", thin_ps, docker_ps, None))
        remove_containers()
        settle()

        why_not = prepare_podman()
        berth_run = lambda: run([str(BERTH), "run", "--rm", "busybox", "true"])  # noqa: E731
        berth_none = lambda: run([str(BERTH), "run", "--rm", "--network", "none", "busybox", "true"])  # noqa: E731
        if why_not is None:
            podman = lambda: run([*PODMAN, *PODMAN_RUN])  # noqa: E731
            b, p = alternate(berth_run, podman, args.reps)
            rows.append(("4. berth run --rm (bridge) vs podman (none)", b, p, PODMAN_GOAL))
            b, p = alternate(berth_none, podman, args.reps)
            rows.append(("4. berth run --rm --network none vs podman", b, p, None))
        else:
            print(f"podman cannot run here, line 4 skipped: {why_not}")
        print()
        report(rows)
        if args.profile:
            server.stop()
            server = None
            profile_server(args.reps)
        return 0
    finally:
        hold_signals()
        if server is not None:
            server.stop()
        if django_ready:
            for step in (remove_containers, settle, teardown_network):
                try:
                    step()
                except Exception as exc:  # noqa: BLE001
                    print(f"cleanup ({step.__name__}): {exc}", file=sys.stderr)
        clean_podman()
        remove_dirs(ROOT, RUN)


def teardown_network() -> None:
    from engine.services import networks

    networks.teardown_host()


if __name__ == "__main__":
    sys.exit(main())
