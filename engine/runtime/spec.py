"""Build an OCI runtime spec (config.json) from plain values.

Pure: values in, a dict out. The defaults follow SECURITY.md §1 (Podman's 11 capabilities, the union of
moby's and containers-common's masked and read-only paths, moby's mounts and device rules, NNP on, a pids
limit). Whether a caller may ask for privileged, extra capabilities or host namespaces is decided by the
services, never here; this module only refuses what is malformed or unsafe for everyone.

Over 400 lines because the whole security default (capabilities, masked paths, mounts, devices, namespaces,
resources) must be reviewable in one place.
"""

from __future__ import annotations

import glob
import posixpath
import re
import resource
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.errors import InvalidArgument
from engine.runtime import seccomp as seccomp_mod

OCI_VERSION = "1.0.2"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_PIDS_LIMIT = 2048
DEFAULT_NOFILE = 1048576
HOST_NETNS = "host"

# containers-common DefaultCapabilities: Docker's 14 minus MKNOD, NET_RAW and AUDIT_WRITE.
DEFAULT_CAPS = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
)

# Every capability up to CAP_CHECKPOINT_RESTORE (40), in kernel number order; the index is the bit.
ALL_CAPS = (
    "CAP_CHOWN CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_FOWNER CAP_FSETID CAP_KILL CAP_SETGID CAP_SETUID "
    "CAP_SETPCAP CAP_LINUX_IMMUTABLE CAP_NET_BIND_SERVICE CAP_NET_BROADCAST CAP_NET_ADMIN CAP_NET_RAW "
    "CAP_IPC_LOCK CAP_IPC_OWNER CAP_SYS_MODULE CAP_SYS_RAWIO CAP_SYS_CHROOT CAP_SYS_PTRACE CAP_SYS_PACCT "
    "CAP_SYS_ADMIN CAP_SYS_BOOT CAP_SYS_NICE CAP_SYS_RESOURCE CAP_SYS_TIME CAP_SYS_TTY_CONFIG CAP_MKNOD "
    "CAP_LEASE CAP_AUDIT_WRITE CAP_AUDIT_CONTROL CAP_SETFCAP CAP_MAC_OVERRIDE CAP_MAC_ADMIN CAP_SYSLOG "
    "CAP_WAKE_ALARM CAP_BLOCK_SUSPEND CAP_AUDIT_READ CAP_PERFMON CAP_BPF CAP_CHECKPOINT_RESTORE"
).split()

# Union of moby defaultLinuxMaskedPaths() and containers-common getMaskedPaths(); /proc/asound is
# read-only in Podman and masked in moby, masking is the stricter of the two.
MASKED_PATHS = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
    "/sys/fs/selinux",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# moby's device cgroup: deny all, then allow these character devices (major, minor).
ALLOWED_CHAR_DEVICES = ((1, 5), (1, 3), (1, 9), (1, 8), (5, 0), (5, 1))
DENIED_CHAR_DEVICES = ((10, 229),)  # fuse

FORBIDDEN_PREFIXES = ("/proc", "/sys", "/dev")
_NAMESPACED_SYSCTL = re.compile(r"^(net\.|kernel\.shm|kernel\.msg|kernel\.sem$|fs\.mqueue\.)")
_OPTION_VALUE = re.compile(r"^[0-9a-zA-Z._-]+$")
_BIND_OPTIONS = frozenset(
    "ro rw bind rbind private rprivate slave rslave shared rshared nosuid nodev noexec".split()
)
_TMPFS_OPTIONS = frozenset("ro rw nosuid nodev noexec".split())
_TMPFS_KEYED = frozenset("size mode uid gid nr_inodes".split())


@dataclass(frozen=True)
class MountSpec:
    """One mount the caller wants in the container (bind of a volume or host path, or tmpfs)."""

    destination: str
    type: str  # "bind" or "tmpfs"
    source: str
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rlimit:
    type: str  # e.g. "RLIMIT_NOFILE"
    soft: int
    hard: int


