"""Volumes: create, list, inspect, remove, prune. Named volumes outlive the containers using them."""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat as stat_mod
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction

from engine import conf, events
from engine.errors import InUse, InvalidArgument, NotFound, RuntimeFailure, VolumeNotFound
from engine.models import Mount, Volume
from engine.store import fsops
from engine.store import volumes as volume_store

# Docker's rule (volume/local): at least two characters, starting with a letter or digit.
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
SUPPORTED_OPTIONS = {"type", "device", "o", "size"}


@dataclass(frozen=True)
class PruneResult:
    removed: list[str]
    reclaimed: int


def validate_name(name: str) -> str:
    """Return `name` if Docker's local driver would accept it; raise InvalidArgument with Docker's words."""
    if len(name) == 1:
        raise InvalidArgument(
            "volume name is too short, names should be at least two alphanumeric characters"
        )
    if not _NAME.fullmatch(name) or len(name) > 255:
        raise InvalidArgument(
            f'"{name}" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" '
            "are allowed. If you intended to pass a host directory, use absolute path"
        )
    return name


def create(
    name: str | None = None,
    *,
    labels: dict[str, str] | None = None,
    options: dict[str, str] | None = None,
    driver: str = "local",
) -> Volume:
    """Create a volume, or return the existing one of that name (as Docker does)."""
    if driver != "local":
        raise InvalidArgument(f"volume driver {driver!r} is not supported (only 'local')")
    for key in options or {}:
        if key not in SUPPORTED_OPTIONS:
            raise InvalidArgument(
                f"unknown volume option {key!r} (supported: {', '.join(sorted(SUPPORTED_OPTIONS))})"
            )
    anonymous = name is None
    if name is None:
        name = secrets.token_hex(32)
    validate_name(name)
    existing = Volume.objects.filter(name=name).first()
    if existing is not None:
        return existing
    conf.ensure_dirs()
    volume_store.create_dir(conf.volumes_dir(), name)
    try:
        with transaction.atomic():
            volume = Volume.objects.create(
                name=name,
                driver=driver,
                labels=labels or {},
                options=options or {},
                anonymous=anonymous,
                created_by=events.current_actor(),
            )
    except IntegrityError:
        # Another process created it between our check and insert; theirs is the volume.
        return Volume.objects.get(name=name)
    events.record("volume", "create", object_id=name, object_name=name)
    return volume


def get(name: str) -> Volume:
    try:
        return Volume.objects.get(name=name)
    except Volume.DoesNotExist:
        raise VolumeNotFound(f"no such volume: {name}") from None


def mountpoint(volume: Volume) -> str:
    return str(volume_store.data_path(conf.volumes_dir(), volume.name))


def users(volume: Volume) -> list[str]:
    """Names of the containers that mount this volume."""
    return sorted(volume.mounts.values_list("container__name", flat=True).distinct())


def users_by_volume() -> dict[int, list[str]]:
    """Container names per volume id, in one query (a list would otherwise ask once per row)."""
    found: dict[int, list[str]] = {}
    rows = Mount.objects.filter(volume__isnull=False).values_list("volume_id", "container__name").distinct()
    for volume_id, name in rows:
        found.setdefault(volume_id, []).append(name)
    return {k: sorted(v) for k, v in found.items()}


def list_volumes(*, filters: dict[str, list[str]] | None = None) -> list[Volume]:
    """List volumes, filtered as `docker volume ls --filter` does (dangling, name, label)."""
    filters = filters or {}
    qs = Volume.objects.all()
    for key in filters:
        if key not in ("dangling", "name", "label"):
            raise InvalidArgument(f"invalid filter {key!r} (use dangling, name or label)")
    for value in filters.get("dangling", []):
        flag = _parse_bool(value, "dangling")
        qs = qs.filter(mounts__isnull=True) if flag else qs.filter(mounts__isnull=False)
    for value in filters.get("name", []):
        qs = qs.filter(name__contains=value)
    result = list(qs.distinct())
    for value in filters.get("label", []):
        key, _, want = value.partition("=")
        result = [v for v in result if key in v.labels and (not want or v.labels[key] == want)]
    return result


