"""Docker's `POST /containers/create` body → the engine's ContainerOptions.

Pure: a decoded JSON object in, frozen dataclasses out. Every field is type-checked before use so
that a wrong type is a 400 naming the field ("Cmd", "HostConfig.Memory"), never a 500. Fields the
engine cannot honour are refused when set to something other than their empty value, rather than
silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.api.fields import Fields, wrong
from engine.errors import InvalidArgument
from engine.services import healthoptions
from engine.services import options as opts

# Docker log drivers whose size caps map onto the engine's own capped log file.
LOG_DRIVERS = ("", "json-file", "k8s-file", "local")
# Labels that only Docker's SELinux/AppArmor integration reads; there is nothing to turn off here.
IGNORED_SECURITY_OPTS = ("label=disable", "label:disable", "apparmor=unconfined", "apparmor:unconfined")
# HostConfig fields the engine has no equivalent for: an empty value is fine, anything else is a 400.
UNSUPPORTED_HOST_FIELDS = (
    "Devices",
    "VolumesFrom",
    "Links",
    "UsernsMode",
    "DeviceRequests",
    "Sysctls",
)
# Namespace modes other than the container's own.
SHARED_NAMESPACE_FIELDS = ("PidMode", "IpcMode", "UTSMode", "CgroupnsMode")
PRIVATE_NAMESPACE_VALUES = ("", "private", "shareable")


@dataclass(frozen=True)
class ExtraNetwork:
    """A network named in NetworkingConfig besides the main one: joined right after create."""

    name: str
    aliases: tuple[str, ...] = ()
    ip: str | None = None


@dataclass(frozen=True)
class CreateSpec:
    options: opts.ContainerOptions
    extra_networks: tuple[ExtraNetwork, ...] = ()


# -- the translation ------------------------------------------------------------------------------


def parse_create(body: dict[str, Any], *, name: str | None = None) -> CreateSpec:
    """Translate a create body (Config fields at the top, HostConfig, NetworkingConfig)."""
    config = Fields(body, "")
    host = config.child("HostConfig")
    networking = config.child("NetworkingConfig")
    image = config.string("Image")
    if not image:
        raise InvalidArgument("config.Image is required: name the image to create the container from")
    _refuse_unsupported(host)

    mounts = _mounts(config, host)
    network, main_endpoint, extra = _networks(host, networking)
    restart = _restart(host)
    security = host.strings("SecurityOpt") or []
    no_new_privileges, seccomp_unconfined = _security(security)
    log_size, log_files = _log_config(host)
    mac = main_endpoint.get("mac") or config.string("MacAddress") or None
    memory = host.integer("Memory") or None
    swap = host.integer("MemorySwap") or None
    pids = host.integer("PidsLimit")
    stop_timeout = config.integer("StopTimeout")
    options = opts.ContainerOptions(
        image=image,
        name=name or None,
        command=_tuple_or_none(config.str_slice("Cmd")),
        entrypoint=_tuple_or_none(config.str_slice("Entrypoint")),
        env=tuple(_env(config)),
        workdir=config.string("WorkingDir") or None,
        user=config.string("User") or None,
        labels=config.string_map("Labels"),
        hostname=config.string("Hostname") or None,
        mounts=tuple(mounts),
        restart=restart,
        memory=memory,
        memory_swap=swap,
        cpus=_cpus(host),
        pids_limit=None if pids in (None, 0) else (-1 if pids < 0 else pids),
        read_only=host.boolean("ReadonlyRootfs"),
        cap_add=tuple(host.strings("CapAdd") or ()),
        cap_drop=tuple(host.strings("CapDrop") or ()),
        privileged=host.boolean("Privileged"),
        stop_signal=config.string("StopSignal") or None,
        stop_timeout=stop_timeout,
        init=_init(host),
        network=network,
        ip=main_endpoint.get("ip") or None,
        mac_address=mac,
        network_aliases=tuple(main_endpoint.get("aliases") or ()),
        add_hosts=tuple(_add_hosts(host)),
        dns=tuple(host.strings("Dns") or ()),
        dns_search=tuple(host.strings("DnsSearch") or ()),
        expose=tuple(sorted(config.mapping("ExposedPorts"))),
        publish=tuple(_publish(host)),
        publish_all=host.boolean("PublishAllPorts"),
        tty=config.boolean("Tty"),
        interactive=config.boolean("OpenStdin"),
        auto_remove=host.boolean("AutoRemove"),
        log_max_size=log_size,
        log_max_file=log_files,
        no_new_privileges=no_new_privileges,
        seccomp_unconfined=seccomp_unconfined,
        **_healthcheck(config.child("Healthcheck")),
    )
    return CreateSpec(options=options, extra_networks=tuple(extra))


def _healthcheck(health: Fields) -> dict[str, Any]:
    """Config.Healthcheck → ContainerOptions' health fields (zero or empty = the image's value, as Docker)."""
    test = health.strings("Test")
    healthoptions.check_test(test, health.name("Test"))
    values: dict[str, Any] = {"health_test": tuple(test) if test else None}
    for field, key in healthoptions.DURATION_FIELDS:
        values[field] = healthoptions.check_duration(health.integer(key) or 0, health.name(key)) or None
    retries = health.integer("Retries") or 0
    if retries < 0:
        raise InvalidArgument(f"{health.name('Retries')} cannot be negative")
    values["health_retries"] = retries or None
    return values


def _tuple_or_none(value: list[str] | None) -> tuple[str, ...] | None:
    return tuple(value) if value is not None else None


def _env(config: Fields) -> list[str]:
    env = config.strings("Env") or []
    for item in env:
        if not item or item.startswith("="):
            raise InvalidArgument(f"invalid environment variable: {item!r}")
    return env


def _init(host: Fields) -> bool:
    value = host.raw("Init")
    if value is None or isinstance(value, bool):
        return bool(value)
    raise wrong(host.name("Init"), "a boolean or null", value)


def _refuse_unsupported(host: Fields) -> None:
    for key in UNSUPPORTED_HOST_FIELDS:
        value = host.raw(key)
        if value:
            raise InvalidArgument(f"HostConfig.{key} is not supported by Berth")
    for key in SHARED_NAMESPACE_FIELDS:
        value = host.string(key)
        if value and value not in PRIVATE_NAMESPACE_VALUES:
            raise InvalidArgument(
                f"HostConfig.{key} {value!r} is not supported: containers keep their own namespace"
            )
    if host.raw("Capabilities"):
        raise InvalidArgument("HostConfig.Capabilities is not supported; use CapAdd and CapDrop")


def _cpus(host: Fields) -> float | None:
    nano = host.integer("NanoCpus") or 0
    quota = host.integer("CpuQuota") or 0
    period = host.integer("CpuPeriod") or 0
    if nano and quota:
        raise InvalidArgument("conflicting options: NanoCpus and CpuQuota cannot both be set")
    if nano < 0 or quota < 0 or period < 0:
        raise InvalidArgument("NanoCpus, CpuQuota and CpuPeriod must not be negative")
    if nano:
        return nano / 1e9
    if quota:
        return quota / (period or 100_000)
    return None


def _restart(host: Fields) -> opts.RestartPolicy:
    policy = host.child("RestartPolicy")
    name = policy.string("Name") or "no"
    count = policy.integer("MaximumRetryCount") or 0
    if name not in opts.RESTART_POLICIES:
        raise InvalidArgument(f"invalid restart policy {name!r}: use {', '.join(opts.RESTART_POLICIES)}")
    if count < 0:
        raise InvalidArgument("invalid restart policy: MaximumRetryCount must not be negative")
    if count and name != "on-failure":
        raise InvalidArgument(f"invalid restart policy: maximum retry count cannot be used with {name!r}")
    return opts.RestartPolicy(name, count)


def _security(items: list[str]) -> tuple[bool, bool]:
    no_new_privileges = True
    seccomp_unconfined = False
    for item in items:
        key, _, value = item.replace(":", "=", 1).partition("=")
        if key == "no-new-privileges":
            if value not in ("", "true", "false"):
                raise InvalidArgument(f"invalid SecurityOpt {item!r}: no-new-privileges takes true or false")
            no_new_privileges = value != "false"
        elif key == "seccomp" and value == "unconfined":
            seccomp_unconfined = True
        elif item in IGNORED_SECURITY_OPTS:
            continue
        else:
            raise InvalidArgument(
                f"unsupported SecurityOpt {item!r} (use no-new-privileges[=true|false] or seccomp=unconfined)"
            )
    return no_new_privileges, seccomp_unconfined


def _log_config(host: Fields) -> tuple[int | None, int | None]:
    log = host.child("LogConfig")
    driver = log.string("Type") or ""
    if driver not in LOG_DRIVERS:
        raise InvalidArgument(f"logging driver {driver!r} is not supported (use json-file or local)")
    config = log.string_map("Config")
    size = opts.parse_size(config["max-size"], "max-size") if config.get("max-size") else None
    files = None
    if config.get("max-file"):
        text = config["max-file"]
        if not text.isdigit() or int(text) < 1:
            raise InvalidArgument(f"invalid LogConfig max-file {text!r}: expected a positive integer")
        files = int(text)
    unknown = set(config) - {"max-size", "max-file", "compress", "mode", "max-buffer-size"}
    if unknown:
        raise InvalidArgument(f"unknown log option(s): {', '.join(sorted(unknown))}")
    return size, files


def _add_hosts(host: Fields) -> list[str]:
    # Docker's ExtraHosts entries are "name:ip"; the CLI also allows "name=ip".
    return [item.replace("=", ":", 1) if "=" in item else item for item in host.strings("ExtraHosts") or []]


def _publish(host: Fields) -> list[str]:
    """PortBindings {"80/tcp": [{"HostIp", "HostPort"}]} → the CLI's `[IP:][HOSTPORT:]PORT/PROTO` specs."""
    bindings = host.mapping("PortBindings")
    specs = []
    for key, entries in sorted(bindings.items()):
        where = f"HostConfig.PortBindings.{key}"
        if entries is None:
            entries = [{}]
        if not isinstance(entries, list):
            raise wrong(where, "a list of bindings", entries)
        if not entries:
            entries = [{}]
        port = key if "/" in key else f"{key}/tcp"
        for entry in entries:
            binding = Fields(entry, where)
            host_ip = binding.string("HostIp") or ""
            host_port = binding.string("HostPort") or ""
            if host_ip in ("::", "[::]"):
                continue  # the IPv6 twin of a 0.0.0.0 binding: Berth publishes on IPv4 only
            if host_ip:
                specs.append(f"{host_ip}:{host_port}:{port}")
            elif host_port:
                specs.append(f"{host_port}:{port}")
            else:
                specs.append(port)
    return specs