@dataclass(frozen=True)
class SpecInput:
    """Everything build_spec needs; every path is a host path except destinations and cwd."""

    args: Sequence[str]
    rootfs: str
    env: Sequence[str] = ()
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    additional_gids: Sequence[int] = ()
    terminal: bool = False
    hostname: str = ""
    readonly_rootfs: bool = False
    mounts: Sequence[MountSpec] = ()
    netns_path: str | None = None  # None: new private netns; "host": no net namespace; else a path
    cgroup_v2: bool = False  # a private cgroup namespace only makes sense on cgroup v2
    cap_add: Sequence[str] = ()
    cap_drop: Sequence[str] = ()
    privileged: bool = False
    bounding_caps: Sequence[str] | None = None  # the engine's own bounding set; None: every capability
    memory_bytes: int | None = None
    memory_swap: int | None = None  # memory + swap, as Docker's --memory-swap; -1 unlimited
    cpu_quota: int | None = None
    cpu_period: int | None = None
    cpu_shares: int | None = None  # relative weight (Docker's --cpu-shares; runc maps it on cgroup v2)
    pids_limit: int | None = DEFAULT_PIDS_LIMIT
    no_new_privileges: bool = True
    cgroups_path: str | None = None
    sysctls: Mapping[str, str] = field(default_factory=dict)
    oom_score_adj: int | None = None
    rlimits: Sequence[Rlimit] | None = None  # None: default_rlimits()
    masked_paths: Sequence[str] = ()  # extra, on top of MASKED_PATHS
    readonly_paths: Sequence[str] = ()  # extra, on top of READONLY_PATHS
    hosts_path: str | None = None
    hostname_path: str | None = None
    resolv_conf_path: str | None = None
    apparmor_profile: str | None = None
    seccomp_compat_arches: bool = False  # also filter (and so allow) 32-bit syscalls; +10-20 ms per start


def validate_destination(path: str) -> str:
    """Return `path` if it is an absolute, clean mount destination outside /proc, /sys and /dev.

    Raises InvalidArgument otherwise. "/" itself is refused: nothing may be mounted over the rootfs.
    """
    _check_clean(path, "mount destination")
    if path == "/":
        raise InvalidArgument("mount destination / is not allowed")
    if _under_forbidden(path):
        raise InvalidArgument(f"mount destination {path} is under /proc, /sys or /dev, which is not allowed")
    return path


def validate_workdir(path: str) -> str:
    """Return `path` if it is a usable working directory; raise InvalidArgument otherwise.

    /proc, /sys and /dev are refused: a cwd like /proc/self/fd/7 is how CVE-2024-21626 escaped.
    """
    _check_clean(path, "working directory")
    if _under_forbidden(path):
        raise InvalidArgument(f"working directory {path} is under /proc, /sys or /dev, which is not allowed")
    return path


def normalize_cap(name: str) -> str:
    """Return the canonical CAP_* spelling of `name` ("net_raw" → "CAP_NET_RAW"); "ALL" stays "ALL"."""
    upper = name.strip().upper()
    if upper == "ALL":
        return "ALL"
    if not upper.startswith("CAP_"):
        upper = "CAP_" + upper
    if upper not in ALL_CAPS:
        raise InvalidArgument(f"unknown capability {name!r}")
    return upper


def effective_caps(
    cap_add: Sequence[str] = (),
    cap_drop: Sequence[str] = (),
    *,
    privileged: bool = False,
    bounding: Sequence[str] | None = None,
) -> list[str]:
    """Return the capability list a container gets, in kernel bit order (Docker's add/drop rules).

    `bounding` is what the engine itself may grant (its own bounding set); a privileged container
    gets all of those, as Podman does: asking runc for more fails ("unable to apply caps").
    """
    if privileged:
        return [c for c in ALL_CAPS if bounding is None or c in bounding]
    add = {normalize_cap(c) for c in cap_add}
    drop = {normalize_cap(c) for c in cap_drop}
    caps = set(ALL_CAPS) if "ALL" in add else set(DEFAULT_CAPS)
    if "ALL" in drop:
        caps = set()
    caps -= drop
    caps |= add - {"ALL"}
    if bounding is not None:
        missing = sorted((add - {"ALL"}) - set(bounding))
        if missing:
            raise InvalidArgument(
                f"capability {', '.join(missing)} is not available to the engine on this host"
            )
        caps &= set(bounding)
    return [c for c in ALL_CAPS if c in caps]