def inspect(name: str) -> dict[str, Any]:
    """Docker's `volume inspect` shape."""
    volume = get(name)
    return {
        "CreatedAt": volume.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Driver": volume.driver,
        "Labels": volume.labels or None,
        "Mountpoint": mountpoint(volume),
        "Name": volume.name,
        "Options": volume.options or None,
        "Scope": "local",
    }


def size(volume: Volume) -> int:
    return volume_store.disk_usage(volume_store.data_path(conf.volumes_dir(), volume.name))


def remove(name: str, *, force: bool = False) -> None:
    """Remove a volume and its data. A volume in use is a conflict; with force a missing one is not an error."""
    try:
        volume = get(name)
    except VolumeNotFound:
        if force:
            return
        raise
    _delete(volume)


def _delete(volume: Volume) -> None:
    in_use = users(volume)
    if in_use:
        raise InUse(
            f"volume {volume.name} is in use by container(s): {', '.join(in_use)}",
            hint="remove those containers first",
        )
    deleted, _ = Volume.objects.filter(pk=volume.pk, mounts__isnull=True).delete()
    if not deleted:
        raise InUse(f"volume {volume.name} is in use", hint="remove the containers using it first")
    volume_store.remove_dir(conf.volumes_dir(), volume.name)
    events.record("volume", "remove", object_id=volume.name, object_name=volume.name)


def prune(*, all: bool = False, filters: dict[str, list[str]] | None = None) -> PruneResult:
    """Remove unused volumes: only anonymous ones unless all=True (Docker 23+ behaviour)."""
    candidates = list_volumes(filters={**(filters or {}), "dangling": ["true"]})
    removed: list[str] = []
    reclaimed = 0
    for volume in candidates:
        if volume.anonymous or all:
            used = size(volume)
            try:
                _delete(volume)
            except InUse:
                continue  # a container started using it meanwhile
            removed.append(volume.name)
            reclaimed += used
    return PruneResult(removed=removed, reclaimed=reclaimed)


def _parse_bool(value: str, key: str) -> bool:
    if value.lower() in ("1", "true"):
        return True
    if value.lower() in ("0", "false"):
        return False
    raise InvalidArgument(f"invalid value for filter {key}: {value!r} (use true or false)")


# -- read-only file browser (the dashboard's volume page) -----------------------------------------
# Imported here rather than at the top because this section was appended to a shared module.


BROWSE_MAX_ENTRIES = 5000  # a directory with more is shown truncated, not read whole into a page


@dataclass(frozen=True)
class Entry:
    """One directory entry as the browser shows it. Symlinks are described, never followed.

    `name` is for display (bytes that are not UTF-8 shown as U+FFFD); `navigable` is False for such
    names, because a path built from the display text would not name the entry.
    """

    name: str
    kind: str  # "dir", "file", "symlink" or "other" (fifo, socket, device)
    size: int
    mode: str  # as `ls -l` shows it, e.g. "drwxr-xr-x"
    mtime: float
    target: str = ""  # a symlink's target text
    navigable: bool = True


