"""The Run form's Health check group: same options and words as `berth run --health-*`."""

from __future__ import annotations

import dataclasses

from dashboard.forms_containers import RunForm, cli_command, initial_from
from engine.services import options as opts
from engine.services import revisions

S = 1_000_000_000


def test_the_health_group_maps_to_the_health_options() -> None:
    form = RunForm(
        {
            "image": "busybox",
            "restart": "no",
            "network": "bridge",
            "health_cmd": "wget -q -O- localhost",
            "health_interval": "1m30s",
            "health_retries": "2",
            "health_on_failure": "restart",
        }
    )
    assert form.is_valid(), form.errors
    options = form.to_options()
    assert options.health_test == ("CMD-SHELL", "wget -q -O- localhost")
    assert options.health_interval == 90 * S
    assert options.health_retries == 2
    assert options.health_on_failure == "restart"


def test_empty_health_fields_keep_the_image_check() -> None:
    form = RunForm({"image": "busybox", "restart": "no", "network": "bridge"})
    assert form.is_valid(), form.errors
    options = form.to_options()
    assert (options.health_test, options.health_interval, options.health_on_failure) == (None, None, "none")


def test_a_bad_interval_is_an_error_on_its_field() -> None:
    form = RunForm({"image": "busybox", "restart": "no", "network": "bridge", "health_interval": "30"})
    assert not form.is_valid()
    assert "use a duration such as 30s" in form.errors["health_interval"][0]


def test_the_preview_shows_the_health_flags() -> None:
    line = cli_command(
        {"image": "busybox", "health_cmd": "true", "health_interval": "5s", "health_on_failure": "stop"}
    )
    assert "--health-cmd true --health-interval 5s --health-on-failure stop busybox" in line


def test_an_edit_keeps_an_exec_form_check_and_the_fields_without_inputs() -> None:
    base = opts.ContainerOptions(
        image="busybox", health_test=("CMD", "/bin/check", "--quick"), health_timeout=3 * S, health_retries=4
    )
    data = {k: v for k, v in initial_from(base).items() if v not in (None, False)}
    form = RunForm(data)
    assert form.is_valid(), form.errors
    # Submitted unchanged, nothing differs: the exec form is not turned into a shell command.
    assert revisions.diff(base, form.to_options(base)) == []
    changed = RunForm({**data, "health_retries": "1"})
    assert changed.is_valid(), changed.errors
    assert changed.to_options(base) == dataclasses.replace(base, health_retries=1)