def bounding_caps_from_status(status: str) -> list[str]:
    """The capability names in a /proc/<pid>/status CapBnd line (pure)."""
    for line in status.splitlines():
        if line.startswith("CapBnd:"):
            mask = int(line.split()[1], 16)
            return [name for bit, name in enumerate(ALL_CAPS) if mask & (1 << bit)]
    return list(ALL_CAPS)


def default_rlimits() -> list[Rlimit]:
    """Podman's RLIMIT_NOFILE 1048576, clamped to this process's hard limit.

    Without CAP_SYS_RESOURCE runc cannot raise a hard limit ("error setting rlimit type 7").
    """
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    value = DEFAULT_NOFILE if hard == resource.RLIM_INFINITY else min(DEFAULT_NOFILE, hard)
    return [Rlimit("RLIMIT_NOFILE", value, value)]


def thermal_throttle_paths(sys_root: str = "/sys") -> list[str]:
    """Return the container paths of /sys/devices/system/cpu/cpu*/thermal_throttle on this host.

    The one helper here that reads the host; call it once and pass the result as extra masked paths.
    """
    pattern = posixpath.join(sys_root, "devices/system/cpu/cpu*/thermal_throttle")
    return sorted("/sys" + p[len(sys_root) :] for p in glob.glob(pattern))


def build_spec(inp: SpecInput, *, seccomp: dict[str, Any] | None) -> dict[str, Any]:
    """Return an OCI runtime spec for `inp`.

    `seccomp` is a profile in the containers/moby format (seccomp.default_profile()) or already in OCI
    form; it is resolved against the container's final capabilities. None means unconfined, and so does
    privileged. Raises InvalidArgument for a bad workdir, mount, sysctl, capability or limit.
    """
    if not inp.args:
        raise InvalidArgument("no command given")
    validate_workdir(inp.cwd)
    caps = effective_caps(inp.cap_add, inp.cap_drop, privileged=inp.privileged, bounding=inp.bounding_caps)
    private_net = inp.netns_path != HOST_NETNS
    linux: dict[str, Any] = {
        "namespaces": _namespaces(inp),
        "resources": _resources(inp),
        "sysctl": _sysctls(inp.sysctls, private_net=private_net),
        "maskedPaths": list(inp.masked_paths) if inp.privileged else [*MASKED_PATHS, *inp.masked_paths],
        "readonlyPaths": (
            list(inp.readonly_paths) if inp.privileged else [*READONLY_PATHS, *inp.readonly_paths]
        ),
    }
    for extra in (*inp.masked_paths, *inp.readonly_paths):
        _check_clean(extra, "masked or read-only path")
    if inp.cgroups_path:
        linux["cgroupsPath"] = inp.cgroups_path
    if seccomp is not None and not inp.privileged:
        linux["seccomp"] = seccomp_mod.resolve(seccomp, caps, compat_arches=inp.seccomp_compat_arches)
    process: dict[str, Any] = {
        "terminal": inp.terminal,
        "user": {
            "uid": inp.uid,
            "gid": inp.gid,
            "additionalGids": list(inp.additional_gids),
            "umask": 0o022,
        },
        "args": list(inp.args),
        "env": _env(inp.env, terminal=inp.terminal),
        "cwd": inp.cwd,
        "capabilities": {
            "bounding": caps,
            "effective": caps,
            "permitted": caps,
            "inheritable": [],  # empty since CVE-2022-24769
            "ambient": [],
        },
        "rlimits": [
            {"type": r.type, "soft": r.soft, "hard": r.hard}
            for r in (default_rlimits() if inp.rlimits is None else inp.rlimits)
        ],
        "noNewPrivileges": inp.no_new_privileges,
    }
    if inp.oom_score_adj is not None:
        # Containers never get a lower score than the engine (SECURITY.md §1.6).
        if not 0 <= inp.oom_score_adj <= 1000:
            raise InvalidArgument(f"oom_score_adj {inp.oom_score_adj} must be within 0..1000")
        process["oomScoreAdj"] = inp.oom_score_adj
    if inp.apparmor_profile and not inp.privileged:
        process["apparmorProfile"] = inp.apparmor_profile
    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": inp.rootfs, "readonly": inp.readonly_rootfs},
        "mounts": _mounts(inp, private_net=private_net),
        "linux": linux,
    }
    if inp.hostname:
        spec["hostname"] = inp.hostname
    return spec


