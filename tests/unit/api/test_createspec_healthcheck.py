"""Docker's create body: Config.Healthcheck becomes the health options, checked as the daemon does (pure)."""

from __future__ import annotations

import pytest

from engine.api.createspec import parse_create
from engine.errors import InvalidArgument

S = 1_000_000_000


def test_api_healthcheck_becomes_option_fields() -> None:
    spec = parse_create(
        {"Image": "busybox", "Healthcheck": {"Test": ["CMD", "true"], "Interval": S, "Retries": 0}}
    )
    assert spec.options.health_test == ("CMD", "true")
    assert spec.options.health_interval == S
    assert spec.options.health_retries is None  # 0 = the image's value, as Docker reads it


@pytest.mark.parametrize(
    ("healthcheck", "words"),
    [
        ({"Test": ["BOGUS", "x"]}, "NONE, CMD or CMD-SHELL"),
        ({"Test": "CMD-SHELL true"}, "Healthcheck.Test"),
        ({"Interval": 5}, "Healthcheck.Interval cannot be less than 1ms"),
        ({"Timeout": -1}, "Healthcheck.Timeout cannot be negative"),
        ({"Retries": -2}, "Healthcheck.Retries cannot be negative"),
        ({"Interval": "5s"}, "Healthcheck.Interval"),
    ],
)
def test_api_healthcheck_is_checked(healthcheck: dict, words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        parse_create({"Image": "busybox", "Healthcheck": healthcheck})
