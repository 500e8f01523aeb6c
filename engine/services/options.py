"""What a user asks for when creating a container, and the parsers for docker's option syntax.

Pure: strings in, frozen dataclasses out. Every front end (CLI, dashboard form, a future API) fills a
ContainerOptions and hands it to services.containers.create. It sits with the services, not in runtime/,
because it is the request front ends build: the runtime only sees what the bundle makes of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from engine.errors import InvalidArgument
from engine.image import stopsignal
from engine.net import ports
from engine.runtime import tmpfs

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([bkmgt]?)i?b?$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")
DEFAULT_STOP_TIMEOUT = 10
DEFAULT_LOG_MAX_SIZE = 20 << 20  # a cap by default: a log flood must not fill the disk (A35)
DEFAULT_LOG_MAX_FILE = 3


@dataclass(frozen=True)
class MountRequest:
    """One -v / --mount / --tmpfs request. kind: volume (named or anonymous), bind or tmpfs."""

    kind: str
    destination: str
    source: str = ""  # volume name ("" = anonymous) or host path
    read_only: bool = False
    options: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class RestartPolicy:
    name: str = "no"
    maximum_retry_count: int = 0


@dataclass(frozen=True)
class ContainerOptions:
    image: str
    name: str | None = None
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    env: tuple[str, ...] = ()
    workdir: str | None = None
    user: str | None = None
    labels: dict[str, str] = field(default_factory=dict, hash=False)
    hostname: str | None = None
    mounts: tuple[MountRequest, ...] = ()
    restart: RestartPolicy = RestartPolicy()
    memory: int | None = None
    memory_swap: int | None = None
    cpus: float | None = None
    pids_limit: int | None = None
    read_only: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    privileged: bool = False
    stop_signal: str | None = None
    stop_timeout: int | None = None
    init: bool = False
    network: str = "bridge"
    ip: str | None = None
    mac_address: str | None = None
    network_aliases: tuple[str, ...] = ()
    add_hosts: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    expose: tuple[str, ...] = ()
    publish: tuple[str, ...] = ()
    publish_all: bool = False
    tty: bool = False
    interactive: bool = False
    auto_remove: bool = False
    log_max_size: int | None = None
    log_max_file: int | None = None
    no_new_privileges: bool = True
    seccomp_unconfined: bool = False
    # Health check overrides (services/healthoptions.py): None takes the image's HEALTHCHECK value.
    health_test: tuple[str, ...] | None = None  # ("CMD-SHELL", s), ("CMD", …) or ("NONE",)
    health_interval: int | None = None  # nanoseconds, like the four below
    health_timeout: int | None = None
    health_start_period: int | None = None
    health_start_interval: int | None = None
    health_retries: int | None = None
    health_on_failure: str = "none"  # none|kill|restart|stop (Podman's --health-on-failure)

    def uses_bind_mounts(self) -> bool:
        return any(m.kind == "bind" for m in self.mounts)


def parse_size(value: str, what: str = "size") -> int:
    """`512m`, `1g`, `1.5GiB`, `4096` → bytes (binary units, as docker)."""
    match = _SIZE.match(value.strip())
    if not match:
        raise InvalidArgument(f"invalid {what} {value!r}: use a number with an optional unit b, k, m or g")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def parse_cpus(value: str) -> float:
    try:
        cpus = float(value)
    except ValueError:
        raise InvalidArgument(f"invalid --cpus {value!r}: expected a number such as 0.5") from None
    if cpus <= 0 or cpus > 1024:
        raise InvalidArgument(f"invalid --cpus {value!r}: must be greater than 0")
    return cpus


def parse_restart(value: str) -> RestartPolicy:
    name, _, count = value.partition(":")
    if name not in RESTART_POLICIES:
        raise InvalidArgument(f"invalid restart policy {value!r}: use {', '.join(RESTART_POLICIES)}")
    if count:
        if name != "on-failure":
            raise InvalidArgument(f"invalid restart policy {value!r}: only on-failure takes a retry count")
        if not count.isdigit():
            raise InvalidArgument(f"invalid restart policy {value!r}: the retry count must be a number")
        return RestartPolicy(name, int(count))
    return RestartPolicy(name, 0)


def parse_signal(value: str) -> int:
    """SIGTERM, TERM, 15, SIGRTMIN+3 → a number; the one validator in engine.image.stopsignal."""
    return stopsignal.parse_signal(value)


def signal_name(number: int) -> str:
    return stopsignal.signal_name(number)


def validate_name(name: str) -> str:
    """Docker's container name rule; a leading slash is accepted and dropped."""
    if not _NAME.fullmatch(name):
        raise InvalidArgument(
            f'invalid container name "{name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, at least 2 characters'
        )
    return name.lstrip("/")


def check_publish(spec: str) -> None:
    """Raise InvalidArgument unless `spec` is a valid -p value (`[IP:][HOSTPORT:]CONTAINERPORT[/PROTO]`)."""
    ports.parse_publish(spec)


