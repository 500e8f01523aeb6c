"""Containers as records: create, find, list, inspect, rename, remove.

Starting, stopping and the rest of the lifecycle are in services/lifecycle.py; both take the
container's lock for anything that changes it.

Over 400 lines because create's validation, mount preparation and undo belong with the record they make; the
Config and HostConfig it stores are built in containerconfig.
"""

from __future__ import annotations

import dataclasses
import random
import secrets
import shutil
from pathlib import Path
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, Q, QuerySet

from engine import conf, events, locks
from engine.errors import AlreadyExists, ContainerNotFound, InvalidArgument, VolumeNotFound
from engine.models import Container, ContainerState, Mount, Network, Volume
from engine.net import etcfiles, ipam, ports
from engine.runtime import lifecycle as transitions
from engine.runtime import spec as runtime_spec
from engine.runtime import tmpfs
from engine.services import bindpolicy, containerconfig, healthoptions, images, netsetup, refs, volumes
from engine.services import options as opts
from engine.undo import UndoStack

_ADJECTIVES = (
    "brave calm eager fervent gallant happy jolly keen lucid merry nifty proud quirky serene sharp "
    "stoic sweet tender trusting upbeat vibrant wizardly youthful zealous bold clever dreamy elastic"
).split()
_NAMES = (
    "archimedes babbage curie darwin einstein fermi galileo hopper hypatia johnson kepler lovelace "
    "meitner newton noether pascal ritchie shannon thompson torvalds turing wozniak yalow lamarr"
).split()


def container_dir(container_id: str) -> Path:
    return conf.containers_dir() / container_id


def resolve(ref: str) -> Container:
    """Find a container by full ID, name, or unique ID prefix; raise ContainerNotFound otherwise."""
    ref = ref.strip().lstrip("/")
    found = refs.find(Container, ref, what="container")
    if found is None:
        raise ContainerNotFound(f"no such container: {ref}")
    return found


def refresh(container: Container) -> Container:
    """Re-read the row (under the lock); a container removed meanwhile is ContainerNotFound, not a crash."""
    try:
        container.refresh_from_db()
    except Container.DoesNotExist:
        raise ContainerNotFound(f"no such container: {container.name}") from None
    return container


def _generate_name() -> str:
    for _ in range(20):
        name = f"{random.choice(_ADJECTIVES)}_{random.choice(_NAMES)}"
        if not Container.objects.filter(name=name).exists():
            return name
    return f"{random.choice(_ADJECTIVES)}_{random.choice(_NAMES)}{random.randint(1, 9999)}"


def create(options: opts.ContainerOptions) -> Container:
    """Create a container (not started). Validates everything first; leaves nothing behind on failure."""
    image = images.resolve(options.image)
    name = opts.validate_name(options.name) if options.name else _generate_name()
    existing = Container.objects.filter(name=name).first()
    if existing is not None:
        raise AlreadyExists(
            f'the container name "/{name}" is already in use by container {existing.short_id}',
            hint="remove or rename that container to reuse the name",
        )
    _validate(options)
    network = _network_for(options)
    image_config = image.config.get("config") or {}
    if not options.stop_signal and image_config.get("StopSignal"):
        _check_image_stop_signal(options.image, image_config["StopSignal"])
    config = containerconfig.config(options, image_config)
    host_config = containerconfig.host_config(options, network_mode=_stored_mode(options))
    container_id = secrets.token_hex(32)
    directory = container_dir(container_id)
    with UndoStack() as undo:
        conf.ensure_dirs()
        for sub in ("upper", "work", "merged", "userdata"):
            (directory / sub).mkdir(mode=0o700, parents=True)
        (directory / "upper").chmod(0o755)
        undo.push(shutil.rmtree, directory, True)
        mount_rows = _prepare_mounts(options, image_config, undo)
        try:
            with transaction.atomic():
                container = Container.objects.create(
                    id=container_id,
                    name=name,
                    image=image,
                    image_ref=options.image,
                    config=config,
                    host_config=host_config,
                    labels=dict(config.get("Labels") or {}),
                    state=ContainerState.CREATED,
                    created_by=events.current_actor(),
                )
                for row in mount_rows:
                    row.container = container
                Mount.objects.bulk_create(mount_rows)
                if network is not None:
                    netsetup.lease(
                        container,
                        network,
                        ip=options.ip,
                        aliases=options.network_aliases,
                        mac=ipam.parse_mac(options.mac_address) if options.mac_address else None,
                    )
        except IntegrityError:
            raise AlreadyExists(f'the container name "/{name}" is already in use') from None
    events.record(
        "container", "create", object_id=container.id, object_name=name, attributes={"image": options.image}
    )
    return container