def _mounts(config: Fields, host: Fields) -> list[opts.MountRequest]:
    mounts = [opts.parse_volume(spec) for spec in host.strings("Binds") or []]
    raw_mounts = host.raw("Mounts")
    if raw_mounts is not None and not isinstance(raw_mounts, list):
        raise wrong("HostConfig.Mounts", "a list", raw_mounts)
    for index, item in enumerate(raw_mounts or []):
        mounts.append(_mount(Fields(item, f"HostConfig.Mounts[{index}]")))
    for path, options in sorted(host.string_map("Tmpfs").items()):
        mounts.append(opts.parse_tmpfs(f"{path}:{options}" if options else path))
    taken = {m.destination for m in mounts}
    for path in sorted(config.mapping("Volumes")):
        if path not in taken:
            mounts.append(opts.parse_volume(path))  # `-v /data`: an anonymous volume
    return mounts


def _mount(item: Fields) -> opts.MountRequest:
    kind = item.string("Type") or "volume"
    if kind not in ("volume", "bind", "tmpfs"):
        raise InvalidArgument(f"invalid mount type {kind!r} in {item.path}: use volume, bind or tmpfs")
    target = item.string("Target") or item.string("Destination")
    if not target:
        raise InvalidArgument(f"{item.path}.Target is required")
    parts = [f"type={kind}", f"target={target}"]
    source = item.string("Source") or ""
    if source:
        parts.append(f"source={source}")
    if item.boolean("ReadOnly"):
        parts.append("readonly")
    if kind == "volume" and item.child("VolumeOptions").boolean("NoCopy"):
        parts.append("volume-nocopy")
    if kind == "tmpfs":
        tmpfs = item.child("TmpfsOptions")
        size = tmpfs.integer("SizeBytes")
        if size:
            parts.append(f"tmpfs-size={size}")
        mode = tmpfs.integer("Mode")
        if mode:
            parts.append(f"tmpfs-mode={mode:o}")
    if "," in source or "," in target:
        raise InvalidArgument(f"{item.path}: commas are not supported in mount paths")
    return opts.parse_mount(",".join(parts))


