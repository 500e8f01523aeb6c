"""Benchmark: time from the call to the exit code of `run --rm busybox true`, against two baselines.

    .venv/bin/python bench/start_latency.py [--reps 15] [--profile]

Measured in the same run, on the same busybox layers and the same OCI spec as the engine writes:
  runc        bare `runc run` of an equivalent bundle (an overlay of the image's layers)
  conmon      conmon create (engine.runtime.conmon.spawn), `runc start`, exit file, `runc delete`
  in-process  containers.create + lifecycle.start + lifecycle.wait through the services; the removal
              (--rm) happens after the code is returned and is waited for outside the timing. Twice:
              with --network none (loopback only) and on the default bridge (netns, veth, address)
  cli         `manage.py berth run --rm busybox true` as a user types it (default bridge)
  podman      `podman run --rm --network none busybox true`, only if podman is installed
and prints the medians and each as a ratio to both baselines, and the median extra time the bridge
set-up adds over --network none (per round, the two runs are back to back).
Goals: in-process --network none <= 1.1x conmon; the bridge adds <= 10 ms (median).
--profile runs the in-process path (none, then bridge) under cProfile and prints where the time goes.
Everything (containers, mounts, cgroups, temp dirs, the bridge, nft table and DNS server of the
private network tag "bbench") is removed at the end, even after a failure.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cleanup import exit_cleanly_on_signals, hold_signals, remove_containers, remove_dirs

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
sys.path.insert(0, str(REPO))

ROOT = Path(tempfile.mkdtemp(prefix="bt-bench-", dir="/tmp"))
RUN = Path(tempfile.mkdtemp(prefix="bt-bench-", dir="/run" if os.access("/run", os.W_OK) else "/tmp"))
os.environ.update(
    BERTH_ROOT=str(ROOT),
    BERTH_RUN=str(RUN),
    BERTH_ADMIN_PASSWORD="bench-only",
    DJANGO_SETTINGS_MODULE="dashboard.settings",
    # A private tag names the default bridge (bbench0) and the nft table, so a real install is never
    # touched; aardvark-dns must never forward a query off the machine.
    BERTH_NET_TAG="bbench",
    BERTH_DNS_NO_FORWARD="1",
)
NONE_GOAL = 1.10  # in-process --network none, as a ratio to conmon+runc
BRIDGE_EXTRA_GOAL_MS = 10.0  # median time the default bridge adds over --network none
os.environ.pop("DATABASE_URL", None)


def _setup_django() -> None:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    from engine.services import system

    system.seed()


def _time(fn: Callable[[], object], reps: int, *, between: Callable[[], None] | None = None) -> list[float]:
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
        if between is not None:
            between()
    return out


class Baselines:
    """A bundle equivalent to the engine's (same spec builder, seccomp and masks) on an overlay."""

    def __init__(self) -> None:
        from engine.runtime import cgroups, seccomp, spec
        from engine.services import images, imagestore
        from engine.store import overlay

        self.base = Path(tempfile.mkdtemp(prefix="bb-", dir=str(RUN)))
        self.bundle = self.base / "bundle"
        for d in ("bundle/rootfs", "upper", "work", "exits", "sockets", "runc"):
            (self.base / d).mkdir(parents=True)
        image = images.resolve("busybox")
        overlay.mount_overlay(
            imagestore.layer_paths(image),
            upper=self.base / "upper",
            work=self.base / "work",
            target=self.bundle / "rootfs",
        )
        self.rootfs = self.bundle / "rootfs"
        self.runc_root = self.base / "runc"
        self.n = 0
        self._spec = lambda cid: spec.build_spec(
            spec.SpecInput(
                args=["true"],
                rootfs=str(self.rootfs),
                env=["PATH=" + spec.DEFAULT_PATH],
                hostname=cid[:12],
                cgroups_path=cgroups.cgroups_path_for(cid),
                cgroup_v2=cgroups.detect_mode() == "v2",
                masked_paths=spec.thermal_throttle_paths(),
            ),
            seccomp=seccomp.default_profile(),
        )

    def _next(self) -> str:
        self.n += 1
        cid = f"benchbase{os.getpid()}x{self.n}"
        (self.bundle / "config.json").write_text(json.dumps(self._spec(cid)))
        return cid

    def runc_run(self) -> None:
        cid = self._next()
        t0 = time.perf_counter()
        subprocess.run(
            ["runc", "--root", str(self.runc_root), "run", "--bundle", str(self.bundle), cid],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
        )
        self.elapsed = time.perf_counter() - t0
        self._cleanup_cgroup(cid)

    def conmon_sequence(self) -> None:
        from engine import conf
        from engine.runtime import conmon

        cid = self._next()
        pidfile = self.base / f"{cid}.pid"
        conmon_pidfile = self.base / f"{cid}.conmon.pid"
        t0 = time.perf_counter()
        conmon.spawn(
            conmon=conf.conmon_binary(),
            runtime=conf.runtime_binary(),
            runtime_root=self.runc_root,
            container_id=cid,
            name=cid,
            bundle=self.bundle,
            log_path=self.base / f"{cid}.log",
            log_max_size=None,
            exit_dir=self.base / "exits",
            socket_dir=self.base / "sockets",
            pidfile=pidfile,
            conmon_pidfile=conmon_pidfile,
        )
        runc = ["runc", "--root", str(self.runc_root)]
        subprocess.run([*runc, "start", cid], check=True, capture_output=True)
        while conmon.read_exit_code(self.base / "exits", cid) is None:
            time.sleep(0.001)
        subprocess.run([*runc, "delete", cid], check=True, capture_output=True)
        self.elapsed = time.perf_counter() - t0
        self._cleanup_cgroup(cid)
        (self.base / f"{cid}.log").unlink(missing_ok=True)

    def _cleanup_cgroup(self, cid: str) -> None:
        from engine.runtime import cgroups

        for _ in range(200):
            if cgroups.remove(cid):
                return
            time.sleep(0.01)

    def close(self) -> None:
        from engine.store import overlay

        for line in subprocess.run(
            ["runc", "--root", str(self.runc_root), "list", "-q"], capture_output=True, text=True
        ).stdout.split():
            subprocess.run(["runc", "--root", str(self.runc_root), "delete", "-f", line], check=False)
        overlay.unmount(self.rootfs)
        shutil.rmtree(self.base, ignore_errors=True)


