"""The engine as a whole: first-run set-up, start-up reconciliation, versions and disk use."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from engine import conf
from engine.errors import EngineError
from engine.models import Image
from engine.services import imagestore, imagetransfer, leftovers

ROLE_GROUPS = ("viewers", "operators", "admins")
VERSION = "0.8.0"  # Berth's own version, as `version` and the Docker API's /version report it


def initial_password_path() -> Path:
    return conf.root() / "initial-admin-password"


def initialise(*, admin_password: str) -> bool:
    """Create the engine directories, the role groups and, on first run, the `admin` superuser.

    Returns True when the admin user was created now. Its password is written to
    $BERTH_ROOT/initial-admin-password (mode 0600) unless it came from BERTH_ADMIN_PASSWORD.
    """
    conf.ensure_dirs()
    for name in ROLE_GROUPS:
        Group.objects.get_or_create(name=name)
    users = get_user_model()
    with transaction.atomic():
        if users.objects.filter(username="admin").exists():
            return False
        admin = users.objects.create_superuser("admin", "", admin_password)
        admin.groups.add(Group.objects.get(name="admins"))
    if not os.environ.get("BERTH_ADMIN_PASSWORD"):
        path = initial_password_path()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(admin_password + "\n")
    return True


def seed() -> Image:
    """Collect what a crash left behind, then make sure busybox:latest exists."""
    imagestore.collect_garbage()
    leftovers.reclaim()  # unreferenced blobs too, once no write runs in any process
    return imagetransfer.seed_busybox()


# -- versions and disk use (the dashboard's overview and status line) ---------------------------
# Imported here rather than at the top because this section was appended to a shared module.


_CACHE_LOCK = threading.Lock()
_VERSION_CACHE: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
_DISK_CACHE: dict[str, tuple[float, dict[str, int]]] = {}
VERSION_MAX_AGE = 60.0  # binaries change only on upgrade; `runc --version` costs a fork per page
DISK_MAX_AGE = 30.0  # du of every upper dir and volume is costly; a half-minute-old figure is fine


def info() -> dict[str, Any]:
    """Describe the engine's host: runtime, conmon, kernel, cgroup mode and free disk under BERTH_ROOT.

    Never raises for a missing binary: the dict says `found: False` and carries the error text, so a
    status line can show what is wrong. Shape::

        {"runtime": {"binary", "found", "version", "warning", "error"},
         "conmon": {"binary", "found", "version", "error"},
         "kernel": "6.1.0-… (x86_64)", "cgroup_mode": "v2" | "hybrid" | "v1",
         "disk": {"path", "total", "used", "free"} (zeros with "error" when unreadable)}
    """
    from engine.runtime import cgroups

    runtime_binary = conf.runtime_binary()
    conmon_binary = conf.conmon_binary()
    uname = os.uname()
    return {
        "runtime": _cached_version("runtime", runtime_binary, _runtime_version),
        "conmon": _cached_version("conmon", conmon_binary, _conmon_version),
        "kernel": f"{uname.release} ({uname.machine})",
        "cgroup_mode": cgroups.detect_mode(),
        "disk": _disk_free(conf.root()),
    }


def _cached_version(kind: str, binary: str, probe: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    now = time.monotonic()
    with _CACHE_LOCK:
        hit = _VERSION_CACHE.get((kind, binary))
        if hit is not None and now - hit[0] < VERSION_MAX_AGE:
            return dict(hit[1])
    found = probe(binary)
    with _CACHE_LOCK:
        _VERSION_CACHE[(kind, binary)] = (now, found)
    return dict(found)


def _runtime_version(binary: str) -> dict[str, Any]:
    from engine.runtime import runcfixes
    from engine.runtime.runc import Runc, check_version

    out: dict[str, Any] = {"binary": binary, "found": False, "version": "", "warning": None, "error": ""}
    try:
        text = Runc(binary, conf.run_dir() / "runc").version_output()
    except EngineError as exc:
        out["error"] = str(exc)
        return out
    first = text.splitlines()[0] if text else ""
    out.update(found=True, version=first, warning=check_version(text, runcfixes.read_changelog()))
    return out


def _conmon_version(binary: str) -> dict[str, Any]:
    out: dict[str, Any] = {"binary": binary, "found": False, "version": "", "error": ""}
    try:
        proc = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=5, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError:
        out["error"] = f"conmon not found at {binary} (install conmon)"
        return out
    except (OSError, subprocess.TimeoutExpired) as exc:
        out["error"] = f"cannot run {binary} --version: {exc}"
        return out
    if proc.returncode != 0:
        out["error"] = f"{binary} --version exited with {proc.returncode}"
        return out
    lines = proc.stdout.strip().splitlines()
    out.update(found=True, version=lines[0] if lines else "")
    return out


def _disk_free(path: Path) -> dict[str, Any]:
    try:
        usage = shutil.disk_usage(path)
    except OSError as exc:
        return {"path": str(path), "total": 0, "used": 0, "free": 0, "error": exc.strerror or str(exc)}
    return {"path": str(path), "total": usage.total, "used": usage.used, "free": usage.free, "error": ""}


def disk_usage(*, max_age: float = DISK_MAX_AGE) -> dict[str, int]:
    """Bytes used by images (layers counted once), containers (their writable layers) and volumes.

    Also reports what dangling images alone hold (`reclaimable`) and the file system's `free` and
    `total`. The figures walk every container's upper dir and every volume, so the result is cached
    per BERTH_ROOT for `max_age` seconds (0 recomputes now).
    """
    from engine.models import Container, Volume
    from engine.services import images, volumes
    from engine.store import volumes as volume_store

    key = str(conf.root())
    now = time.monotonic()
    with _CACHE_LOCK:
        hit = _DISK_CACHE.get(key)
        if hit is not None and max_age > 0 and now - hit[0] < max_age:
            return dict(hit[1])
    image_usage = images.disk_usage()
    containers = 0
    for container_id in Container.objects.values_list("id", flat=True):
        # disk_usage walks without following symlinks and skips entries that vanish meanwhile.
        containers += volume_store.disk_usage(conf.containers_dir() / container_id / "upper")
    volume_bytes = sum(volumes.size(v) for v in Volume.objects.all())
    disk = _disk_free(conf.root())
    result = {
        "images": int(image_usage.get("total", 0)),
        "reclaimable": int(image_usage.get("reclaimable", 0)),
        "leftovers": leftovers.total_size()[1],  # what a crash left; a prune frees it
        "containers": containers,
        "volumes": volume_bytes,
        "free": int(disk["free"]),
        "total": int(disk["total"]),
    }
    with _CACHE_LOCK:
        _DISK_CACHE[key] = (now, result)
    return dict(result)


def counts() -> dict[str, int]:
    """The overview's numbers: containers by running / paused / stopped, images, volumes."""
    from engine.models import ContainerState, Volume
    from engine.services import containers

    by_state = containers.state_counts()
    total = sum(by_state.values())
    running = by_state.get(ContainerState.RUNNING, 0) + by_state.get(ContainerState.RESTARTING, 0)
    paused = by_state.get(ContainerState.PAUSED, 0)
    return {
        "running": running,
        "paused": paused,
        "stopped": total - running - paused,
        "containers": total,
        "images": Image.objects.count(),
        "volumes": Volume.objects.count(),
    }


