from __future__ import annotations

import hashlib

import pytest

from engine.errors import InvalidArgument
from engine.store.digests import chain_id, chain_ids, digest_hex, is_digest, parse_digest, sha256_digest

GOOD = "sha256:" + "ab" * 32


def test_parse_digest_returns_a_valid_digest_unchanged():
    assert parse_digest(GOOD) is GOOD


@pytest.mark.parametrize(
    "value",
    [
        "sha256:../../x",  # A29: a digest that would walk out of the blob directory
        "sha256:" + "AB" * 32,  # upper case is a different file name on Linux
        "sha256:" + "ab" * 31,  # short
        "sha256:" + "ab" * 33,  # long
        "sha512:" + "ab" * 64,
        "sha256:" + "ab" * 32 + "\n",  # "$" in a naive regex accepts this
        "sha256:" + "ab" * 31 + "/x",
        " sha256:" + "ab" * 32,
        "ab" * 32,
        "",
        "sha256:",
    ],
)
def test_parse_digest_refuses_anything_but_sha256_and_64_lowercase_hex(value):
    with pytest.raises(InvalidArgument, match="invalid digest"):
        parse_digest(value)
    assert not is_digest(value)


def test_parse_digest_refuses_non_strings():
    with pytest.raises(InvalidArgument):
        parse_digest(None)  # type: ignore[arg-type]


def test_digest_hex_is_the_validated_hex_part():
    assert digest_hex(GOOD) == "ab" * 32
    with pytest.raises(InvalidArgument):
        digest_hex("sha256:../../etc/passwd")


def test_sha256_digest_matches_hashlib():
    assert sha256_digest(b"hello") == "sha256:" + hashlib.sha256(b"hello").hexdigest()


def test_chain_id_of_one_layer_is_its_diff_id():
    assert chain_id([GOOD]) == GOOD


def test_chain_id_follows_the_oci_recurrence():
    a, b, c = (sha256_digest(x) for x in (b"a", b"b", b"c"))
    ab = "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    abc = "sha256:" + hashlib.sha256(f"{ab} {c}".encode()).hexdigest()
    assert chain_id([a, b]) == ab
    assert chain_id([a, b, c]) == abc
    assert chain_ids([a, b, c]) == [a, ab, abc]


def test_chain_id_refuses_an_empty_stack_and_bad_diff_ids():
    with pytest.raises(InvalidArgument):
        chain_id([])
    with pytest.raises(InvalidArgument):
        chain_id([GOOD, "sha256:nope"])