def _validate(options: opts.ContainerOptions) -> None:
    if options.auto_remove and options.restart.name != "no":
        raise InvalidArgument("conflicting options: --restart and --rm cannot be used together")
    if options.workdir:
        runtime_spec.validate_workdir(options.workdir)
    for cap in (*options.cap_add, *options.cap_drop):
        runtime_spec.normalize_cap(cap)
    for spec in options.publish:
        ports.parse_publish(spec)
    for spec in options.expose:
        ports.parse_expose(spec)
    for spec in options.add_hosts:
        etcfiles.parse_add_host(spec)
    for address in options.dns:
        etcfiles.parse_dns(address)
    for domain in options.dns_search:
        etcfiles.parse_dns_search(domain)
    if options.hostname:
        etcfiles.validate_hostname(options.hostname)
    if options.mac_address:
        ipam.parse_mac(options.mac_address)
    seen: set[str] = set()
    for mount in options.mounts:
        runtime_spec.validate_destination(mount.destination)
        if mount.destination in seen:
            raise InvalidArgument(f"duplicate mount point: {mount.destination}")
        seen.add(mount.destination)
        if mount.kind == "bind":
            bindpolicy.resolve(mount.source)
        if mount.kind == "tmpfs":
            _check_tmpfs_size(mount)
        if mount.kind == "volume" and mount.source:
            volumes.validate_name(mount.source)
    if options.memory is not None and options.memory < 6 << 20:
        raise InvalidArgument("minimum memory limit allowed is 6MB")
    if options.pids_limit is not None and options.pids_limit == 0:
        raise InvalidArgument("invalid --pids-limit 0: use -1 for unlimited")
    if options.stop_timeout is not None and options.stop_timeout < -1:
        raise InvalidArgument("invalid --stop-timeout: must be -1 or more")
    if options.stop_signal:
        opts.parse_signal(options.stop_signal)


def _check_tmpfs_size(mount: opts.MountRequest) -> None:
    size = dict(mount.options).get("size")
    if size is not None:
        tmpfs.check_size(int(size), cap=conf.tmpfs_max_size(), destination=mount.destination)


def _check_image_stop_signal(image: str, value: object) -> None:
    """Refuse an image whose STOPSIGNAL cannot be sent (Docker refuses it at create too)."""
    try:
        opts.parse_signal(str(value))
    except InvalidArgument:
        raise InvalidArgument(
            f"image {image} has an invalid STOPSIGNAL {str(value)[:32]!r}: it could never be stopped cleanly",
            hint="give a valid --stop-signal to create a container from it",
        ) from None


def network_mode(options: opts.ContainerOptions) -> str:
    """Docker's NetworkMode for the request: bridge, host, none, container:ID or a network's name."""
    mode = options.network or "bridge"
    return "bridge" if mode == "default" else mode