def _components(relpath: str) -> list[str]:
    """Split a path relative to the volume's root; refuse `..` and NUL instead of normalising them."""
    if "\x00" in relpath:
        raise InvalidArgument("path contains a NUL byte")
    parts = [p for p in relpath.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidArgument(f"path {relpath!r} leaves the volume: '..' is not allowed")
    return parts


def _open_dir(volume: Volume, parts: list[str], shown: str) -> int:
    """Open the directory `parts` below the volume's _data through fsops' no-follow walk: a symlink
    planted by a container cannot lead out."""
    root = volume_store.data_path(conf.volumes_dir(), volume.name)
    try:
        fd = fsops.open_dir(root)
    except OSError as exc:
        raise RuntimeFailure(f"cannot open volume {volume.name}: {exc.strerror}") from exc
    try:
        return fsops.open_beneath(fd, parts)
    except OSError as exc:
        raise _path_error(exc, volume.name, shown) from exc
    finally:
        os.close(fd)


def _path_error(exc: OSError, volume: str, shown: str) -> Exception:
    if exc.errno == errno.ENOENT:
        return NotFound(f"no such file or directory in volume {volume}: {shown}")
    if exc.errno == errno.ELOOP:
        return InvalidArgument(f"{shown} goes through a symbolic link, which the browser does not follow")
    if exc.errno == errno.ENOTDIR:
        return InvalidArgument(f"{shown} is not a directory")
    return RuntimeFailure(f"cannot open {shown} in volume {volume}: {exc.strerror}")


def browse(name: str, relpath: str = "") -> list[Entry]:
    """List the directory `relpath` inside volume `name`: directories first, then by name.

    Never follows a symlink, on the way there or in the listing (a symlink is an Entry of kind
    "symlink" with its target text). Raises VolumeNotFound, NotFound for a missing path,
    InvalidArgument for `..`, a path through a symlink or a non-directory. At most
    BROWSE_MAX_ENTRIES entries are returned.
    """
    volume = get(name)
    fd = _open_dir(volume, _components(relpath), relpath or "/")
    entries: list[Entry] = []
    try:
        with os.scandir(fd) as it:
            for item in it:
                if len(entries) >= BROWSE_MAX_ENTRIES:
                    break
                try:
                    st = item.stat(follow_symlinks=False)
                except OSError:
                    continue  # removed by a running container meanwhile
                entries.append(_entry(item.name, st, fd))
    except OSError as exc:
        raise RuntimeFailure(f"cannot list {relpath or '/'} in volume {name}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    entries.sort(key=lambda e: (e.kind != "dir", e.name))
    return entries


def _entry(raw_name: str, st: os.stat_result, dir_fd: int) -> Entry:
    name, navigable = fsops.display_name(raw_name)
    mode = st.st_mode
    kind = fsops.kind_of(mode)
    target = ""
    if kind == "symlink":
        try:
            target = os.fsencode(os.readlink(raw_name, dir_fd=dir_fd)).decode("utf-8", "replace")
        except OSError:
            target = "?"
    return Entry(
        name=name,
        kind=kind,
        size=st.st_size,
        mode=stat_mod.filemode(mode),
        mtime=st.st_mtime,
        target=target,
        navigable=navigable,
    )


def read_file(name: str, relpath: str, limit: int = 64 * 1024) -> bytes:
    """Return at most `limit` bytes from the start of the regular file `relpath` inside volume `name`.

    The same walk as browse(): no `..`, no symlink followed anywhere (the file itself is opened with
    O_NOFOLLOW). A FIFO, socket or device is refused without being opened for reading in a way that
    could block. Raises VolumeNotFound, NotFound or InvalidArgument.
    """
    volume = get(name)
    parts = _components(relpath)
    if not parts:
        raise InvalidArgument("give the path of a file inside the volume")
    fd = _open_dir(volume, parts[:-1], relpath)
    try:
        try:
            # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
            file_fd = os.open(
                parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd
            )
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise InvalidArgument(
                    f"{relpath} is a symbolic link, which the browser does not follow"
                ) from exc
            raise _path_error(exc, name, relpath) from exc
    finally:
        os.close(fd)
    try:
        if not stat_mod.S_ISREG(os.fstat(file_fd).st_mode):
            raise InvalidArgument(f"{relpath} is not a regular file")
        return fsops.read_at_most(file_fd, limit)
    except OSError as exc:
        raise RuntimeFailure(f"cannot read {relpath} in volume {name}: {exc.strerror}") from exc
    finally:
        os.close(file_fd)