def _check_clean(path: str, what: str) -> None:
    if not path or "\0" in path or not path.startswith("/"):
        raise InvalidArgument(f"{what} {path!r} must be an absolute path")
    if posixpath.normpath(path) != path or path.startswith("//"):
        raise InvalidArgument(f"{what} {path!r} is not a clean path (no '..', '.', '//' or trailing '/')")


def _under_forbidden(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in FORBIDDEN_PREFIXES)


def _env(env: Sequence[str], *, terminal: bool) -> list[str]:
    out = []
    for item in env:
        if "=" not in item or item.startswith("=") or "\0" in item:
            raise InvalidArgument(f"environment entry {item!r} must look like NAME=value")
        out.append(item)
    names = {e.split("=", 1)[0] for e in out}
    if "PATH" not in names:
        out.insert(0, f"PATH={DEFAULT_PATH}")
    if terminal and "TERM" not in names:
        out.append("TERM=xterm")
    return out


def _namespaces(inp: SpecInput) -> list[dict[str, str]]:
    spaces: list[dict[str, str]] = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    if inp.netns_path is None:
        spaces.append({"type": "network"})
    elif inp.netns_path != HOST_NETNS:
        _check_clean(inp.netns_path, "network namespace path")
        spaces.append({"type": "network", "path": inp.netns_path})
    if inp.cgroup_v2:
        spaces.append({"type": "cgroup"})
    return spaces


def _resources(inp: SpecInput) -> dict[str, Any]:
    if inp.privileged:
        devices: list[dict[str, Any]] = [{"allow": True, "access": "rwm"}]
    else:
        devices = [{"allow": False, "access": "rwm"}]
        devices += [
            {"allow": True, "type": "c", "major": ma, "minor": mi, "access": "rwm"}
            for ma, mi in ALLOWED_CHAR_DEVICES
        ]
        devices += [
            {"allow": False, "type": "c", "major": ma, "minor": mi, "access": "rwm"}
            for ma, mi in DENIED_CHAR_DEVICES
        ]
    res: dict[str, Any] = {"devices": devices}
    if inp.memory_bytes is not None:
        if inp.memory_bytes < 6 * 1024 * 1024:
            raise InvalidArgument("memory limit must be at least 6 MiB")
        memory: dict[str, int] = {"limit": inp.memory_bytes}
        if inp.memory_swap is not None:
            if inp.memory_swap != -1 and inp.memory_swap < inp.memory_bytes:
                raise InvalidArgument("memory+swap limit must not be smaller than the memory limit")
            memory["swap"] = inp.memory_swap
        res["memory"] = memory
    elif inp.memory_swap is not None:
        raise InvalidArgument("a memory+swap limit needs a memory limit")
    if inp.cpu_quota is not None or inp.cpu_period is not None:
        cpu: dict[str, int] = {}
        if inp.cpu_quota is not None:
            if inp.cpu_quota < 1000:
                raise InvalidArgument("CPU quota must be at least 1000 µs")
            cpu["quota"] = inp.cpu_quota
        cpu["period"] = inp.cpu_period if inp.cpu_period is not None else 100000
        res["cpu"] = cpu
    if inp.cpu_shares:
        if inp.cpu_shares < 2:
            raise InvalidArgument("CPU shares must be at least 2")
        res.setdefault("cpu", {})["shares"] = inp.cpu_shares
    if inp.pids_limit is not None:
        if inp.pids_limit < 1 and inp.pids_limit != -1:
            raise InvalidArgument("pids limit must be positive (or -1 for unlimited)")
        res["pids"] = {"limit": inp.pids_limit}
    return res