def _network_for(options: opts.ContainerOptions) -> Network | None:
    """The network the container joins at create (None for host, none and container:…)."""
    from engine.services import networks

    mode = network_mode(options)
    shares = mode in ("host", "none") or mode.startswith("container:")
    if shares:
        if options.publish or options.publish_all:
            raise InvalidArgument(
                f"published ports and the {mode.split(':')[0]} network mode cannot be combined"
            )
        if options.ip or options.network_aliases or options.mac_address:
            raise InvalidArgument(
                f"--ip, --network-alias and --mac-address need a bridge network, not {mode}"
            )
        if mode.startswith("container:"):
            if options.hostname or options.dns or options.add_hosts or options.dns_search:
                raise InvalidArgument(
                    "conflicting options: --hostname, --dns and --add-host cannot be used with container: networking"
                )
            resolve(mode.split(":", 1)[1])
        return None
    network = networks.resolve(mode)
    if network.driver != "bridge":
        return _network_for(dataclasses.replace(options, network=network.name))
    if network.predefined and options.network_aliases:
        raise InvalidArgument("network-scoped aliases are only supported for user-defined networks")
    return network


def _stored_mode(options: opts.ContainerOptions) -> str:
    mode = network_mode(options)
    if mode.startswith("container:"):
        return f"container:{resolve(mode.split(':', 1)[1]).id}"
    return mode


def _prepare_mounts(
    options: opts.ContainerOptions, image_config: dict[str, Any], undo: UndoStack
) -> list[Mount]:
    """Mount rows for the request plus the image's declared volumes; creates volumes as needed."""
    rows: list[Mount] = []
    requested = {m.destination for m in options.mounts}
    implicit = [
        opts.MountRequest("volume", path)
        for path in sorted((image_config.get("Volumes") or {}).keys())
        if path not in requested
    ]
    for request in (*options.mounts, *implicit):
        runtime_spec.validate_destination(request.destination)
        if request.kind == "volume":
            volume = _volume_for(request.source, undo)
            rows.append(
                Mount(
                    kind=Mount.Kind.VOLUME,
                    source=volume.name,
                    destination=request.destination,
                    volume=volume,
                    read_only=request.read_only,
                    # Docker's copy-up: an empty volume gets the image's files at its first start
                    # (unless asked not to: -v name:/path:nocopy, --mount …,volume-nocopy).
                    options={"copy_up": ("nocopy", "true") not in request.options},
                )
            )
        else:
            rows.append(
                Mount(
                    kind=request.kind,
                    # The resolved path is stored: what was checked is what is mounted.
                    source=bindpolicy.resolve(request.source) if request.kind == "bind" else request.source,
                    destination=request.destination,
                    read_only=request.read_only,
                    options=dict(request.options),
                )
            )
    return rows


def _volume_for(name: str, undo: UndoStack) -> Volume:
    """The named volume (created on first use, as Docker does) or a new anonymous one."""
    if name:
        try:
            return volumes.get(name)
        except VolumeNotFound:
            pass
    volume = volumes.create(name or None)
    undo.push(_remove_volume_quietly, volume.name)  # made by this create: a failed create takes it back
    return volume


def _remove_volume_quietly(name: str) -> None:
    try:
        volumes.remove(name, force=True)
    except Exception:  # noqa: BLE001 — best effort while undoing a failed create
        pass


def rename(ref: str, new_name: str) -> Container:
    new_name = opts.validate_name(new_name)
    container = resolve(ref)
    with locks.locked("container", container.id):
        container.refresh_from_db()
        if container.name == new_name:
            raise InvalidArgument(f"renaming a container with the same name as its current name: {new_name}")
        if Container.objects.filter(name=new_name).exists():
            raise AlreadyExists(f'the container name "/{new_name}" is already in use')
        old = container.name
        container.name = new_name
        try:
            container.save(update_fields=["name"])
        except IntegrityError:
            raise AlreadyExists(f'the container name "/{new_name}" is already in use') from None
        if container.endpoints.filter(network__predefined=False).exists():
            netsetup.sync_dns()  # names follow the container
    events.record(
        "container", "rename", object_id=container.id, object_name=new_name, attributes={"old": old}
    )
    return container