def check(*, verify_blobs: bool = True) -> list[str]:
    """Look for damage in the store: missing layer directories, missing or corrupt blobs.

    Returns one line per problem (empty when all is well). Repairs nothing: `rmi -f` of the image
    named in a line removes what it points at, and works on a damaged image.
    """
    from engine.models import Layer
    from engine.services.images import familiar_tags
    from engine.store.digests import digest_hex

    problems: list[str] = []
    store = imagestore.blob_store()
    for layer in Layer.objects.prefetch_related("images__tags"):
        names = (
            ", ".join(name for image in layer.images.all() for name in familiar_tags(image))
            or "untagged images"
        )
        if not (conf.layers_dir() / digest_hex(layer.chain_id)).is_dir():
            problems.append(f"layer {layer.chain_id[7:19]} of {names}: directory missing")
        if not store.exists(layer.blob_digest):
            problems.append(
                f"layer {layer.chain_id[7:19]} of {names}: blob {layer.blob_digest[7:19]} missing"
            )
        elif verify_blobs and not store.verify(layer.blob_digest):
            problems.append(
                f"layer {layer.chain_id[7:19]} of {names}: blob {layer.blob_digest[7:19]} is corrupt"
            )
    for image in Image.objects.prefetch_related("tags"):
        names = ", ".join(familiar_tags(image)) or image.short_id
        if not store.exists(image.id):
            problems.append(f"image {names}: config blob missing")
        elif verify_blobs and not store.verify(image.id):
            problems.append(f"image {names}: config blob is corrupt")
    return problems


