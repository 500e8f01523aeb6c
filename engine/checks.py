"""System checks: the host tools the engine needs (ids engine.E001…)."""

from __future__ import annotations

import shutil

from django.core import checks

from engine import conf


@checks.register("engine", deploy=False)
def check_runtime_tools(app_configs, **kwargs) -> list[checks.CheckMessage]:  # type: ignore[no-untyped-def]
    messages: list[checks.CheckMessage] = []
    for setting, binary, ident in (
        ("BERTH_RUNTIME", conf.runtime_binary(), "engine.W001"),
        ("BERTH_CONMON", conf.conmon_binary(), "engine.W002"),
    ):
        if not shutil.which(binary):
            messages.append(
                checks.Warning(
                    f"{binary} not found: containers cannot run",
                    hint=f"install it (make setup) or point {setting} at it",
                    id=ident,
                )
            )
    return messages


@checks.register("engine", deploy=False)
def check_runtime_version(app_configs, **kwargs) -> list[checks.CheckMessage]:  # type: ignore[no-untyped-def]
    """Warn loudly when runc predates the fixes for the known container breakouts."""
    from engine.services import system

    warning = (system.info().get("runtime") or {}).get("warning")
    if not warning:
        return []
    return [
        checks.Warning(
            warning,
            hint="install a newer runc and point BERTH_RUNTIME at it (the distribution may have backported fixes)",
            id="engine.W003",
        )
    ]