def _sysctls(sysctls: Mapping[str, str], *, private_net: bool) -> dict[str, str]:
    out: dict[str, str] = {}
    if private_net:
        # Podman's trick: ping works without CAP_NET_RAW through ICMP datagram sockets.
        out["net.ipv4.ping_group_range"] = "0 2147483647"
    for name, value in sysctls.items():
        if not _NAMESPACED_SYSCTL.match(name) or "/" in name or ".." in name:
            raise InvalidArgument(f"sysctl {name} is not namespaced and cannot be set per container")
        if name.startswith("net.") and not private_net:
            raise InvalidArgument(f"sysctl {name} cannot be set with the host network")
        out[name] = str(value)
    return out


def _mounts(inp: SpecInput, *, private_net: bool) -> list[dict[str, Any]]:
    priv = inp.privileged
    sys_opts = ["nosuid", "noexec", "nodev"] + ([] if priv else ["ro"])
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
    ]
    if private_net:
        mounts.append({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_opts})
    else:
        # A fresh sysfs needs a private netns; moby binds the host's /sys instead.
        mounts.append(
            {"destination": "/sys", "type": "bind", "source": "/sys", "options": ["rbind", *sys_opts]}
        )
    mounts.append(
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime"] + ([] if priv else ["ro"]),
        }
    )
    etc_opts = ["rbind", "rprivate", "nosuid", "noexec", "nodev"] + (["ro"] if inp.readonly_rootfs else [])
    for dest, src in (
        ("/etc/hosts", inp.hosts_path),
        ("/etc/hostname", inp.hostname_path),
        ("/etc/resolv.conf", inp.resolv_conf_path),
    ):
        if src:
            mounts.append({"destination": dest, "type": "bind", "source": src, "options": list(etc_opts)})
    for m in inp.mounts:
        mounts.append(_user_mount(m))
    return mounts


def _user_mount(m: MountSpec) -> dict[str, Any]:
    validate_destination(m.destination)
    if m.type == "bind":
        _check_clean(m.source, "bind mount source")
        allowed, keyed = _BIND_OPTIONS, frozenset[str]()
    elif m.type == "tmpfs":
        allowed, keyed = _TMPFS_OPTIONS, _TMPFS_KEYED
    else:
        raise InvalidArgument(f"mount type {m.type!r} is not supported (bind or tmpfs)")
    options: list[str] = []
    for opt in m.options:
        key, sep, value = opt.partition("=")
        ok = (not sep and opt in allowed) or (sep and key in keyed and _OPTION_VALUE.match(value))
        if not ok:
            # Each option is one token: a comma or an unknown flag could smuggle in dev or suid (A22).
            raise InvalidArgument(f"mount option {opt!r} is not allowed for {m.type} on {m.destination}")
        options.append(opt)
    if m.type == "bind":
        if "bind" not in options and "rbind" not in options:
            options.insert(0, "rbind")
        if not any(p in options for p in ("private", "rprivate", "slave", "rslave", "shared", "rshared")):
            options.append("rprivate")
        return {"destination": m.destination, "type": "bind", "source": m.source, "options": options}
    for safe in ("nosuid", "nodev"):
        if safe not in options:
            options.append(safe)
    return {"destination": m.destination, "type": "tmpfs", "source": "tmpfs", "options": options}
