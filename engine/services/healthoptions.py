"""A container's health check as asked for at create: the flags' syntax, their checks, and the merge with
the image's HEALTHCHECK into the stored `Config.Healthcheck` (Docker's shape, durations in nanoseconds).

Pure: strings and dicts in, dicts out. The CLI flags, the API's `Healthcheck` and the dashboard's Run form
all land in ContainerOptions' `health_*` fields (None = take the image's value, as Docker's zero does),
and `config_entries` merges them field by field at create. `healthconfig` reads the result to run it.
"""

from __future__ import annotations

from typing import Any

from engine.errors import InvalidArgument
from engine.goduration import UNITS
from engine.goduration import check as check_duration
from engine.goduration import parse as parse_duration

ON_FAILURE_ACTIONS = ("none", "kill", "restart", "stop")
HEALTH_FILTERS = ("starting", "healthy", "unhealthy", "none")
TEST_KINDS = ("NONE", "CMD", "CMD-SHELL")
# ContainerOptions field → the Healthcheck key it overrides (the test is handled on its own).
DURATION_FIELDS = (
    ("health_interval", "Interval"),
    ("health_timeout", "Timeout"),
    ("health_start_period", "StartPeriod"),
    ("health_start_interval", "StartInterval"),
)


def format_duration(nanoseconds: int | None) -> str:
    """Nanoseconds as Go writes a duration, shortened: 90 s → "1m30s", 0.5 s → "500ms", 0/None → ""."""
    if not nanoseconds:
        return ""
    if nanoseconds % 10**9:
        for unit in ("ms", "us", "ns"):
            if nanoseconds % UNITS[unit] == 0:
                return f"{nanoseconds // UNITS[unit]}{unit}"
    seconds = nanoseconds // 10**9
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{seconds}s" if seconds else ""]
    return "".join(parts)


def from_flags(
    *,
    cmd: str | None = None,
    interval: str | None = None,
    timeout: str | None = None,
    start_period: str | None = None,
    start_interval: str | None = None,
    retries: int | None = None,
    disabled: bool = False,
    on_failure: str | None = None,
) -> dict[str, Any]:
    """The `--health-*` / `--no-healthcheck` / `--health-on-failure` flags as ContainerOptions fields.

    Raise InvalidArgument for a bad value, or for --no-healthcheck with any --health-* option.
    """
    given = (interval, timeout, start_period, start_interval)
    durations = {
        field: parse_duration(value, "--" + field.replace("_", "-")) if value else None
        for (field, _key), value in zip(DURATION_FIELDS, given, strict=True)
    }
    if retries is not None and retries < 0:
        raise InvalidArgument("--health-retries cannot be negative")
    if disabled and (cmd or retries or any(durations.values())):
        raise InvalidArgument("--no-healthcheck conflicts with --health-* options")
    test: tuple[str, ...] | None = None
    if disabled:
        test = ("NONE",)
    elif cmd:
        test = ("CMD-SHELL", cmd)
    return {
        "health_test": test,
        **{key: value or None for key, value in durations.items()},
        "health_retries": retries or None,
        "health_on_failure": check_on_failure(on_failure or "none"),
    }


def check_on_failure(action: str) -> str:
    if action not in ON_FAILURE_ACTIONS:
        raise InvalidArgument(f"invalid --health-on-failure {action!r}: use {', '.join(ON_FAILURE_ACTIONS)}")
    return action


def check_test(test: tuple[str, ...] | list[str] | None, what: str = "Healthcheck.Test") -> None:
    """Raise InvalidArgument unless `test` is empty (inherit), ["NONE"], ["CMD", argv…] or ["CMD-SHELL", s]."""
    if not test:
        return
    kind, rest = test[0], list(test[1:])
    if kind not in TEST_KINDS:
        raise InvalidArgument(
            f"invalid {what}: the first element must be NONE, CMD or CMD-SHELL, not {kind!r}"
        )
    if kind == "NONE" and rest:
        raise InvalidArgument(f"invalid {what}: NONE takes no command")
    if kind == "CMD-SHELL" and (len(rest) != 1 or not rest[0].strip()):
        raise InvalidArgument(f"invalid {what}: CMD-SHELL takes one command string")
    if kind == "CMD" and (not rest or not rest[0]):
        raise InvalidArgument(f"invalid {what}: CMD needs a command")


def validate(options: Any) -> None:
    """Check the health fields of a ContainerOptions, whichever front end filled them (Docker's daemon words)."""
    check_test(options.health_test)
    for field, key in DURATION_FIELDS:
        check_duration(getattr(options, field) or 0, f"{key} in Healthcheck")
    if (options.health_retries or 0) < 0:
        raise InvalidArgument("Retries in Healthcheck cannot be negative")
    check_on_failure(options.health_on_failure)


def config_entries(options: Any, image_healthcheck: Any) -> dict[str, Any]:
    """The Config keys for a new container: `Healthcheck` (the image's, overridden field by field by the
    options; absent when neither has one) and `HealthcheckOnFailureAction` (when it is not "none" or a
    check is configured). Raise InvalidArgument for invalid health options."""
    validate(options)
    merged: dict[str, Any] = dict(image_healthcheck) if isinstance(image_healthcheck, dict) else {}
    if options.health_test:
        merged["Test"] = list(options.health_test)
    for field, key in DURATION_FIELDS:
        if getattr(options, field):
            merged[key] = getattr(options, field)
    if options.health_retries:
        merged["Retries"] = options.health_retries
    out: dict[str, Any] = {}
    if merged:
        out["Healthcheck"] = merged
    if merged or options.health_on_failure != "none":
        out["HealthcheckOnFailureAction"] = options.health_on_failure
    return out


def options_of(config: dict[str, Any], image_healthcheck: Any) -> dict[str, Any]:
    """The ContainerOptions health fields that reproduce a stored Config (values equal to the image's are left
    to it, so a recreate from a newer image takes the newer image's check)."""
    stored = config.get("Healthcheck")
    stored = stored if isinstance(stored, dict) else {}
    image = image_healthcheck if isinstance(image_healthcheck, dict) else {}
    test = stored.get("Test")
    out: dict[str, Any] = {"health_test": tuple(test) if test and test != image.get("Test") else None}
    for field, key in (*DURATION_FIELDS, ("health_retries", "Retries")):
        value = int(stored.get(key) or 0)
        out[field] = value if value and value != int(image.get(key) or 0) else None
    action = config.get("HealthcheckOnFailureAction") or "none"
    out["health_on_failure"] = action if action in ON_FAILURE_ACTIONS else "none"
    return out


def check_filter(value: str) -> str:
    """Return a `health=` filter value, or raise InvalidArgument naming the values allowed."""
    if value not in HEALTH_FILTERS:
        raise InvalidArgument(f"invalid filter 'health={value}' (use {', '.join(HEALTH_FILTERS)})")
    return value


def health_status(container: Any) -> str:
    """What the `health` filter compares: the container's State.Health status, or "none" without one."""
    return str((container.health or {}).get("Status") or "none")
