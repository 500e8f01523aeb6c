"""Turning a container record into a running runc container, and back (internal to the services).

`launch` mounts the rootfs, writes the container's own hosts/hostname/resolv.conf, builds the OCI
spec and has conmon create the container; every step registers its undo. `teardown` is the
reverse and is safe to call twice: each step treats "already gone" as done.

Over 400 lines because launch and teardown are one undo-stacked sequence (paths, rootfs, spec, conmon, cgroup,
exit marker) whose steps and their undos read best side by side.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection

from engine import conf, events
from engine.errors import InvalidArgument, RuntimeFailure, UnsafeRootfs
from engine.models import Container, Mount
from engine.runtime import cgroups, conmon, seccomp, spec, tmpfs, users
from engine.runtime.runc import ContainerGone, Runc
from engine.services import bindpolicy, imagestore, logkeeping, metrics, netsetup, volumes
from engine.store import fdcopy, overlay, rootcheck
from engine.undo import UndoStack

logger = logging.getLogger(__name__)

INIT_PATH = "/run/berth-init"
INIT_BINARIES = ("/usr/bin/tini-static", "/usr/bin/catatonit")
MANAGE_PY = Path(settings.BASE_DIR) / "manage.py"
# Held around conmon.spawn: execs.open_terminal briefly makes this process a subreaper, and a conmon
# daemonising inside that window would be adopted (and left a zombie) instead of going to PID 1.
ADOPTION_LOCK = threading.Lock()


@dataclass(frozen=True)
class Paths:
    bundle: Path
    rootfs: Path
    upper: Path
    work: Path
    userdata: Path
    log: Path
    exit_dir: Path
    socket_dir: Path
    pidfile: Path
    conmon_pidfile: Path

    @property
    def exit_file(self) -> Path:
        return self.exit_dir / self.bundle.name

    @property
    def ctl(self) -> Path:
        return conmon.ctl_path(self.bundle)

    @property
    def attach_socket(self) -> Path:
        return conmon.attach_socket_path(self.bundle)


def paths(container_id: str) -> Paths:
    bundle = conf.containers_dir() / container_id
    state = conf.run_dir() / "containers" / container_id
    return Paths(
        bundle=bundle,
        rootfs=bundle / "merged",
        upper=bundle / "upper",
        work=bundle / "work",
        userdata=bundle / "userdata",
        log=bundle / "ctr.log",
        exit_dir=conf.run_dir() / "exits",
        socket_dir=conf.run_dir() / "sockets",
        pidfile=state / "pidfile",
        conmon_pidfile=state / "conmon.pid",
    )


def runc() -> Runc:
    return Runc(conf.runtime_binary(), conf.run_dir() / "runc")


def launch(container: Container, *, undo: UndoStack) -> conmon.SpawnResult:
    """Mount, write the spec and create the container through conmon (state `created` in runc)."""
    p = paths(container.id)
    for directory in (p.exit_dir, p.socket_dir, p.pidfile.parent, conf.run_dir() / "runc"):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    p.exit_file.unlink(missing_ok=True)
    exit_handled_marker(container.id).unlink(missing_ok=True)  # this run's exit is the exit command's
    _delete_runc_container(container.id)  # a stale one from a crash would make create fail
    lowers = imagestore.layer_paths(container.image)
    p.rootfs.mkdir(mode=0o755, exist_ok=True)
    if not overlay.is_mounted(p.rootfs):
        overlay.mount_overlay(lowers, upper=p.upper, work=p.work, target=p.rootfs)
        undo.push(overlay.unmount, p.rootfs)
    netns_path = netsetup.setup(container, p.userdata, undo=undo)
    _copy_up_volumes(container, p)
    inp = _spec_input(container, p, netns_path)
    host = container.host_config
    profile = (
        None
        if host.get("Privileged") or "seccomp=unconfined" in (host.get("SecurityOpt") or [])
        else _resolved_seccomp(spec.effective_caps(inp.cap_add, inp.cap_drop, privileged=inp.privileged))
    )
    document = spec.build_spec(inp, seccomp=profile)
    _refuse_symlinked_paths(container, p.rootfs, document["mounts"])
    # Written again at every start, so a crash cannot leave a stale one that matters: no fsync.
    write_atomic(p.bundle / "config.json", json.dumps(document).encode(), sync=False)
    log_max = _conmon_log_cap(host)
    with ADOPTION_LOCK:
        result = _spawn(container, p, log_max)
    undo.push(teardown, container.id)
    # Rotation at max-size must not depend on the web server running (issue 10, finding 8).
    logkeeping.register(container, log=p.log, ctl=p.ctl, conmon_pidfile=p.conmon_pidfile, lock=ADOPTION_LOCK)
    metrics.ensure_sampler()  # history is recorded with or without the server (issue 12)
    return result


def _refuse_symlinked_paths(container: Container, rootfs: Path, mounts: list[dict[str, Any]]) -> None:
    """Refuse to start when runc would follow a symlink on a path it mounts on or creates (rootcheck)."""
    try:
        found = rootcheck.find_symlink(str(rootfs), mounts)
    except OSError as exc:
        raise RuntimeFailure(f"cannot check the root file system of {container.name}: {exc}") from exc
    if found is not None:
        raise UnsafeRootfs(
            f"image {container.image_ref}: {found.path} is a symlink (to {found.target[:200]}); "
            "refusing to start: the runtime would follow it to the host"
        )


def _spawn(container: Container, p: Paths, log_max: int | None) -> conmon.SpawnResult:
    return conmon.spawn(
        conmon=conf.conmon_binary(),
        runtime=conf.runtime_binary(),
        runtime_root=conf.run_dir() / "runc",
        container_id=container.id,
        name=container.name,
        bundle=p.bundle,
        log_path=p.log,
        log_max_size=log_max,
        exit_dir=p.exit_dir,
        socket_dir=p.socket_dir,
        pidfile=p.pidfile,
        conmon_pidfile=p.conmon_pidfile,
        terminal=bool(container.config.get("Tty")),
        stdin=bool(container.config.get("OpenStdin")),
        exit_command=exit_command(container.id),
    )


@functools.lru_cache(maxsize=32)
def _resolved_seccomp_cached(caps: tuple[str, ...]) -> str:
    return json.dumps(seccomp.resolve(seccomp.default_profile(), caps))


def _resolved_seccomp(caps: list[str]) -> dict[str, Any]:
    """The default profile resolved for these capabilities, computed once per capability set.

    Resolving (and copying) the profile at every start cost milliseconds on the start path; the
    result is already in OCI form, which build_spec passes through.
    """
    return json.loads(_resolved_seccomp_cached(tuple(sorted(caps))))


@functools.cache
def _thermal_throttle_paths() -> tuple[str, ...]:
    return tuple(spec.thermal_throttle_paths())  # the host's CPUs do not change under us


@functools.cache
def _cgroup_v2() -> bool:
    return cgroups.detect_mode() == "v2"


def _conmon_log_cap(host: dict[str, Any]) -> int | None:
    """conmon's --log-size-max: none while the engine rotates (max-file > 1), else max-size.

    conmon 2.1.6 counts bytes since its start, not since its last reopen: at every multiple of its
    cap it truncates the live file, whatever was rotated meanwhile, so any cap loses lines. The log
    keeper (runtime/logkeeper) rotates at max-size with or without the web server. With max-file 1
    there is nothing to rotate into and conmon's truncation at max-size is Docker's behaviour.
    """
    size, files = logkeeping.limits(host)
    return None if files > 1 else size


def engine_env() -> dict[str, str]:
    """The settings a helper process of this engine needs to reach the same root, run dir and database.

    For processes this one starts detached (conmon's exit command, the monitor): the database is
    the one in use here (a test's database included), not whatever the environment names.
    """
    env = {
        "BERTH_ROOT": str(conf.root()),
        "BERTH_RUN": str(conf.run_dir()),
        "BERTH_RUNTIME": str(conf.runtime_binary()),
        "BERTH_NET_TAG": str(conf.net_tag()),
    }
    if os.environ.get("BERTH_DNS_NO_FORWARD"):
        env["BERTH_DNS_NO_FORWARD"] = os.environ["BERTH_DNS_NO_FORWARD"]
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        env["DATABASE_URL"] = f"sqlite://{Path(str(db['NAME'])).resolve()}"
    elif os.environ.get("DATABASE_URL"):
        env["DATABASE_URL"] = os.environ["DATABASE_URL"]
    if os.environ.get("BERTH_SECRET_KEY"):
        env["BERTH_SECRET_KEY"] = os.environ["BERTH_SECRET_KEY"]
    return env


def exit_command(container_id: str) -> list[str]:
    """What conmon runs when the container exits: this engine's CLI, with this engine's settings."""
    env = [f"{key}={value}" for key, value in engine_env().items()]
    command = [
        "/usr/bin/env",
        *env,
        sys.executable,
        str(MANAGE_PY),
        "berth",
        "container-exited",
        container_id,
    ]
    # A shell checks the marker first: when an engine process that is stopping or removing the
    # container records the exit itself, booting Django (about a CPU-second) to find nothing to do
    # is skipped. That is what made `rm -f` of many containers slow.
    return [
        "/bin/sh",
        "-c",
        '[ -e "$0" ] && exit 0; exec "$@"',
        str(exit_handled_marker(container_id)),
        *command,
    ]


def exit_handled_marker(container_id: str) -> Path:
    """A file that tells conmon's exit command that an engine process records this exit itself."""
    return paths(container_id).pidfile.parent / "exit-handled"


def mark_exit_handled(container_id: str) -> None:
    """Call before an explicit stop, SIGKILL or forced removal that records the exit itself.

    If that process dies before recording it, the next read of the state (refresh, maintain,
    reconcile_all) does; an explicit stop never triggers a restart policy, so nothing else is lost.
    """
    marker = exit_handled_marker(container_id)
    marker.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    marker.touch()


def teardown(container_id: str) -> None:
    """Delete the runc container, its network, unmount the rootfs and remove the cgroup. Idempotent."""
    p = paths(container_id)
    _delete_runc_container(container_id)
    netsetup.teardown(container_id)
    overlay.unmount(p.rootfs)
    _remove_cgroup(container_id)


def _remove_cgroup(container_id: str) -> None:
    """Remove the container's cgroup; one left behind (still busy, or refused) is logged and recorded."""
    try:
        if cgroups.remove(container_id):
            return
        problem = "it still has processes"
    except RuntimeFailure as exc:
        problem = exc.message
    logger.warning("container %s: cgroup left behind: %s", container_id[:12], problem)
    events.record(
        "container",
        "cleanup",
        object_id=container_id,
        result="error",
        message=f"cgroup {cgroups.cgroups_path_for(container_id)} left behind: {problem}",
    )


def _delete_runc_container(container_id: str) -> None:
    if not (conf.run_dir() / "runc" / container_id).exists():
        return  # runc keeps its state there: without it there is nothing to delete (saves a fork)
    try:
        runc().delete(container_id, force=True)
    except ContainerGone:
        pass


def remove_files(container_id: str) -> None:
    p = paths(container_id)
    logkeeping.forget(container_id)
    metrics.forget(container_id)
    shutil.rmtree(p.pidfile.parent, ignore_errors=True)
    p.exit_file.unlink(missing_ok=True)
    shutil.rmtree(p.socket_dir / container_id, ignore_errors=True)


def _spec_input(container: Container, p: Paths, netns_path: str | None) -> spec.SpecInput:
    config = container.config
    host = container.host_config
    args = list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])
    if not args:
        raise InvalidArgument(
            f"no command specified for container {container.name}", hint="give a command after the image"
        )
    user = users.resolve_in_rootfs(p.rootfs, config.get("User") or None)
    mounts = [_mount_spec(m) for m in container.mounts.all()]
    if host.get("Init"):
        init = next((b for b in INIT_BINARIES if Path(b).exists()), None)
        if init is None:
            raise InvalidArgument(
                "--init needs tini or catatonit on the host", hint="make setup installs them"
            )
        mounts.append(spec.MountSpec(INIT_PATH, "bind", init, ("ro", "bind")))
        args = [INIT_PATH, "--", *args] if "tini" in init else [INIT_PATH, "--", *args]
    env = list(config.get("Env") or [])
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={user.home or '/'}")
    if not any(e.startswith("HOSTNAME=") for e in env):
        env.append(f"HOSTNAME={_hostname(container)}")
    nano = int(host.get("NanoCpus") or 0)
    pids = host.get("PidsLimit")
    return spec.SpecInput(
        args=args,
        rootfs=str(p.rootfs),
        env=env,
        cwd=spec.validate_workdir(config.get("WorkingDir") or "/"),
        uid=user.uid,
        gid=user.gid,
        additional_gids=user.additional_gids,
        terminal=bool(config.get("Tty")),
        hostname=_hostname(container),
        readonly_rootfs=bool(host.get("ReadonlyRootfs")),
        mounts=mounts,
        netns_path=netns_path,
        cgroup_v2=_cgroup_v2(),
        cap_add=host.get("CapAdd") or (),
        cap_drop=host.get("CapDrop") or (),
        privileged=bool(host.get("Privileged")),
        bounding_caps=_engine_bounding_caps(),
        memory_bytes=int(host.get("Memory") or 0) or None,
        memory_swap=int(host.get("MemorySwap") or 0) or None,
        cpu_quota=int(nano / 1e9 * 100_000) if nano else (int(host.get("CpuQuota") or 0) or None),
        cpu_period=100_000 if nano else (int(host.get("CpuPeriod") or 0) or None),
        cpu_shares=int(host.get("CpuShares") or 0) or None,
        pids_limit=None if pids in (None, -1) else int(pids),
        no_new_privileges="no-new-privileges:false" not in (host.get("SecurityOpt") or []),
        cgroups_path=cgroups.cgroups_path_for(container.id),
        masked_paths=_thermal_throttle_paths(),
        hosts_path=str(p.userdata / "hosts"),
        hostname_path=str(p.userdata / "hostname"),
        resolv_conf_path=str(p.userdata / "resolv.conf"),
    )


