"""Issue 10 items 6 and 9 (parsing): hostile .dockerignore patterns, huge LABELs and deep JSON stay cheap."""

from __future__ import annotations

import json
import shlex
import time

import pytest

from engine.dockerfile import ignore
from engine.dockerfile.metadata import apply
from engine.dockerfile.parser import parse
from engine.errors import InvalidArgument
from engine.image import changes, formats, jsonlimits
from engine.registry import auth, client

# -- .dockerignore in linear time (item 6a) -----------------------------------------------------


def _count_steps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count automaton work: one unit per position held per character read."""
    work = [0]
    real = ignore.Glob._step

    def counted(self: ignore.Glob, states: frozenset[int], ch: str) -> frozenset[int]:
        work[0] += len(states)
        return real(self, states, ch)

    monkeypatch.setattr(ignore.Glob, "_step", counted)
    return work


@pytest.mark.parametrize(
    ("pattern", "path"),
    [
        ("*a" * 40 + "*b", "a" * 4000),  # exponential for a backtracking regex
        ("/".join(["**"] * 100) + "/x", "a/" * 2000 + "y"),
        ("**a**a**a**a**a**a**a**a**b", "a" * 4000),
        ("?*" * 200, "x" * 3000 + "/"),
    ],
)
def test_hostile_patterns_cost_at_most_path_times_pattern_steps(
    monkeypatch: pytest.MonkeyPatch, pattern: str, path: str
) -> None:
    work = _count_steps(monkeypatch)
    rules = ignore.matcher(pattern)
    rules.excluded(path)
    # The bound is linear in each input; the old regex needed more than a minute for the first case.
    assert work[0] <= (len(path) + 1) * (len(rules.patterns[0].glob.tokens) + 1)


def test_a_hostile_pattern_finishes_quickly() -> None:
    # The failure mode was minutes of CPU; two seconds is a generous bound on a loaded machine.
    started = time.monotonic()
    assert ignore.matcher("*a" * 40 + "*b").excluded("a" * 4000) is False
    assert time.monotonic() - started < 2


def test_an_overlong_pattern_is_refused_with_one_clear_line() -> None:
    with pytest.raises(InvalidArgument, match="longer than 1024 characters"):
        ignore.matcher("a" * 2000)


def test_too_many_patterns_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="more than 10000 patterns"):
        ignore.matcher("\n".join(f"p{i}" for i in range(10_001)))


def test_an_empty_class_is_an_error_not_a_crash() -> None:
    with pytest.raises(InvalidArgument, match=r"empty \[\]"):
        ignore.matcher("a[]b")


# -- a 1 MiB LABEL in linear time (item 9) ------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ['"' + "x" * (1 << 20) + '"', "x" * (1 << 20), '"' + "x " * (1 << 19) + '"'],
    ids=["quoted", "bare", "spaces"],
)
def test_a_one_mib_label_is_applied_in_well_under_a_second(value: str) -> None:
    (instr,) = parse(f"FROM scratch\nLABEL big={value}\n").stages[0].instructions
    started = time.monotonic()
    config = apply(instr, {}, {})
    # It took 13-25 s (shlex builds tokens by concatenation); about 0.05 s now. Generous bound.
    assert time.monotonic() - started < 1.5
    assert len(config["Labels"]["big"]) == 1 << 20


@pytest.mark.parametrize(
    "text", ["a b", "'a b' c", '"a \\" b"', "a\\ b", '"\\x"', "''", "a=\"1 2\" b='3'", "x\\\ny"]
)
def test_change_words_split_exactly_like_shlex(text: str) -> None:
    assert changes.split_words(text) == shlex.split(text)


def test_an_unmatched_quote_in_a_change_is_a_clear_error() -> None:
    with pytest.raises(InvalidArgument, match="unmatched quote"):
        changes.apply_changes({}, ['LABEL a="b'])


# -- deeply nested JSON (item 6b) ---------------------------------------------------------------


def _nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def test_depth_ignores_brackets_inside_strings() -> None:
    doc = json.dumps({"k": "[" * 500 + "{" * 500, "l": [[1]]}).encode()
    jsonlimits.check_depth(doc, "doc")
    assert jsonlimits.exceeds_depth(doc, 3) is False  # the object and two lists
    assert jsonlimits.exceeds_depth(doc, 2) is True


@pytest.mark.parametrize("parser", [formats.parse_manifest, formats.parse_index, formats.parse_config])
def test_a_deep_document_is_refused_before_json_recurses(parser) -> None:  # type: ignore[no-untyped-def]
    # 100,000 levels raised RecursionError inside json before; now one line names the document.
    with pytest.raises(InvalidArgument, match="nesting deeper than 64 levels"):
        parser(_nested(100_000))


def test_sixty_four_levels_are_still_fine() -> None:
    assert jsonlimits.load_bounded(_nested(64), "doc", max_size=1 << 20)["a"]["a"]


def test_an_oversized_document_is_refused_before_scanning() -> None:
    with pytest.raises(InvalidArgument, match="larger than the 10 byte limit"):
        jsonlimits.load_bounded(b"[" * 100, "doc", max_size=10)


def test_registry_answers_that_nest_too_deep_are_handled() -> None:
    # An error body is only shown (shortened), never parsed into a RecursionError.
    assert len(client.describe_errors(b"[" * 100_000 + b"]" * 100_000)) < 1000
    with pytest.raises(Exception, match="token endpoint returned invalid JSON"):
        auth.parse_token_response(b'{"token":' + b"[" * 50_000 + b"]" * 50_000 + b"}")