# -- `docker info` / `berth info` and `system df -v` ------------------------------------------------
# Appended for the Docker API (issue 8); the API and the CLI both render these.


def engine_id() -> str:
    """A stable ID for this engine: the same machine and BERTH_ROOT give the same ID."""
    import uuid

    try:
        machine = Path("/etc/machine-id").read_text().strip()
    except OSError:
        machine = os.uname().nodename
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"berth:{machine}:{conf.root()}")).upper()


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            key, _, value = line.partition("=")
            if key == "PRETTY_NAME":
                return value.strip().strip('"')
    except OSError:
        pass
    return "Linux"


def _mem_total() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _backing_fs(path: Path) -> str:
    """The file system type of the mount holding `path` (what overlayfs' upper dirs sit on)."""
    best, kind = "", "unknown"
    try:
        for line in Path("/proc/self/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) < 3:
                continue
            point = fields[1].replace("\\040", " ")
            inside = str(path) == point or str(path).startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, kind = point, fields[2]
    except OSError:
        pass
    return kind


def summary() -> dict[str, Any]:
    """Everything `info` shows, in plain words: counts, host, runtime, storage, security and warnings.

    Never raises for a missing binary: its problem is one of the `warnings`.
    """
    from engine.runtime import cgroups

    host = info()
    numbers = counts()
    mode = host["cgroup_mode"]
    security = ["seccomp", "no-new-privileges"] + (["cgroupns"] if mode == cgroups.V2 else [])
    warnings = []
    for part in ("runtime", "conmon"):
        if host[part].get("error"):
            warnings.append(f"WARNING: {host[part]['error']}")
    if host["runtime"].get("warning"):
        warnings.append(host["runtime"]["warning"])
    uname = os.uname()
    return {
        "id": engine_id(),
        "name": uname.nodename,
        "counts": numbers,
        "kernel": uname.release,
        "arch": uname.machine,
        "os": _os_name(),
        "cpus": os.cpu_count() or 1,
        "memory": _mem_total(),
        "root": str(conf.root()),
        "backing_fs": _backing_fs(conf.root()),
        "runtime": host["runtime"],
        "conmon": host["conmon"],
        "cgroup_mode": mode,
        "cgroup_driver": "cgroupfs",  # runc gets a plain cgroupsPath ("/berth/<id>"), not a systemd slice
        "security": security,
        "warnings": warnings,
    }


def disk_usage_detail() -> dict[str, Any]:
    """`system df -v`: per image (size, shared, containers), per container (writable layer) and per
    volume (size, containers using it). Walks every upper dir and volume: call it on demand only.
    """
    from engine.models import Container, Layer, Volume
    from engine.services import containers, volumes
    from engine.store import volumes as volume_store

    by_image = containers.count_by_image()
    image_rows = []
    for image in Image.objects.prefetch_related("tags", "repo_digests"):
        unique = imagestore.unique_size(image)
        image_rows.append(
            {
                "image": image,
                "size": image.size,
                "shared": max(0, image.size - unique),
                "containers": by_image.get(image.id, 0),
            }
        )
    container_rows = []
    for container in Container.objects.select_related("image").prefetch_related("mounts"):
        rw = volume_store.disk_usage(conf.containers_dir() / container.id / "upper")
        container_rows.append({"container": container, "size_rw": rw, "size_root": rw + container.image.size})
    users = volumes.users_by_volume()
    volume_rows = [
        {"volume": v, "size": volumes.size(v), "ref_count": len(users.get(v.pk, []))}
        for v in Volume.objects.all()
    ]
    return {
        "layers_size": sum(Layer.objects.values_list("size", flat=True)),
        "leftovers": leftovers.find(),
        "images": image_rows,
        "containers": container_rows,
        "volumes": volume_rows,
    }
