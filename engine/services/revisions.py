"""Edit with history: a container's stored spec as ContainerOptions, recreate under the same name, rollback.

Every recreate keeps the spec it replaces as a numbered ContainerRevision (who, when, what changed).
Revisions outlive the Container rows they describe: they are grouped by a lineage UUID, and a
container's lineage is the one whose newest revision names its ID (see models.ContainerRevision).
A container that was never edited has no revisions; its revision 1 is written lazily, at the first
edit, from its stored row.

A recreate creates the new container first under a temporary name (so a bad image, volume, network
or option fails before anything is touched), then stops the old one, starts the new one, and only
then removes the old one and gives the new one its name. The old one is stopped *before* the new
one starts because both would otherwise hold the same fixed host ports and write to the same named
volumes at once (a database opened twice corrupts it); Docker compose orders it the same way. If the
new one does not start, it is removed and the old one is started again: the old container keeps its
ID, spec and volumes, but its process restarts.

Volumes: named volumes are mounted again by name. Anonymous volumes (`-v /data`, and the image's
VOLUMEs) are reused by destination, as compose does: the new container mounts the old one's anonymous
volume at the same path, so their data survives an edit too. Bind mounts and tmpfs are recreated
from the spec. Leased addresses are not part of the spec (the row does not say whether an address
was asked for), so the new container leases a fresh one; its aliases and extra networks are kept.
Containers run with --rm are refused: stopping them would remove them.

Over 400 lines because the spec round trip (row to options, options to dict and back, diff) and the recreate
that relies on it must change together.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import uuid
from typing import Any

from django.db import IntegrityError, transaction

from engine import events, locks
from engine.errors import EngineError, InvalidArgument, InvalidState
from engine.models import Container, ContainerRevision, ContainerState, Mount
from engine.net import ports
from engine.runtime import spec as runtime_spec
from engine.services import containers, healthoptions, lifecycle, volumes
from engine.services import options as opts

logger = logging.getLogger(__name__)

RUNNING_STATES = (ContainerState.RUNNING, ContainerState.PAUSED, ContainerState.RESTARTING)
# HostConfig limits that `update` may set but ContainerOptions cannot express: carried along as is.
EXTRA_HOST_KEYS = ("CpuShares", "CpuQuota", "CpuPeriod")
# Fields a diff leaves out: the name is the container's identity, not part of what changes.
_NOT_COMPARED = ("name",)


# -- the spec as a dict (what a revision stores) -------------------------------------------------


def to_dict(options: opts.ContainerOptions) -> dict[str, Any]:
    """ContainerOptions as JSON-ready values (tuples become lists)."""
    return dataclasses.asdict(options)


def from_dict(data: dict[str, Any]) -> opts.ContainerOptions:
    """Rebuild ContainerOptions from `to_dict`'s output; unknown keys (a newer Berth) are ignored."""
    known = {f.name: f for f in dataclasses.fields(opts.ContainerOptions)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            continue
        if key == "mounts":
            value = tuple(
                opts.MountRequest(
                    kind=m["kind"],
                    destination=m["destination"],
                    source=m.get("source", ""),
                    read_only=bool(m.get("read_only")),
                    options=tuple((str(k), str(v)) for k, v in m.get("options") or ()),
                )
                for m in value or ()
            )
        elif key == "restart":
            value = opts.RestartPolicy(value.get("name", "no"), int(value.get("maximum_retry_count", 0)))
        elif key == "labels":
            value = dict(value or {})
        elif isinstance(value, list):
            value = tuple(value)
        values[key] = value
    if "image" not in values:
        raise InvalidArgument("the stored spec names no image")
    return opts.ContainerOptions(**values)


# -- the stored row as ContainerOptions ----------------------------------------------------------


def spec_of(container: Container) -> opts.ContainerOptions:
    """Rebuild the options that would create ``container`` again (defaults from its image left out)."""
    config = container.config or {}
    host = container.host_config or {}
    image_config = (container.image.config or {}).get("config") or {}
    image_env = set(image_config.get("Env") or [])
    image_labels = image_config.get("Labels") or {}
    entrypoint, command = _command_of(config, image_config)
    restart = host.get("RestartPolicy") or {}
    log_config = (host.get("LogConfig") or {}).get("Config") or {}
    security = host.get("SecurityOpt") or []
    image_volumes = set((image_config.get("Volumes") or {}).keys())
    mode = host.get("NetworkMode") or "bridge"
    endpoints = list(container.endpoints.select_related("network"))
    primary = next((e for e in endpoints if mode in (e.network.name, e.network.id)), None)
    publish = _publish_specs(host.get("PortBindings"))
    published = {key for spec in publish for key in (r.key for r in ports.parse_publish(spec))}
    image_exposed = set((image_config.get("ExposedPorts") or {}).keys())
    expose = tuple(
        key for key in (config.get("ExposedPorts") or {}) if key not in image_exposed and key not in published
    )
    stop_signal = config.get("StopSignal") or ""
    stop_timeout = config.get("StopTimeout")
    return opts.ContainerOptions(
        image=container.image_ref,
        name=container.name,
        command=command,
        entrypoint=entrypoint,
        env=tuple(e for e in config.get("Env") or [] if e not in image_env),
        workdir=_unless(config.get("WorkingDir") or None, image_config.get("WorkingDir") or None),
        user=_unless(config.get("User") or None, image_config.get("User") or None),
        labels={k: v for k, v in (config.get("Labels") or {}).items() if image_labels.get(k) != v},
        hostname=config.get("Hostname") or None,
        mounts=tuple(
            _mount_request(m)
            for m in container.mounts.select_related("volume").order_by("id")
            if not (_anonymous(m) and m.destination in image_volumes)
        ),
        restart=opts.RestartPolicy(restart.get("Name") or "no", int(restart.get("MaximumRetryCount") or 0)),
        memory=int(host.get("Memory") or 0) or None,
        memory_swap=int(host.get("MemorySwap") or 0) or None,
        cpus=(int(host.get("NanoCpus") or 0) / 1e9) or None,
        pids_limit=_unless(host.get("PidsLimit"), runtime_spec.DEFAULT_PIDS_LIMIT),
        read_only=bool(host.get("ReadonlyRootfs")),
        cap_add=tuple(host.get("CapAdd") or ()),
        cap_drop=tuple(host.get("CapDrop") or ()),
        privileged=bool(host.get("Privileged")),
        stop_signal=_unless(stop_signal, image_config.get("StopSignal") or "SIGTERM") or None,
        stop_timeout=_unless(stop_timeout, opts.DEFAULT_STOP_TIMEOUT),
        init=bool(host.get("Init")),
        network=mode,
        mac_address=config.get("MacAddress") or None,
        network_aliases=tuple(primary.aliases) if primary is not None else (),
        add_hosts=tuple(host.get("ExtraHosts") or ()),
        dns=tuple(host.get("Dns") or ()),
        dns_search=tuple(host.get("DnsSearch") or ()),
        expose=expose,
        publish=publish,
        publish_all=bool(host.get("PublishAllPorts")),
        tty=bool(config.get("Tty")),
        interactive=bool(config.get("OpenStdin")),
        auto_remove=bool(host.get("AutoRemove")),
        log_max_size=_unless(_int(log_config.get("max-size")), opts.DEFAULT_LOG_MAX_SIZE),
        log_max_file=_unless(_int(log_config.get("max-file")), opts.DEFAULT_LOG_MAX_FILE),
        no_new_privileges="no-new-privileges:false" not in security,
        seccomp_unconfined="seccomp=unconfined" in security,
        **healthoptions.options_of(config, image_config.get("Healthcheck")),
    )


def extras_of(container: Container) -> dict[str, Any]:
    """What a recreate carries along besides the options: `update`-only limits and extra networks."""
    host = container.host_config or {}
    mode = host.get("NetworkMode") or "bridge"
    networks = [
        [e.network.name, list(e.aliases)]
        for e in container.endpoints.select_related("network")
        if mode not in (e.network.name, e.network.id)
    ]
    return {"host": {k: host[k] for k in EXTRA_HOST_KEYS if host.get(k)}, "networks": networks}


def _command_of(config: dict[str, Any], image_config: dict[str, Any]) -> tuple[Any, Any]:
    """(entrypoint, command) options that reproduce the stored Entrypoint and Cmd."""
    entry, cmd = config.get("Entrypoint"), config.get("Cmd")
    image_entry, image_cmd = image_config.get("Entrypoint"), image_config.get("Cmd")
    if entry == image_entry and (cmd is not None or image_cmd is None):
        return None, (None if cmd == image_cmd else tuple(cmd or ()))
    # A changed entrypoint (or one given again, which resets the image's Cmd): say it explicitly.
    entrypoint = tuple(entry) if entry else ("",)
    return entrypoint, (tuple(cmd) if cmd is not None else None)


def _publish_specs(bindings: dict[str, list[dict[str, str]]] | None) -> tuple[str, ...]:
    specs = []
    for request in ports.from_port_bindings(bindings):
        host = ""
        if request.host_first:
            host = str(request.host_first)
            if request.host_last and request.host_last != request.host_first:
                host += f"-{request.host_last}"
        container_port = f"{request.container_port}/{request.proto}".removesuffix("/tcp")
        if request.host_ip:
            specs.append(f"{request.host_ip}:{host}:{container_port}")
        elif host:
            specs.append(f"{host}:{container_port}")
        else:
            specs.append(container_port)
    return tuple(specs)


def _anonymous(mount: Mount) -> bool:
    return mount.kind == Mount.Kind.VOLUME and mount.volume is not None and mount.volume.anonymous


def _mount_request(mount: Mount) -> opts.MountRequest:
    if mount.kind == Mount.Kind.VOLUME:
        source = "" if _anonymous(mount) else mount.source
        # A volume the user asked not to fill must stay unfilled in the recreated container too.
        nocopy = (("nocopy", "true"),) if (mount.options or {}).get("copy_up") is False else ()
        return opts.MountRequest("volume", mount.destination, source, mount.read_only, nocopy)
    options = tuple((str(k), str(v)) for k, v in (mount.options or {}).items())
    if mount.kind == Mount.Kind.BIND:
        options = ()
    return opts.MountRequest(str(mount.kind), mount.destination, mount.source, mount.read_only, options)


def _unless(value: Any, default: Any) -> Any:
    return None if value == default else value


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# -- differences -------------------------------------------------------------------------------


def diff(old: opts.ContainerOptions, new: opts.ContainerOptions) -> list[tuple[str, Any, Any]]:
    """(field, old value, new value) for each option that differs, in ContainerOptions' order (pure)."""
    changes = []
    for f in dataclasses.fields(opts.ContainerOptions):
        if f.name in _NOT_COMPARED:
            continue
        a, b = _comparable(getattr(old, f.name)), _comparable(getattr(new, f.name))
        if a != b:
            changes.append((f.name, display(getattr(old, f.name)), display(getattr(new, f.name))))
    return changes


def _comparable(value: Any) -> Any:
    if isinstance(value, tuple) and value and isinstance(value[0], opts.MountRequest):
        # Mounts are a set by destination: their order in a form or on the row means nothing.
        return sorted((m.destination, m.kind, m.source, m.read_only, sorted(m.options)) for m in value)
    return value


def display(value: Any) -> Any:
    """A JSON-ready, readable form of an option's value: lists of strings, text, numbers or None."""
    if isinstance(value, opts.RestartPolicy):
        return f"{value.name}:{value.maximum_retry_count}" if value.maximum_retry_count else value.name
    if isinstance(value, opts.MountRequest):
        return _mount_text(value)
    if isinstance(value, dict):
        return [f"{k}={v}" for k, v in sorted(value.items())]
    if isinstance(value, tuple):
        return [display(v) for v in value]
    return value


def _mount_text(m: opts.MountRequest) -> str:
    if m.kind == "tmpfs":
        extra = ",".join(k + (f"={v}" if v else "") for k, v in m.options)
        return f"tmpfs {m.destination}" + (f":{extra}" if extra else "") + (" (ro)" if m.read_only else "")
    source = m.source or "(anonymous)"
    return f"{m.kind} {source}:{m.destination}" + (":ro" if m.read_only else "")


# -- history -----------------------------------------------------------------------------------


def lineage_of(container: Container) -> uuid.UUID | None:
    """The lineage whose newest revision is this container, or None (never edited)."""
    row = ContainerRevision.objects.filter(container_id=container.id).order_by("-number").first()
    return row.lineage if row is not None else None


def revisions(ref: str) -> list[ContainerRevision]:
    """The container's revisions, newest first (empty for a container never edited)."""
    container = containers.resolve(ref)
    lineage = lineage_of(container)
    if lineage is None:
        return []
    return list(ContainerRevision.objects.filter(lineage=lineage).order_by("-number"))


def revision(ref: str, number: int) -> ContainerRevision:
    """One revision of the container; InvalidArgument names the ones there are."""
    rows = revisions(ref)
    for row in rows:
        if row.number == number:
            return row
    have = ", ".join(str(r.number) for r in reversed(rows)) or "none yet: it was never edited"
    raise InvalidArgument(f"container {ref} has no revision {number} (revisions: {have})")


def _first_revision(container: Container) -> ContainerRevision:
    """Record the container's current spec as revision 1 of a new lineage (lazily, at its first edit)."""
    spec = {**to_dict(spec_of(container)), "_extra": extras_of(container)}
    return ContainerRevision.objects.create(
        lineage=uuid.uuid4(),
        number=1,
        name=container.name,
        container_id=container.id,
        spec=spec,
        action="create",
        actor=container.created_by,
        created=container.created,
    )


# -- recreate ----------------------------------------------------------------------------------


def recreate(
    ref: str,
    new_options: opts.ContainerOptions,
    *,
    actor: str | None = None,
    extras: dict[str, Any] | None = None,
    action: str = "edit",
    summary: dict[str, Any] | None = None,
) -> Container:
    """Replace the container by one made from ``new_options`` under the same name; return the new one.

    Records the replaced spec as a revision (revision 1 lazily) and the new one as the next. Raises
    InvalidArgument when nothing would change or the container runs with --rm, any EngineError from
    create (the old container is then untouched), and InvalidState when the new container does not
    start (it is removed and the old one started again, so it keeps running its previous spec).
    """
    actor = actor or events.current_actor()
    with events.acting_as(actor):
        old = containers.resolve(ref)
        # Not the container's own lock: stop, start and remove take that one themselves.
        with locks.locked("recreate", old.id):
            containers.refresh(old)
            try:
                return _recreate(old, new_options, actor, extras, action, summary)
            except EngineError as exc:
                events.record(
                    "container",
                    action,
                    object_id=old.id,
                    object_name=old.name,
                    result="error",
                    message=str(exc),
                )
                raise


def _recreate(
    old: Container,
    new_options: opts.ContainerOptions,
    actor: str,
    extras: dict[str, Any] | None,
    action: str,
    summary: dict[str, Any] | None,
) -> Container:
    name = old.name
    if old.host_config.get("AutoRemove"):
        raise InvalidArgument(
            f"container {name} runs with --rm: stopping it would remove it, so it cannot be edited",
            hint="duplicate it under a new name instead",
        )
    lifecycle.refresh(old)
    current = spec_of(old)
    target = dataclasses.replace(new_options, name=name)
    extras = extras if extras is not None else extras_of(old)
    changes = diff(current, target)
    if extras != extras_of(old):
        changes.append(("extra", display_extras(extras_of(old)), display_extras(extras)))
    if not changes:
        raise InvalidArgument(f"nothing to change: the new spec of {name} is the same as its current one")
    lineage = lineage_of(old)
    if lineage is None:
        lineage = _first_revision(old).lineage
    was_running = old.state in RUNNING_STATES
    old_anonymous = {
        m.destination: m.volume.name
        for m in old.mounts.select_related("volume")
        if m.volume is not None and _anonymous(m)
    }
    temporary = f"{name[:200]}-new-{secrets.token_hex(3)}"
    new = containers.create(dataclasses.replace(_reusing(target, old, old_anonymous), name=temporary))
    try:
        _apply_extras(new, extras)
        if was_running:
            lifecycle.stop(old.id)
            try:
                lifecycle.start(new.id)
            except EngineError as exc:
                restarted = _start_again(old)
                raise InvalidState(
                    f"{name} was not changed: the new spec did not start: {exc}",
                    hint=f"the previous container {'is running again' if restarted else 'could not be restarted'}",
                ) from exc
    except BaseException:
        _discard(new, keep=set(old_anonymous.values()))
        raise
    lifecycle.remove(old.id, force=True, volumes=False)
    containers.rename(new.id, name)
    number = _next_number(lineage)
    stored = {**to_dict(target), "_extra": extras}
    try:
        with transaction.atomic():
            ContainerRevision.objects.create(
                lineage=lineage,
                number=number,
                name=name,
                container_id=new.id,
                spec=stored,
                action=action,
                restored=(summary or {}).get("to"),
                changes=[list(c) for c in changes],
                actor=actor,
            )
    except IntegrityError:  # cannot happen under the recreate lock; say so rather than lose history
        logger.exception("revision %s of %s was recorded twice", number, name)
    events.record(
        "container",
        action,
        object_id=new.id,
        object_name=name,
        attributes={
            "revision": number,
            "replaced": old.id,
            "changed": ", ".join(c[0] for c in changes),
            **(summary or {}),
        },
    )
    return containers.resolve(new.id)


def display_extras(extras: dict[str, Any]) -> list[str]:
    out = [f"{k}={v}" for k, v in sorted((extras.get("host") or {}).items())]
    out += [f"network {n}" + (f" ({', '.join(a)})" if a else "") for n, a in extras.get("networks") or []]
    return out


def _reusing(
    target: opts.ContainerOptions, old: Container, old_anonymous: dict[str, str]
) -> opts.ContainerOptions:
    """The target with each anonymous volume replaced by the old container's one at the same path."""
    image_config = (old.image.config or {}).get("config") or {}
    mounts = []
    for m in target.mounts:
        if m.kind == "volume" and not m.source and m.destination in old_anonymous:
            m = dataclasses.replace(m, source=old_anonymous[m.destination])
        mounts.append(m)
    requested = {m.destination for m in mounts}
    # The image's VOLUMEs are anonymous too; keep them if the new spec still uses that image's paths.
    if target.image == old.image_ref:
        for path in sorted((image_config.get("Volumes") or {}).keys()):
            if path not in requested and path in old_anonymous:
                mounts.append(opts.MountRequest("volume", path, old_anonymous[path]))
    return dataclasses.replace(target, mounts=tuple(mounts))


def _apply_extras(new: Container, extras: dict[str, Any]) -> None:
    from engine.services import networks

    host = {k: v for k, v in (extras.get("host") or {}).items() if k in EXTRA_HOST_KEYS}
    if host:
        Container.objects.filter(pk=new.pk).update(host_config={**new.host_config, **host})
        new.refresh_from_db()
    for network, aliases in extras.get("networks") or []:
        networks.connect(network, new.id, aliases=tuple(aliases))


def _start_again(old: Container) -> bool:
    try:
        lifecycle.start(old.id)
        return True
    except EngineError:
        logger.exception("could not restart %s after a failed recreate", old.name)
        return False


def _discard(new: Container, *, keep: set[str]) -> None:
    """Remove the half-made container and the volumes made for it (not the old one's it reused)."""
    made = [
        m.volume.name
        for m in new.mounts.select_related("volume")
        if m.volume is not None and m.volume.anonymous and m.volume.name not in keep
    ]
    try:
        lifecycle.remove(new.id, force=True, volumes=False)
    except EngineError:
        logger.exception("could not remove %s after a failed recreate", new.name)
        return
    for volume in made:
        try:
            volumes.remove(volume, force=True)
        except EngineError:
            logger.exception("could not remove volume %s after a failed recreate", volume)


def _next_number(lineage: uuid.UUID) -> int:
    last = ContainerRevision.objects.filter(lineage=lineage).order_by("-number").first()
    return (last.number if last is not None else 0) + 1


def rollback(ref: str, number: int | None = None, *, actor: str | None = None) -> Container:
    """Recreate the container from revision ``number`` (default: the one before the current)."""
    rows = revisions(ref)
    if not rows:
        raise InvalidArgument(f"container {ref} has no revisions to roll back to: it was never edited")
    if number is None:
        if len(rows) < 2:
            raise InvalidArgument(f"container {ref} has only one revision")
        chosen = rows[1]
    else:
        chosen = revision(ref, number)
    if chosen.number == rows[0].number:
        raise InvalidArgument(f"revision {chosen.number} is the current one of {ref}")
    return recreate(
        ref,
        from_dict(chosen.spec),
        actor=actor,
        extras=chosen.spec.get("_extra") or {"host": {}, "networks": []},
        action="rollback",
        summary={"to": chosen.number},
    )
