"""Volumes: create, list, inspect, remove, prune. Named volumes outlive the containers using them."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction

from engine import conf, events
from engine.errors import InUse, InvalidArgument, VolumeNotFound
from engine.models import Volume
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
        raise InvalidArgument("volume name is too short, names should be at least two alphanumeric characters")
    if not _NAME.match(name) or len(name) > 255:
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
