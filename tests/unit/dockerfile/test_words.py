"""Variable substitution and quoting, as Docker's shell lexer does it."""

from __future__ import annotations

import pytest

from engine.dockerfile.words import expand, parse_pairs, raw_words, split_words
from engine.errors import DockerfileError

ENV = {"A": "a", "EMPTY": "", "SP": "x y"}


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("$A", "a"),
        ("${A}b", "ab"),
        ("pre-$A-post", "pre-a-post"),
        ("$MISSING", ""),
        ("${MISSING:-dflt}", "dflt"),
        ("${EMPTY:-dflt}", "dflt"),
        ("${EMPTY-dflt}", ""),
        ("${A:-dflt}", "a"),
        ("${A:+set}", "set"),
        ("${MISSING:+set}", ""),
        ("${EMPTY+set}", "set"),
        ("${MISSING:-$A}", "a"),
        ("'$A'", "$A"),
        ('"$A b"', "a b"),
        ("\\$A", "$A"),
        ('"\\$A"', "$A"),
        ("$", "$"),
        ("a$1", "a$1"),
    ],
)
def test_expand(text: str, want: str) -> None:
    assert expand(text, ENV) == want


def test_backtick_escape() -> None:
    assert expand("`$A", ENV, escape="`") == "$A"


def test_expanded_values_are_not_split_again() -> None:
    assert split_words("$SP 'c d' e\\ f", ENV) == ["x y", "c d", "e f"]


def test_required_variable_error_has_the_line() -> None:
    with pytest.raises(DockerfileError) as info:
        expand("${MISSING:?must be set}", ENV, line=7)
    assert info.value.line == 7 and "must be set" in str(info.value)


def test_unterminated_quote_and_brace_are_errors() -> None:
    for text in ("'open", '"open', "${A"):
        with pytest.raises(DockerfileError):
            expand(text, ENV)


def test_pairs_keep_quoted_spaces_and_expand_values() -> None:
    assert parse_pairs('K="v w" L=$A M=\\$A', ENV, keyword="ENV") == [("K", "v w"), ("L", "a"), ("M", "$A")]


def test_legacy_env_form_takes_the_rest_of_the_line() -> None:
    assert parse_pairs("K value with $A", ENV, keyword="ENV") == [("K", "value with a")]


def test_label_needs_key_value() -> None:
    with pytest.raises(DockerfileError):
        parse_pairs("justakey", ENV, keyword="LABEL")


def test_raw_words_keep_quotes() -> None:
    assert raw_words('a="b c" d') == ['a="b c"', "d"]


def test_exponential_expansion_is_capped() -> None:
    env = {"A": "x" * (1 << 20)}
    with pytest.raises(DockerfileError, match="larger than"):
        expand("$A$A", env)