def _mount_spec(mount: Mount) -> spec.MountSpec:
    ro = ("ro",) if mount.read_only else ()
    if mount.kind == Mount.Kind.TMPFS:
        options = tmpfs.mount_options(mount.options or {}, cap=conf.tmpfs_max_size())
        return spec.MountSpec(mount.destination, "tmpfs", "tmpfs", ("nosuid", "nodev", *options, *ro))
    if mount.kind == Mount.Kind.VOLUME:
        assert mount.volume is not None
        return spec.MountSpec(mount.destination, "bind", volumes.mountpoint(mount.volume), ("rbind", *ro))
    # Checked again at every start: a component swapped for a symlink since create is followed
    # to where it leads now, and that place must pass the policy too.
    return spec.MountSpec(mount.destination, "bind", bindpolicy.resolve(mount.source), ("rbind", *ro))


@functools.lru_cache(maxsize=1)
def _engine_bounding_caps() -> tuple[str, ...]:
    """What this process may hand on: root here lacks CAP_SYS_RESOURCE (PLATFORM.md)."""
    with open("/proc/self/status") as f:
        return tuple(spec.bounding_caps_from_status(f.read()))


def _copy_up_volumes(container: Container, p: Paths) -> None:
    """Fill each empty volume once with what the image has at its mount point, as Docker does.

    Runs before the container's process exists, so nothing in the rootfs can change under us; a
    mount point reached through a symlink in the image is not copied (the link could lead anywhere).
    The volume can change (another running container may mount it): copy_tree_into writes only
    through descriptors opened beneath it.
    """
    for mount in container.mounts.filter(kind=Mount.Kind.VOLUME).select_related("volume"):
        if not (mount.options or {}).get("copy_up") or mount.volume is None:
            continue
        copy_tree_into(p.rootfs, mount.destination, Path(volumes.mountpoint(mount.volume)))
        mount.options = {**mount.options, "copy_up": False}
        mount.save(update_fields=["options"])


def copy_tree_into(rootfs: Path, destination: str, target: Path) -> bool:
    """Copy rootfs/destination into the empty directory `target`, keeping links, modes and owners.

    Returns False (copying nothing) when target is not empty, or the source is missing, not a
    directory, or reached through a symlink. Every write goes through descriptors opened beneath
    `target` (store/fdcopy.py): a co-tenant swapping a directory for a symlink meanwhile gets the
    copy refused (Conflict), never a write on the host (issue 10 item 2).
    """
    components = [part for part in destination.split("/") if part]
    try:
        return fdcopy.copy_into(rootfs, components, target)
    except OSError as exc:
        raise RuntimeFailure(
            f"cannot copy the image's files at {destination} into the volume: {exc.strerror}"
        ) from exc


def _hostname(container: Container) -> str:
    return container.config.get("Hostname") or container.id[:12]


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600, sync: bool = True) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


__all__ = ["Paths", "RuntimeFailure", "launch", "paths", "runc", "teardown"]
