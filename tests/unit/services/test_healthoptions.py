"""Health check options: Go durations, the flags' checks, the merge with the image's HEALTHCHECK (pure)."""

from __future__ import annotations

import dataclasses

import pytest

from engine.errors import InvalidArgument
from engine.services import containerconfig, healthoptions
from engine.services import options as opts

S = 1_000_000_000
IMAGE_CHECK = {"Test": ["CMD-SHELL", "wget -q localhost"], "Interval": 10 * S, "Retries": 5}


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        ("30s", 30 * S),
        ("1m30s", 90 * S),
        ("500ms", S // 2),
        ("1.5h", 5400 * S),
        ("2h45m", (2 * 3600 + 45 * 60) * S),
        ("1ms", 1_000_000),
        ("0", 0),
        ("0s", 0),
        ("+5s", 5 * S),
        (".5s", S // 2),
    ],
)
def test_parse_duration_reads_go_durations(text: str, nanoseconds: int) -> None:
    assert healthoptions.parse_duration(text, "--health-interval") == nanoseconds


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("30", "invalid --health-interval"),  # Go wants a unit on anything but 0
        ("soon", "invalid --health-interval"),
        ("1d", "invalid --health-interval"),
        ("", "invalid --health-interval"),
        ("5s5", "invalid --health-interval"),
        ("-5s", "cannot be negative"),
        ("999us", "cannot be less than 1ms"),
        ("10ns", "cannot be less than 1ms"),
    ],
)
def test_parse_duration_refuses_bad_negative_and_tiny_values(text: str, words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        healthoptions.parse_duration(text, "--health-interval")


@pytest.mark.parametrize(
    ("nanoseconds", "text"),
    [(30 * S, "30s"), (90 * S, "1m30s"), (3600 * S, "1h"), (S // 2, "500ms"), (0, ""), (None, "")],
)
def test_format_duration_is_the_inverse_of_parsing(nanoseconds: int | None, text: str) -> None:
    assert healthoptions.format_duration(nanoseconds) == text
    if text:
        assert healthoptions.parse_duration(text, "x") == nanoseconds


def test_flags_become_option_fields() -> None:
    fields = healthoptions.from_flags(cmd="curl -f localhost", interval="1s", retries=2, on_failure="restart")
    assert fields == {
        "health_test": ("CMD-SHELL", "curl -f localhost"),
        "health_interval": S,
        "health_timeout": None,
        "health_start_period": None,
        "health_start_interval": None,
        "health_retries": 2,
        "health_on_failure": "restart",
    }


def test_no_healthcheck_alone_disables_the_check() -> None:
    assert healthoptions.from_flags(disabled=True)["health_test"] == ("NONE",)


@pytest.mark.parametrize(
    "extra", [{"cmd": "true"}, {"interval": "5s"}, {"retries": 1}, {"start_interval": "1s"}]
)
def test_no_healthcheck_conflicts_with_health_options(extra: dict) -> None:
    with pytest.raises(InvalidArgument, match="--no-healthcheck conflicts with --health-\\* options"):
        healthoptions.from_flags(disabled=True, **extra)


def test_flags_refuse_negative_retries_and_unknown_actions() -> None:
    with pytest.raises(InvalidArgument, match="--health-retries cannot be negative"):
        healthoptions.from_flags(retries=-1)
    with pytest.raises(InvalidArgument, match="use none, kill, restart, stop"):
        healthoptions.from_flags(on_failure="reboot")


def _config(image_config: dict, **health: object) -> dict:
    return containerconfig.config(opts.ContainerOptions(image="busybox", **health), image_config)  # type: ignore[arg-type]


def test_the_image_healthcheck_is_kept_without_flags() -> None:
    config = _config({"Healthcheck": IMAGE_CHECK})
    assert config["Healthcheck"] == IMAGE_CHECK
    assert config["HealthcheckOnFailureAction"] == "none"


def test_flags_override_the_image_field_by_field() -> None:
    config = _config({"Healthcheck": IMAGE_CHECK}, health_interval=S, health_timeout=2 * S)
    # The image's command and retries survive; only what was given changes.
    assert config["Healthcheck"] == {
        "Test": ["CMD-SHELL", "wget -q localhost"],
        "Interval": S,
        "Timeout": 2 * S,
        "Retries": 5,
    }


def test_no_healthcheck_replaces_the_image_test() -> None:
    config = _config({"Healthcheck": IMAGE_CHECK}, health_test=("NONE",))
    assert config["Healthcheck"]["Test"] == ["NONE"]


def test_a_container_without_any_healthcheck_stores_none() -> None:
    config = _config({})
    assert "Healthcheck" not in config
    assert "HealthcheckOnFailureAction" not in config


def test_create_validates_options_from_any_front_end() -> None:
    # A hand-made ContainerOptions (dashboard, API, a plugin) is held to the same rules as the flags.
    for bad in ({"health_interval": 10}, {"health_retries": -1}, {"health_on_failure": "explode"}):
        with pytest.raises(InvalidArgument):
            _config({}, **bad)
    with pytest.raises(InvalidArgument, match="CMD-SHELL takes one command"):
        _config({}, health_test=("CMD-SHELL",))


def test_the_spec_roundtrip_leaves_image_values_to_the_image() -> None:
    options = opts.ContainerOptions(image="busybox", health_interval=S, health_on_failure="kill")
    config = containerconfig.config(options, {"Healthcheck": IMAGE_CHECK})
    fields = healthoptions.options_of(config, IMAGE_CHECK)
    assert fields == {
        "health_test": None,
        "health_interval": S,
        "health_timeout": None,
        "health_start_period": None,
        "health_start_interval": None,
        "health_retries": None,
        "health_on_failure": "kill",
    }
    # Recreating from those fields gives the same stored check.
    again = containerconfig.config(dataclasses.replace(options, **fields), {"Healthcheck": IMAGE_CHECK})
    assert again["Healthcheck"] == config["Healthcheck"]


def test_health_filter_values() -> None:
    assert healthoptions.check_filter("unhealthy") == "unhealthy"
    with pytest.raises(InvalidArgument, match="invalid filter 'health=sick'"):
        healthoptions.check_filter("sick")