def list_containers(
    *, all: bool = False, filters: dict[str, list[str]] | None = None, last: int = 0
) -> list[Container]:
    """`ps`: running containers (all with all=True), newest first, filtered like docker ps --filter."""
    filters = filters or {}
    known = {"status", "name", "label", "ancestor", "id", "exited", "health"}
    for key in filters:
        if key not in known:
            raise InvalidArgument(f"invalid filter {key!r} (use {', '.join(sorted(known))})")
    qs = (
        Container.objects.select_related("image")
        .prefetch_related("mounts__volume", "endpoints__network")
        .order_by("-created")
    )
    if not all and not filters.get("status") and not last:
        qs = qs.filter(state__in=[ContainerState.RUNNING, ContainerState.PAUSED, ContainerState.RESTARTING])
    statuses = filters.get("status", [])
    for status in statuses:
        if status not in ContainerState.values:
            raise InvalidArgument(
                f"invalid filter status={status!r} (use {', '.join(ContainerState.values)})"
            )
    if statuses:
        qs = qs.filter(state__in=statuses)
    for value in filters.get("id", []):
        qs = qs.filter(id__startswith=value)
    for value in filters.get("exited", []):
        qs = qs.filter(
            state=ContainerState.EXITED, exit_code=int(value) if value.lstrip("-").isdigit() else -999
        )
    health = {healthoptions.check_filter(value) for value in filters.get("health", [])}
    result = list(qs[:last] if last else qs)
    if health:  # several values: any of them, as Docker's filters do
        result = [c for c in result if healthoptions.health_status(c) in health]
    for value in filters.get("name", []):
        result = [c for c in result if value.lstrip("/") in c.name]
    for value in filters.get("label", []):
        key, sep, want = value.partition("=")
        result = [c for c in result if key in c.labels and (not sep or c.labels[key] == want)]
    for value in filters.get("ancestor", []):
        try:
            image = images.resolve(value)
        except Exception:  # noqa: BLE001 — an unknown ancestor simply matches nothing
            result = []
            continue
        result = [c for c in result if c.image_id == image.id]
    return result


def remove_records(container: Container, *, remove_volumes: bool) -> None:
    """Delete the container's rows and directory, and its anonymous volumes when asked (runtime already cleaned up)."""
    anonymous = list(container.mounts.filter(volume__anonymous=True).values_list("volume__name", flat=True))
    directory = container_dir(container.id)
    container.delete()
    shutil.rmtree(directory, ignore_errors=True)
    if remove_volumes:
        for name in anonymous:
            _remove_volume_quietly(name)


def check(action: str, container: Container) -> None:
    transitions.check(action, container.state, container.name)


def allows(action: str, state: str) -> bool:
    """True if the transition table lets `action` start from `state` (for offering it in a front end)."""
    return state in transitions.ALLOWED[action]


def search(query: str = "", *, states: tuple[str, ...] | None = None) -> QuerySet[Container]:
    """Containers whose name or image contains `query` (or whose ID starts with it), newest first.

    A lazy queryset, so the dashboard can page it in SQL; only the list's columns are loaded.
    """
    rows = Container.objects.only("id", "name", "image_ref", "state", "exit_code", "created").order_by(
        "-created"
    )
    if states:
        rows = rows.filter(state__in=states)
    query = query.strip()
    if query:
        match = Q(name__icontains=query) | Q(image_ref__icontains=query)
        if all(c in "0123456789abcdef" for c in query):
            match |= Q(id__startswith=query)
        rows = rows.filter(match)
    return rows


def state_counts() -> dict[str, int]:
    """How many containers are in each state."""
    return dict(Container.objects.values_list("state").annotate(n=Count("id")))


def count_by_image() -> dict[str, int]:
    """How many containers each image has, by image ID."""
    return dict(Container.objects.values_list("image_id").annotate(n=Count("id")))
