"""Changing a container's resource limits and restart policy in place (`docker update`).

The new values are checked first, then applied live through the runtime when the container runs
(or is paused), and always recorded in its stored HostConfig, from which the next start builds the
spec. An update that cannot apply changes nothing: no record, no cgroup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine import events, locks
from engine.errors import InvalidArgument
from engine.models import Container, ContainerState
from engine.runtime import cgroups
from engine.services import bundle, containers, lifecycle
from engine.services import options as opts

MIN_MEMORY = 6 << 20  # Docker's minimum, and the spec's
CPU_PERIOD = 100_000
LIVE_STATES = (ContainerState.RUNNING, ContainerState.PAUSED)


@dataclass(frozen=True)
class Changes:
    """What to change; None leaves a value as it is (Docker's 0 means the same for the limits)."""

    memory: int | None = None
    memory_swap: int | None = None  # memory + swap; -1 unlimited
    nano_cpus: int | None = None
    cpu_shares: int | None = None
    cpu_quota: int | None = None
    cpu_period: int | None = None
    pids_limit: int | None = None  # -1 (or 0 through the API) unlimited
    restart: opts.RestartPolicy | None = None

    def is_empty(self) -> bool:
        return all(getattr(self, name) is None for name in self.__dataclass_fields__)


def merged_host_config(host: dict[str, Any], changes: Changes) -> dict[str, Any]:
    """Return ``host`` with ``changes`` applied, or raise InvalidArgument naming what is wrong (pure)."""
    new = dict(host)
    if changes.memory is not None:
        if changes.memory != -1 and changes.memory < MIN_MEMORY:
            raise InvalidArgument("minimum memory limit allowed is 6MB")
        old_swap = int(host.get("MemorySwap") or 0)
        if changes.memory_swap is None and old_swap > 0 and changes.memory > old_swap:
            raise InvalidArgument(
                "memory limit should be smaller than the already set memoryswap limit; "
                "update the memoryswap at the same time"
            )
        new["Memory"] = 0 if changes.memory == -1 else changes.memory
    if changes.memory_swap is not None:
        memory = int(new.get("Memory") or 0)
        if changes.memory_swap != -1:
            if not memory:
                raise InvalidArgument("you should always set the memory limit when using a memoryswap limit")
            if changes.memory_swap < memory:
                raise InvalidArgument(
                    "minimum memoryswap limit should be larger than memory limit, see usage"
                )
        # Without a memory limit, "unlimited swap" is what there already is: the spec takes none.
        new["MemorySwap"] = changes.memory_swap if memory else 0
    if changes.nano_cpus is not None:
        if changes.nano_cpus < 0:
            raise InvalidArgument("invalid --cpus: must be greater than 0")
        if changes.nano_cpus and (changes.cpu_quota or changes.cpu_period):
            raise InvalidArgument("conflicting options: NanoCPUs and CPU period/quota cannot both be set")
        if changes.nano_cpus and changes.nano_cpus * CPU_PERIOD // 1_000_000_000 < 1000:
            raise InvalidArgument("invalid --cpus: the range of CPUs is from 0.01 upwards")
        new["NanoCpus"] = changes.nano_cpus
        if changes.nano_cpus:
            new["CpuQuota"] = new["CpuPeriod"] = 0
    for key, value in (("CpuQuota", changes.cpu_quota), ("CpuPeriod", changes.cpu_period)):
        if value is None:
            continue
        if value and int(new.get("NanoCpus") or 0) and changes.nano_cpus is None:
            raise InvalidArgument(
                "conflicting options: CPU period/quota cannot be set on a container limited with --cpus"
            )
        if key == "CpuQuota" and value and value != -1 and value < 1000:
            raise InvalidArgument("CPU cfs quota cannot be less than 1ms (i.e. 1000)")
        if key == "CpuPeriod" and value and not 1000 <= value <= 1_000_000:
            raise InvalidArgument("CPU cfs period cannot be less than 1ms (i.e. 1000) or larger than 1s")
        new[key] = 0 if value == -1 else value  # Docker records "no quota" as 0
    if changes.cpu_shares is not None:
        if changes.cpu_shares and changes.cpu_shares < 2:
            raise InvalidArgument("CPU shares must be at least 2")
        new["CpuShares"] = changes.cpu_shares
    if changes.pids_limit is not None:
        new["PidsLimit"] = -1 if changes.pids_limit <= 0 else changes.pids_limit
    if changes.restart is not None:
        if changes.restart.name != "no" and host.get("AutoRemove"):
            raise InvalidArgument(
                "restart policy cannot be updated because AutoRemove is enabled for the container"
            )
        new["RestartPolicy"] = {
            "Name": changes.restart.name,
            "MaximumRetryCount": changes.restart.maximum_retry_count,
        }
    return new


def live_limits(old: dict[str, Any], new: dict[str, Any]) -> dict[str, int]:
    """The `runc update` keywords for what changed between two HostConfigs (pure)."""
    limits: dict[str, int] = {}
    if new.get("Memory") != old.get("Memory"):
        limits["memory"] = int(new.get("Memory") or 0) or -1
    if new.get("MemorySwap") != old.get("MemorySwap"):
        limits["memory_swap"] = int(new.get("MemorySwap") or 0) or -1
    nano = int(new.get("NanoCpus") or 0)
    cpu_keys = ("NanoCpus", "CpuQuota", "CpuPeriod")
    if any(new.get(k) != old.get(k) for k in cpu_keys):
        if nano:
            limits["cpu_quota"] = nano * CPU_PERIOD // 1_000_000_000
            limits["cpu_period"] = CPU_PERIOD
        else:
            limits["cpu_quota"] = int(new.get("CpuQuota") or 0) or -1
            limits["cpu_period"] = int(new.get("CpuPeriod") or 0) or CPU_PERIOD
    if new.get("CpuShares") != old.get("CpuShares"):
        limits["cpu_shares"] = int(new.get("CpuShares") or 0) or 1024
    if new.get("PidsLimit") != old.get("PidsLimit"):
        limits["pids_limit"] = int(new.get("PidsLimit") or -1)
    return limits


def update(ref: str, changes: Changes) -> tuple[Container, list[str]]:
    """Apply ``changes`` to the container (live when it runs) and record them; return (container, warnings).

    Raise InvalidArgument for values that cannot apply (below the memory in use, conflicting
    options), ContainerNotFound, or RuntimeFailure when the runtime refuses; nothing is changed then.
    """
    if changes.is_empty():
        raise InvalidArgument("you must provide one or more flags when using this command")
    container = containers.resolve(ref)
    with locks.locked("container", container.id):
        containers.refresh(container)
        lifecycle.reconcile(container)
        old = dict(container.host_config)
        new = merged_host_config(old, changes)
        limits = live_limits(old, new)
        if container.state in LIVE_STATES and limits:
            if "memory" in limits and limits["memory"] > 0:
                _check_memory_in_use(container, limits["memory"])
            bundle.runc().update(container.id, **limits)
        container.host_config = new
        container.save(update_fields=["host_config"])
    events.record(
        "container",
        "update",
        object_id=container.id,
        object_name=container.name,
        attributes={k: str(v) for k, v in limits.items()}
        | ({"restart": new["RestartPolicy"]["Name"]} if changes.restart else {}),
    )
    return container, []


def _check_memory_in_use(container: Container, limit: int) -> None:
    stats = cgroups.read_stats(container.id)
    if stats.memory_usage is None:
        return
    # Page cache can be reclaimed to fit a lower limit; what is left cannot.
    in_use = stats.memory_usage - (stats.memory_cache or 0)
    if limit < in_use:
        raise InvalidArgument(
            f"cannot set the memory limit of {container.name} to {limit} bytes: it uses {in_use} bytes now",
            hint="free memory in the container or choose a higher limit",
        )
