"""engine.goduration: the one Go-duration parser behind HEALTHCHECK's flags and the --health-* options."""

from __future__ import annotations

import pytest

from engine import goduration
from engine.dockerfile.metadata import parse_duration as dockerfile_duration
from engine.errors import DockerfileError, InvalidArgument
from engine.services.healthoptions import parse_duration as option_duration

S = 10**9


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [("1m30s", 90 * S), ("1.5h", 5400 * S), (".5s", S // 2), ("+5s", 5 * S), ("2µs5ms", 5_002_000), ("0", 0)],
)
def test_go_durations_read_as_go_reads_them(text: str, nanoseconds: int) -> None:
    assert goduration.parse(text, "--interval") == nanoseconds


def test_both_spellings_of_micro_are_microseconds() -> None:
    # U+00B5 MICRO SIGN and U+03BC GREEK SMALL LETTER MU, as Go's time.ParseDuration accepts.
    assert goduration.parse("1000\u00b5s", "x") == goduration.parse("1000\u03bcs", "x") == 10**6


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (" 30s", "invalid --interval"),  # Go does not trim: neither does the parser
        ("30", "invalid --interval"),
        ("5x", "invalid --interval"),
        ("", "invalid --interval"),
        ("-1s", "--interval cannot be negative"),
        ("999us", "--interval cannot be less than 1ms"),
    ],
)
def test_bad_negative_and_tiny_durations_are_refused_with_a_reason(text: str, words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        goduration.parse(text, "--interval")


def test_the_dockerfile_and_the_options_agree_and_keep_their_own_wording() -> None:
    for text in ("1m30s", ".5s", "0", "250ms"):
        assert dockerfile_duration(text, "interval", 4) == option_duration(text, "--health-interval")
    # The Dockerfile's error names the flag and the line; the option's names the flag.
    with pytest.raises(DockerfileError, match=r"^Dockerfile line 4: --interval cannot be negative$"):
        dockerfile_duration("-1s", "interval", 4)
    with pytest.raises(InvalidArgument, match=r"^--health-interval cannot be negative$"):
        option_duration("-1s", "--health-interval")


def test_the_api_time_filters_read_the_same_syntax_in_seconds() -> None:
    from engine.api.containerformat import parse_go_duration

    assert parse_go_duration("1h30m") == 5400
    assert parse_go_duration("1.5s") == 1.5
    assert parse_go_duration("-10m") == -600  # Docker's `until=-10m` is ten minutes ahead
    assert parse_go_duration("10") is None and parse_go_duration("10 s") is None
    assert parse_go_duration("0") is None  # a Unix time to Docker's filters, not "now"
