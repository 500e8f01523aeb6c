"""Turning a container record into a running runc container, and back (internal to the services).

`launch` mounts the rootfs, writes the container's own hosts/hostname/resolv.conf, builds the OCI
spec and has conmon create the container; every step registers its undo. `teardown` is the
reverse and is safe to call twice: each step treats "already gone" as done.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import stat as stat_module
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection

from engine import conf
from engine.errors import InvalidArgument, RuntimeFailure
from engine.models import Container, Mount
from engine.runtime import cgroups, conmon, seccomp, spec, users
from engine.runtime.options import DEFAULT_LOG_MAX_FILE, DEFAULT_LOG_MAX_SIZE
from engine.runtime.runc import ContainerGone, Runc
from engine.services import imagestore, netsetup, volumes
from engine.store import overlay
from engine.undo import UndoStack

INIT_PATH = "/run/berth-init"
INIT_BINARIES = ("/usr/bin/tini-static", "/usr/bin/catatonit")
MANAGE_PY = Path(settings.BASE_DIR) / "manage.py"
LOG_BACKSTOP_FACTOR = 3
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
    # Written again at every start, so a crash cannot leave a stale one that matters: no fsync.
    write_atomic(p.bundle / "config.json", json.dumps(document).encode(), sync=False)
    log_max = _conmon_log_cap(host)
    with ADOPTION_LOCK:
        result = _spawn(container, p, log_max)
    undo.push(teardown, container.id)
    return result


def _spawn(container: Container, p: Paths, log_max: int) -> conmon.SpawnResult:
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


def _conmon_log_cap(host: dict[str, Any]) -> int:
    """conmon's --log-size-max: a backstop at 3x max-size while the engine rotates at max-size.

    conmon 2.1.6 truncates (loses) the log at its cap rather than rotating, so the cap must only
    be reached by a flood between two rotations (supervision.rotate_log). With max-file 1 there is
    nothing to rotate into and conmon's truncation at max-size is Docker's behaviour.
    """
    config = (host.get("LogConfig") or {}).get("Config") or {}
    try:
        size = int(config.get("max-size") or DEFAULT_LOG_MAX_SIZE)
        files = int(config.get("max-file") or DEFAULT_LOG_MAX_FILE)
    except (TypeError, ValueError):
        size, files = DEFAULT_LOG_MAX_SIZE, DEFAULT_LOG_MAX_FILE
    return size * LOG_BACKSTOP_FACTOR if files > 1 else size


def exit_command(container_id: str) -> list[str]:
    """What conmon runs when the container exits: this engine's CLI, with this engine's settings."""
    env = [
        f"BERTH_ROOT={conf.root()}",
        f"BERTH_RUN={conf.run_dir()}",
        f"BERTH_RUNTIME={conf.runtime_binary()}",
        f"BERTH_NET_TAG={conf.net_tag()}",
    ]
    if os.environ.get("BERTH_DNS_NO_FORWARD"):
        env.append(f"BERTH_DNS_NO_FORWARD={os.environ['BERTH_DNS_NO_FORWARD']}")
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        env.append(f"DATABASE_URL=sqlite://{Path(str(db['NAME'])).resolve()}")
    elif os.environ.get("DATABASE_URL"):
        env.append(f"DATABASE_URL={os.environ['DATABASE_URL']}")
    if os.environ.get("BERTH_SECRET_KEY"):
        env.append(f"BERTH_SECRET_KEY={os.environ['BERTH_SECRET_KEY']}")
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
    try:
        cgroups.remove(container_id)
    except OSError:
        pass


def _delete_runc_container(container_id: str) -> None:
    if not (conf.run_dir() / "runc" / container_id).exists():
        return  # runc keeps its state there: without it there is nothing to delete (saves a fork)
    try:
        runc().delete(container_id, force=True)
    except ContainerGone:
        pass


def remove_files(container_id: str) -> None:
    p = paths(container_id)
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
        options = tuple(f"{k}={v}" if v else k for k, v in (mount.options or {}).items())
        return spec.MountSpec(mount.destination, "tmpfs", "tmpfs", ("nosuid", "nodev", *options, *ro))
    if mount.kind == Mount.Kind.VOLUME:
        assert mount.volume is not None
        return spec.MountSpec(mount.destination, "bind", volumes.mountpoint(mount.volume), ("rbind", *ro))
    if not Path(mount.source).exists():
        raise InvalidArgument(f"bind source path does not exist: {mount.source}")
    return spec.MountSpec(mount.destination, "bind", mount.source, ("rbind", *ro))


@functools.lru_cache(maxsize=1)
def _engine_bounding_caps() -> tuple[str, ...]:
    """What this process may hand on: root here lacks CAP_SYS_RESOURCE (PLATFORM.md)."""
    with open("/proc/self/status") as f:
        return tuple(spec.bounding_caps_from_status(f.read()))


def _copy_up_volumes(container: Container, p: Paths) -> None:
    """Fill each empty volume once with what the image has at its mount point, as Docker does.

    Runs before the container's process exists, so nothing in the rootfs can change under us; a
    mount point reached through a symlink in the image is not copied (the link could lead anywhere).
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
    directory, or reached through a symlink.
    """
    if not target.is_dir() or any(target.iterdir()):
        return False
    source = rootfs
    for part in Path(destination).parts[1:]:
        source = source / part
        if source.is_symlink() or not source.is_dir():
            return False
    for entry in os.scandir(source):
        dest = target / entry.name
        if entry.is_dir(follow_symlinks=False):
            shutil.copytree(entry.path, dest, symlinks=True, ignore=_special_files)
        elif entry.is_symlink():
            os.symlink(os.readlink(entry.path), dest)
        elif entry.is_file(follow_symlinks=False):
            shutil.copy2(entry.path, dest, follow_symlinks=False)
    for dirpath, dirnames, filenames in os.walk(source):
        for name in (*dirnames, *filenames):
            src = os.path.join(dirpath, name)
            copied = target / os.path.relpath(src, source)
            if os.path.lexists(copied):
                st = os.lstat(src)
                os.lchown(copied, st.st_uid, st.st_gid)
    st = os.stat(source)
    os.chown(target, st.st_uid, st.st_gid)
    os.chmod(target, stat_module.S_IMODE(st.st_mode))
    return True


def _special_files(directory: str, names: list[str]) -> set[str]:
    """Devices, fifos and sockets are not copied: reading a fifo would block the start."""
    skipped = set()
    for name in names:
        mode = os.lstat(os.path.join(directory, name)).st_mode
        if not (stat_module.S_ISDIR(mode) or stat_module.S_ISREG(mode) or stat_module.S_ISLNK(mode)):
            skipped.add(name)
    return skipped


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


def check_exit_reason(message: str) -> int | None:
    """Docker's exit codes for a command that could not be started: 127 not found, 126 not executable."""
    lowered = message.lower()
    if "executable file not found" in lowered or "no such file or directory" in lowered:
        return 127
    if "permission denied" in lowered or "is a directory" in lowered:
        return 126
    return None


__all__ = ["Paths", "RuntimeFailure", "launch", "paths", "runc", "teardown"]