def parse_volume(spec: str) -> MountRequest:
    """-v: `/ctr/path` (anonymous), `name:/ctr/path[:ro]`, `/host/path:/ctr/path[:ro|rw]`."""
    parts = spec.split(":")
    mode = ""
    if len(parts) == 3:
        mode = parts.pop()
    nocopy = (("nocopy", "true"),) if "nocopy" in mode.split(",") else ()
    if len(parts) == 1:
        return MountRequest("volume", _dest(parts[0], spec), "", _read_only(mode, spec), nocopy)
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise InvalidArgument(f"invalid volume specification {spec!r}: use [SOURCE:]DEST[:ro]")
    source, dest = parts
    kind = "bind" if source.startswith("/") or source.startswith(".") else "volume"
    if kind == "bind" and not source.startswith("/"):
        raise InvalidArgument(f"invalid volume specification {spec!r}: a host path must be absolute")
    if kind == "bind" and nocopy:
        raise InvalidArgument(f"invalid volume specification {spec!r}: nocopy applies to volumes only")
    return MountRequest(kind, _dest(dest, spec), source, _read_only(mode, spec), nocopy)


def parse_mount(spec: str) -> MountRequest:
    """--mount type=volume|bind|tmpfs,source=…,target=…,readonly,tmpfs-size=…,tmpfs-mode=…"""
    fields: dict[str, str] = {}
    for item in spec.split(","):
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not key:
            continue
        fields[key] = value if sep else "true"
    kind = fields.pop("type", "volume")
    if kind not in ("volume", "bind", "tmpfs"):
        raise InvalidArgument(f"invalid mount {spec!r}: type must be volume, bind or tmpfs")
    target = fields.pop("target", None) or fields.pop("destination", None) or fields.pop("dst", None)
    if not target:
        raise InvalidArgument(f"invalid mount {spec!r}: target is required")
    source = fields.pop("source", None) or fields.pop("src", None) or ""
    read_only = False
    for key in ("readonly", "ro"):
        if key in fields:
            read_only = fields.pop(key).lower() in ("true", "1", "")
    options: list[tuple[str, str]] = []
    if kind == "tmpfs":
        if source:
            raise InvalidArgument(f"invalid mount {spec!r}: tmpfs takes no source")
        if "tmpfs-size" in fields:
            options.append(("size", str(parse_size(fields.pop("tmpfs-size"), "tmpfs-size"))))
        if "tmpfs-mode" in fields:
            options.append(("mode", tmpfs.parse_mode(fields.pop("tmpfs-mode"), "tmpfs-mode")))
    if kind == "bind" and not source.startswith("/"):
        raise InvalidArgument(f"invalid mount {spec!r}: bind source must be an absolute host path")
    # Docker's volume-nocopy: the volume is not filled with the image's files at the first start.
    if fields.pop("volume-nocopy", "false").lower() in ("true", "1", "") and kind == "volume":
        options.append(("nocopy", "true"))
    for key in ("bind-propagation", "consistency"):
        fields.pop(key, None)
    if fields:
        raise InvalidArgument(f"invalid mount {spec!r}: unknown field(s) {', '.join(sorted(fields))}")
    return MountRequest(kind, _dest(target, spec), source, read_only, tuple(options))


def parse_tmpfs(spec: str) -> MountRequest:
    """--tmpfs /path[:size=64m,mode=1777,noexec…]"""
    dest, _, opts = spec.partition(":")
    options: list[tuple[str, str]] = []
    for item in filter(None, opts.split(",")):
        key, sep, value = item.partition("=")
        if key == "size":
            options.append(("size", str(parse_size(value, "tmpfs size"))))
        elif key == "mode" and sep:
            options.append(("mode", tmpfs.parse_mode(value)))
        elif not sep and key in ("ro", "rw", "noexec", "exec", "nosuid", "suid", "nodev", "dev"):
            options.append((key, ""))
        else:
            raise InvalidArgument(f"invalid tmpfs option {item!r} in {spec!r}")
    read_only = ("ro", "") in options
    return MountRequest("tmpfs", _dest(dest, spec), "", read_only, tuple(o for o in options if o[0] != "ro"))


def _dest(path: str, spec: str) -> str:
    if not path.startswith("/"):
        raise InvalidArgument(f"invalid mount {spec!r}: the destination {path!r} must be an absolute path")
    return path


def _read_only(mode: str, spec: str) -> bool:
    flags = set(filter(None, mode.split(",")))
    unknown = flags - {"ro", "rw", "z", "Z", "nocopy"}
    if unknown:
        raise InvalidArgument(
            f"invalid volume specification {spec!r}: unknown mode {','.join(sorted(unknown))}"
        )
    return "ro" in flags


def parse_env_file(text: str, source: str) -> list[str]:
    """Docker's --env-file: KEY=VALUE lines, comments and blank lines skipped, KEY alone taken from the caller."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key = line.partition("=")[0]
        if not key or any(c.isspace() for c in key):
            raise InvalidArgument(f"{source}:{number}: invalid variable name {key!r}")
        out.append(line)
    return out