def _networks(host: Fields, networking: Fields) -> tuple[str, dict[str, Any], list[ExtraNetwork]]:
    """The main network (NetworkMode), its endpoint settings, and any further networks to join."""
    mode = host.string("NetworkMode") or "default"
    main = "bridge" if mode == "default" else mode
    endpoints = networking.mapping("EndpointsConfig")
    main_settings: dict[str, Any] = {}
    extra = []
    for key, value in endpoints.items():
        settings = _endpoint(Fields(value, f"NetworkingConfig.EndpointsConfig.{key}"))
        if key == mode or (key == "default" and main == "bridge") or key == main:
            main_settings = settings
        elif main in ("host", "none") or main.startswith("container:"):
            raise InvalidArgument(f"container cannot be connected to network {key!r} in {main} network mode")
        else:
            extra.append(ExtraNetwork(key, tuple(settings.get("aliases") or ()), settings.get("ip")))
    return main, main_settings, extra


def _endpoint(settings: Fields) -> dict[str, Any]:
    aliases = settings.strings("Aliases") or []
    ipam = settings.child("IPAMConfig")
    ip = ipam.string("IPv4Address") or None
    mac = settings.string("MacAddress") or None
    if settings.strings("Links"):
        raise InvalidArgument(f"{settings.path}.Links is not supported by Berth")
    return {"aliases": aliases, "ip": ip, "mac": mac}
