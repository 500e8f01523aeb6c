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
            hint="install a newer runc (or your distribution's update) and point BERTH_RUNTIME at it",
            id="engine.W003",
        )
    ]


@checks.register("engine", deploy=False)
def check_forward_policy(app_configs, **kwargs) -> list[checks.CheckMessage]:  # type: ignore[no-untyped-def]
    """Another firewall (Docker's, firewalld's iptables-nft rules) dropping forwarded traffic."""
    from engine.errors import EngineError
    from engine.net import nft, rules

    try:
        drops = rules.foreign_forward_drops(nft.ruleset(), conf.net_tag())
    except EngineError:
        return []
    return [
        checks.Warning(
            f"{where} drops forwarded packets by default: containers on Berth's bridges cannot reach "
            "the outside or published ports from other hosts",
            hint="let Berth's traffic through that chain, e.g. `iptables -I FORWARD -i berth0 -j ACCEPT` and "
            "`iptables -I FORWARD -o berth0 -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT` (and for "
            "each br-… bridge); Berth never edits tables it does not own",
            id="engine.W004",
        )
        for where in drops
    ]
