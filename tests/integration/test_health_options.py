"""Health check settings at create: `--health-*` and `--no-healthcheck` over an image's HEALTHCHECK, as
inspect shows them, the `ps --filter health=` checks, and an edit's spec round trip keeping them.

Running the checks is tests/integration/test_health.py's business: these containers are only created,
so no check runs here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.services import options as opts
from tests.integration.test_dashboard_containers import seeded  # noqa: F401

pytestmark = pytest.mark.root

S = 1_000_000_000


def test_run_options_store_the_healthcheck(berth_cli) -> None:  # type: ignore[no-untyped-def]
    berth_cli.ok(
        "create", "--name", "hc", "--health-cmd", "wget -q -O- localhost || exit 1",
        "--health-interval", "1s", "--health-timeout", "1m30s", "--health-start-period", "500ms",
        "--health-retries", "2", "--health-on-failure", "restart", "busybox", "sleep", "300",
    )  # fmt: skip
    config = berth_cli.inspect("hc")["Config"]
    assert config["Healthcheck"] == {
        "Test": ["CMD-SHELL", "wget -q -O- localhost || exit 1"],
        "Interval": S,
        "Timeout": 90 * S,
        "StartPeriod": S // 2,
        "Retries": 2,
    }
    assert config["HealthcheckOnFailureAction"] == "restart"


def test_no_healthcheck_turns_off_the_image_healthcheck(berth_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "Dockerfile").write_text("FROM busybox\nHEALTHCHECK --interval=5s --retries=4 CMD true\n")
    berth_cli.ok("build", "-q", "-t", "checked:1", str(tmp_path))
    berth_cli.ok("create", "--name", "inherits", "checked:1", "sleep", "300")
    berth_cli.ok("create", "--name", "tuned", "--health-interval", "2s", "checked:1", "sleep", "300")
    berth_cli.ok("create", "--name", "off", "--no-healthcheck", "checked:1", "sleep", "300")
    image_check = {"Test": ["CMD-SHELL", "true"], "Interval": 5 * S, "Retries": 4}
    assert berth_cli.inspect("inherits")["Config"]["Healthcheck"] == image_check
    # A flag overrides one field; the image's command and retries stay.
    assert berth_cli.inspect("tuned")["Config"]["Healthcheck"] == {**image_check, "Interval": 2 * S}
    assert berth_cli.inspect("off")["Config"]["Healthcheck"]["Test"] == ["NONE"]
    # Not started, so no State.Health yet (Docker shows it once the container runs).
    assert "Health" not in berth_cli.inspect("inherits")["State"]


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (["--no-healthcheck", "--health-retries", "1"], "--no-healthcheck conflicts with --health-* options"),
        (["--health-interval", "30"], "invalid --health-interval '30'"),
        (["--health-timeout=-5s"], "--health-timeout cannot be negative"),
        (["--health-start-interval", "10us"], "--health-start-interval cannot be less than 1ms"),
        (["--health-on-failure", "reboot"], "invalid --health-on-failure 'reboot'"),
    ],
)
def test_bad_health_options_are_one_clear_error(berth_cli, flags: list[str], error: str) -> None:  # type: ignore[no-untyped-def]
    line = berth_cli.fail("create", "--name", "bad", *flags, "busybox", "true")
    assert error in line
    # Refused before anything was made.
    assert berth_cli.ok("ps", "-aq") == ""


def test_ps_filters_by_health(berth_cli) -> None:  # type: ignore[no-untyped-def]
    berth_cli.ok("create", "--name", "plain", "busybox", "true")
    berth_cli.ok("create", "--name", "checked", "--health-cmd", "true", "busybox", "true")
    # Neither has run a check: both have no health state yet, as in Docker.
    out = berth_cli.ok("ps", "-a", "--filter", "health=none", "--format", "json")
    assert sorted(json.loads(line)["Names"] for line in out.splitlines()) == ["checked", "plain"]
    assert berth_cli.ok("ps", "-aq", "--filter", "health=unhealthy") == ""
    line = berth_cli.fail("ps", "-a", "--filter", "health=sick")
    assert "invalid filter 'health=sick' (use starting, healthy, unhealthy, none)" in line


def test_an_edit_keeps_the_health_settings(seeded: Any) -> None:  # noqa: F811
    from engine.services import containers, revisions

    options = opts.ContainerOptions(
        image="busybox",
        name="hcedit",
        command=("sleep", "300"),
        health_test=("CMD", "/bin/true"),
        health_interval=3 * S,
        health_retries=7,
        health_on_failure="stop",
    )
    container = containers.create(options)
    spec = revisions.spec_of(container)
    assert (spec.health_test, spec.health_interval, spec.health_retries, spec.health_on_failure) == (
        ("CMD", "/bin/true"),
        3 * S,
        7,
        "stop",
    )
    # What a revision stores (JSON) comes back the same.
    assert revisions.from_dict(json.loads(json.dumps(revisions.to_dict(spec)))) == spec
    assert revisions.diff(options, spec) == []
