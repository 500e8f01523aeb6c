"""Seccomp profiles: Berth's default, and resolution into the OCI form runc takes.

Profiles are written in the containers/moby format (rules with `includes`/`excludes` on capabilities and
architectures, an `archMap`); `resolve` turns one into the `linux.seccomp` object of a runtime spec for
a given capability set. Pure apart from reading the shipped JSON file.

Why not /usr/share/containers/seccomp.json (Debian's golang-github-containers-common 0.50.1, installed
here as a dependency of skopeo)? It allows clone with namespace flags, unshare, setns, mount, keyctl and
pivot_root unconditionally and does not refuse AF_ALG/AF_VSOCK sockets: `unshare -U true` succeeds under
it. SECURITY.md §1.5 promises moby's rules with ENOSYS for unknown syscalls, so Berth ships its own
profile (seccomp_default.json) and never loads the system one implicitly.
"""

from __future__ import annotations

import copy
import functools
import json
import platform
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from engine.errors import InvalidArgument

DEFAULT_PROFILE_PATH = Path(__file__).with_name("seccomp_default.json")
SYSTEM_PROFILE_PATH = Path("/usr/share/containers/seccomp.json")
ENOSYS = 38
EPERM = 1

# uname -m → the SCMP architecture it runs natively, and the Go names moby profiles use in `arches`.
_NATIVE_ARCH = {
    "x86_64": ("SCMP_ARCH_X86_64", {"amd64", "x86_64"}),
    "aarch64": ("SCMP_ARCH_AARCH64", {"arm64", "aarch64"}),
    "armv7l": ("SCMP_ARCH_ARM", {"arm"}),
    "ppc64le": ("SCMP_ARCH_PPC64LE", {"ppc64le"}),
    "s390x": ("SCMP_ARCH_S390X", {"s390x"}),
    "riscv64": ("SCMP_ARCH_RISCV64", {"riscv64"}),
}
_ACTIONS = frozenset(
    {
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_TRAP",
        "SCMP_ACT_TRACE",
        "SCMP_ACT_LOG",
    }
)
_OPS = frozenset(
    {
        "SCMP_CMP_NE",
        "SCMP_CMP_LT",
        "SCMP_CMP_LE",
        "SCMP_CMP_EQ",
        "SCMP_CMP_GE",
        "SCMP_CMP_GT",
        "SCMP_CMP_MASKED_EQ",
    }
)


def default_profile() -> dict[str, Any]:
    """Return a fresh copy of Berth's default profile (containers/moby format)."""
    return copy.deepcopy(_load_default())


@functools.cache
def _load_default() -> dict[str, Any]:
    return load_profile(DEFAULT_PROFILE_PATH)


def load_profile(path: Path | str) -> dict[str, Any]:
    """Read and check a profile file (an admin's custom profile, or ours).

    Raises InvalidArgument when the file is unreadable, not JSON, or not a profile.
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"cannot read seccomp profile {path}: {exc}") from exc
    check_profile(data)
    return data


def check_profile(profile: Any) -> None:
    """Raise InvalidArgument unless `profile` is a well-formed profile in either format."""
    if not isinstance(profile, dict) or profile.get("defaultAction") not in _ACTIONS:
        raise InvalidArgument("seccomp profile needs a valid defaultAction")
    rules = profile.get("syscalls") or []
    if not isinstance(rules, list):
        raise InvalidArgument("seccomp profile 'syscalls' must be a list")
    for rule in rules:
        names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
        if not names or not all(isinstance(n, str) and n for n in names):
            raise InvalidArgument("every seccomp rule needs syscall names")
        if rule.get("action") not in _ACTIONS:
            raise InvalidArgument(f"seccomp rule for {names[0]} has an unknown action {rule.get('action')!r}")
        for arg in rule.get("args") or []:
            if arg.get("op") not in _OPS or not isinstance(arg.get("index"), int):
                raise InvalidArgument(f"seccomp rule for {names[0]} has a bad argument filter")


def resolve(
    profile: dict[str, Any], caps: Iterable[str], *, machine: str | None = None, compat_arches: bool = False
) -> dict[str, Any]:
    """Return the OCI `linux.seccomp` object for `profile` applied to a container with `caps`.

    Follows moby's semantics: a rule applies when the container has *all* capabilities in
    `includes.caps` and *none* in `excludes.caps`, and when the native architecture matches
    `includes.arches`/`excludes.arches`. Rules without conditions pass through unchanged, so a profile
    already in OCI form is accepted as is.

    Only the native architecture is listed unless `compat_arches` (e.g. x86 and x32 on x86_64): each
    extra architecture costs runc 10-20 ms per container start (libseccomp compiles the filter once per
    architecture; measured with runc 1.1.5), and 32-bit syscall entry points are old attack surface.
    Without them, 32-bit binaries in a container are refused by the kernel filter.
    """
    check_profile(profile)
    machine = machine or platform.machine()
    native, go_names = _NATIVE_ARCH.get(machine, (None, {machine}))
    capset = set(caps)
    out: dict[str, Any] = {"defaultAction": profile["defaultAction"]}
    if "defaultErrnoRet" in profile:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    if profile.get("architectures"):
        out["architectures"] = list(profile["architectures"])
    elif native is not None:
        arches = [native]
        for entry in profile.get("archMap") or []:
            if compat_arches and entry.get("architecture") == native:
                arches += entry.get("subArchitectures") or []
        out["architectures"] = arches
    if profile.get("flags"):
        out["flags"] = list(profile["flags"])
    syscalls = []
    for rule in profile.get("syscalls") or []:
        inc = rule.get("includes") or {}
        exc = rule.get("excludes") or {}
        if not set(inc.get("caps") or ()) <= capset or capset & set(exc.get("caps") or ()):
            continue
        if inc.get("arches") and not go_names & set(inc["arches"]):
            continue
        if go_names & set(exc.get("arches") or ()):
            continue
        names = rule.get("names") or [rule["name"]]
        item: dict[str, Any] = {"names": list(names), "action": rule["action"]}
        if rule.get("errnoRet") is not None:
            item["errnoRet"] = rule["errnoRet"]
        if rule.get("args"):
            item["args"] = [
                {
                    "index": a["index"],
                    "value": a.get("value", 0),
                    "valueTwo": a.get("valueTwo", 0),
                    "op": a["op"],
                }
                for a in rule["args"]
            ]
        syscalls.append(item)
    out["syscalls"] = syscalls
    return out