def run_in_process(network: str = "none") -> int:
    """What `run --rm --network NETWORK busybox true` does through the services, up to the exit code."""
    from engine.services import containers, lifecycle
    from engine.services.options import ContainerOptions

    container = containers.create(
        ContainerOptions(image="busybox", command=("true",), auto_remove=True, network=network)
    )
    lifecycle.start(container.id)
    return lifecycle.wait(container.id)


def wait_removed(timeout: float = 60.0) -> None:
    """Wait (untimed) until every --rm container is gone: conmon's exit command removes it."""
    from engine.models import Container

    deadline = time.monotonic() + timeout
    while Container.objects.exists():
        if time.monotonic() > deadline:
            raise SystemExit("containers were not removed by their exit command")
        time.sleep(0.02)
    _settle()


def _settle() -> None:
    """Let the exit-command processes finish so they do not compete with the next sample."""
    me = str(ROOT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        busy = False
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                if f"BERTH_ROOT={me}".encode() in Path(f"/proc/{pid}/environ").read_bytes():
                    busy = True
                    break
            except OSError:
                continue
        if not busy:
            return
        time.sleep(0.02)


def run_cli() -> None:
    proc = subprocess.run(
        [PYTHON, str(REPO / "manage.py"), "berth", "run", "--rm", "busybox", "true"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"cli run failed: {proc.stderr}")


def cleanup_engine() -> None:
    remove_containers()
    _settle()


def teardown_network() -> None:
    """Take the private tag's bridges, nft table and DNS server off the host (no container runs now)."""
    from engine.services import networks

    networks.teardown_host()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--cli-reps", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    exit_cleanly_on_signals()
    base = None
    django_ready = False
    try:
        if os.geteuid() != 0:
            raise SystemExit("run as root (runc, conmon and overlay mounts need it)")
        _setup_django()
        django_ready = True
        base = Baselines()
        runc_t, conmon_t, none_t, bridge_t = [], [], [], []
        # Warm caches (imports, seccomp profile) as a long-lived server has them; the first bridge
        # run also creates the default bridge and its nft table, which a server does once.
        for network in ("none", "bridge"):
            run_in_process(network)
            wait_removed()
        for _ in range(args.reps):
            # Interleaved, so drift on the machine affects all four alike.
            base.runc_run()
            runc_t.append(base.elapsed)
            base.conmon_sequence()
            conmon_t.append(base.elapsed)
            # The order flips every round: a namespace the kernel is still destroying (the previous
            # run's) slows whatever runs next, and must not always land on the same side.
            pair = (("none", none_t), ("bridge", bridge_t))
            for network, samples in pair if len(none_t) % 2 == 0 else pair[::-1]:
                t0 = time.perf_counter()
                code = run_in_process(network)
                samples.append(time.perf_counter() - t0)
                assert code == 0, (network, code)
                wait_removed()
        cli_t = _time(run_cli, args.cli_reps, between=wait_removed)
        podman_t: list[float] = []
        if shutil.which("podman"):
            cmd = ["podman", "run", "--rm", "--network", "none", "busybox", "true"]
            podman_t = _time(lambda: subprocess.run(cmd, capture_output=True, check=True), args.cli_reps)
        r, c = statistics.median(runc_t), statistics.median(conmon_t)
        print(f"{'path':<22} {'median ms':>10} {'x runc':>8} {'x conmon':>9}")
        rows = [
            ("runc run", runc_t),
            ("conmon+runc", conmon_t),
            ("in-process none", none_t),
            ("in-process bridge", bridge_t),
            ("cli (bridge)", cli_t),
        ]
        if podman_t:
            rows.append(("podman", podman_t))
        else:
            print("(podman is not installed: no podman ratio)")
        for name, samples in rows:
            m = statistics.median(samples)
            print(f"{name:<22} {m * 1000:>10.1f} {m / r:>8.2f} {m / c:>9.2f}")
        ratio = statistics.median(none_t) / c
        print(
            f"goal: in-process --network none <= {NONE_GOAL:.2f}x conmon+runc: "
            f"{'met' if ratio <= NONE_GOAL else 'NOT met'} ({ratio:.2f}x)"
        )
        # Each round ran none and bridge back to back: the paired difference is the bridge's cost.
        extra = statistics.median(b - n for b, n in zip(bridge_t, none_t, strict=True)) * 1000
        gap = (statistics.median(bridge_t) - statistics.median(none_t)) * 1000
        print(
            f"bridge network set-up over --network none: median {extra:+.1f} ms per round "
            f"(difference of medians {gap:+.1f} ms); goal <= {BRIDGE_EXTRA_GOAL_MS:.0f} ms: "
            f"{'met' if extra <= BRIDGE_EXTRA_GOAL_MS else 'NOT met'}"
        )
        if args.profile:
            for network in ("none", "bridge"):
                profiler = cProfile.Profile()
                for _ in range(10):
                    profiler.enable()
                    run_in_process(network)
                    profiler.disable()
                    wait_removed()
                print(f"--- profile: 10 x in-process --network {network}")
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
        return 0
    finally:
        hold_signals()
        for step in (cleanup_engine, teardown_network) if django_ready else ():
            try:
                step()
            except Exception as exc:  # noqa: BLE001
                print(f"cleanup ({step.__name__}): {exc}", file=sys.stderr)
        if base is not None:
            base.close()
        remove_dirs(ROOT, RUN)


if __name__ == "__main__":
    sys.exit(main())
