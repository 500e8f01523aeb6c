""".dockerignore matching with Docker's semantics."""

from __future__ import annotations

import pytest

from engine.dockerfile.ignore import matcher
from engine.errors import InvalidArgument


@pytest.mark.parametrize(
    ("patterns", "path", "excluded"),
    [
        ("foo", "foo", True),
        ("foo", "foo/bar/baz", True),  # a directory pattern covers everything below it
        ("foo", "foobar", False),
        ("/foo", "foo", True),
        ("*.log", "a.log", True),
        ("*.log", "dir/a.log", False),  # * does not cross /
        ("**/*.log", "dir/sub/a.log", True),
        ("**/*.log", "a.log", True),
        ("dir/**", "dir/x/y", True),
        ("a?c", "abc", True),
        ("a?c", "a/c", False),
        ("[ab]x", "bx", True),
        ("[!ab]x", "cx", True),
        ("./foo/../bar", "bar", True),
        ("# comment\n\nfoo", "foo", True),
        ("secret*\n!secret-ok", "secret-ok", False),
        ("secret*\n!secret-ok", "secret-1", True),
        ("!keep\n*", "keep", True),  # the last matching pattern wins
        ("dir\n!dir/keep", "dir/keep/x", False),
        ("dir\n!dir/keep", "dir/other", True),
        ("a\\*b", "a*b", True),
        ("a\\*b", "axb", False),
    ],
)
def test_matching(patterns: str, path: str, excluded: bool) -> None:
    assert matcher(patterns).excluded(path) is excluded


def test_no_patterns_excludes_nothing() -> None:
    assert matcher(None).excluded("anything") is False


def test_a_bare_exclamation_mark_is_an_error() -> None:
    with pytest.raises(InvalidArgument):
        matcher("!")


def test_exceptions_require_walking_into_excluded_directories() -> None:
    assert matcher("dir\n!dir/keep").may_include_below("dir") is True
    assert matcher("dir").may_include_below("dir") is False
