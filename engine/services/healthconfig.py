"""A container's health check as the monitor runs it, and the words `ps` shows for its health.

Pure: reads `container.config["Healthcheck"]` (Docker's shape, merged at create from the image and
the flags), `config["HealthcheckOnFailureAction"]` (Podman's name) and `container.health`, and
touches nothing else. Docker's defaults stand in for zero durations and retries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NANOSECONDS = 1_000_000_000
DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_START_PERIOD = 0.0
DEFAULT_START_INTERVAL = 5.0
DEFAULT_RETRIES = 3
ON_FAILURE_ACTIONS = ("none", "kill", "restart", "stop")

LOG_ENTRIES = 5  # results kept in State.Health.Log, as Docker's maxLogEntries

STARTING = "starting"
HEALTHY = "healthy"
UNHEALTHY = "unhealthy"


@dataclass(frozen=True)
class HealthSpec:
    """One container's check: the argv to exec and its timing, in seconds."""

    argv: list[str]
    interval: float
    timeout: float
    start_period: float
    start_interval: float
    retries: int
    on_failure: str


def effective(container: Any) -> HealthSpec | None:
    """Return the check to run for this container, or None when it has none (absent, empty or NONE)."""
    config = container.config or {}
    return spec_from(config.get("Healthcheck"), config.get("HealthcheckOnFailureAction"), config.get("Shell"))


def spec_from(healthcheck: Any, on_failure: Any = None, shell: Any = None) -> HealthSpec | None:
    """Build a HealthSpec from Docker's Healthcheck object; None when it names no command."""
    if not isinstance(healthcheck, dict):
        return None
    test = healthcheck.get("Test") or []
    if not isinstance(test, list) or not test:
        return None
    kind, rest = test[0], [str(part) for part in test[1:]]
    if kind == "CMD-SHELL":
        if not rest or not rest[0]:
            return None
        argv = [*(shell or ["/bin/sh", "-c"]), rest[0]]
    elif kind == "CMD":
        if not rest:
            return None
        argv = rest
    else:  # "NONE", or anything Docker would not run either
        return None
    action = str(on_failure or "none")
    return HealthSpec(
        argv=argv,
        interval=_seconds(healthcheck.get("Interval"), DEFAULT_INTERVAL),
        timeout=_seconds(healthcheck.get("Timeout"), DEFAULT_TIMEOUT),
        start_period=_seconds(healthcheck.get("StartPeriod"), DEFAULT_START_PERIOD),
        start_interval=_seconds(healthcheck.get("StartInterval"), DEFAULT_START_INTERVAL),
        retries=_positive_int(healthcheck.get("Retries"), DEFAULT_RETRIES),
        on_failure=action if action in ON_FAILURE_ACTIONS else "none",
    )


def started_health(container: Any) -> dict[str, Any]:
    """The health to record when the container starts: {} without a check, else starting with a fresh streak.

    The log of earlier checks is kept across a restart, as Docker does (initHealthMonitor).
    """
    if effective(container) is None:
        return {}
    log = list((container.health or {}).get("Log") or [])
    return {"Status": STARTING, "FailingStreak": 0, "Log": log}


def judge(
    health: dict[str, Any], entry: dict[str, Any], spec: HealthSpec, *, since_start: float
) -> dict[str, Any]:
    """Return the health after one check result (`entry` is its Log item) with Docker's rules.

    Success: healthy, streak 0. Failure: the streak grows and reaching `retries` makes it
    unhealthy, except that while the status is still starting, failures that began within the
    start period do not count (daemon/health.go handleProbeResult).
    """
    status = health.get("Status") or STARTING
    streak = int(health.get("FailingStreak") or 0)
    log = [*list(health.get("Log") or []), entry][-LOG_ENTRIES:]
    if entry.get("ExitCode") == 0:
        status, streak = HEALTHY, 0
    elif not (status == STARTING and since_start < spec.start_period):
        streak += 1
        if streak >= spec.retries:
            status = UNHEALTHY
    return {"Status": status, "FailingStreak": streak, "Log": log}


def next_delay(spec: HealthSpec, *, status: str, since_start: float) -> float:
    """Seconds from now (the end of a check, or the start) to the next check.

    While the container is starting within its start period, checks come every start interval;
    then every interval. A check is never scheduled past the end of the start period, so the
    first check that counts is not delayed (Docker's getInterval).
    """
    remaining = spec.start_period - since_start
    if remaining <= 0:
        return spec.interval
    delay = spec.start_interval if status == STARTING else spec.interval
    return max(min(delay, remaining), 0.0)


def duration_text(seconds: float) -> str:
    """A duration the way Go prints one, as Docker's timeout message does: 500ms, 2s, 1m30s."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    text = f"{rest:g}s"
    if minutes or hours:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return text


def status_suffix(container: Any) -> str:
    """Return what `ps` appends to "Up 5 minutes": " (healthy)", " (health: starting)", " (unhealthy)" or "".

    Like Docker, only a running container shows its health.
    """
    if getattr(container, "state", "") != "running":
        return ""
    status = (container.health or {}).get("Status")
    if status == STARTING:
        return " (health: starting)"
    if status in (HEALTHY, UNHEALTHY):
        return f" ({status})"
    return ""


def _seconds(value: Any, default: float) -> float:
    try:
        nanoseconds = int(value or 0)
    except (TypeError, ValueError):
        return default
    return nanoseconds / NANOSECONDS if nanoseconds > 0 else default


def _positive_int(value: Any, default: int) -> int:
    try:
        number = int(value or 0)
    except (TypeError, ValueError):
        return default
    return number if number > 0 else default
