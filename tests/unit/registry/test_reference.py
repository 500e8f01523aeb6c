"""Reference parsing: the behaviour of Docker's distribution/reference normalisation tests."""

from __future__ import annotations

import pytest

from engine.errors import BadReference, InvalidArgument
from engine.registry.reference import Reference, looks_like_id, parse, parse_repository

DIGEST = "sha256:" + "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c"
HEX64 = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("library/busybox", "docker.io/library/busybox:latest"),
        ("docker.io/busybox", "docker.io/library/busybox:latest"),
        ("docker.io/library/busybox", "docker.io/library/busybox:latest"),
        ("index.docker.io/busybox", "docker.io/library/busybox:latest"),
        ("index.docker.io/docker/docker", "docker.io/docker/docker:latest"),
        ("user/app", "docker.io/user/app:latest"),
        ("docker.io/library/foo/bar", "docker.io/library/foo/bar:latest"),
        ("localhost/foo", "localhost/foo:latest"),
        ("localhost:5000/foo:bar", "localhost:5000/foo:bar"),
        ("127.0.0.1:5000/library/debian", "127.0.0.1:5000/library/debian:latest"),
        ("192.168.0.1", "docker.io/library/192.168.0.1:latest"),
        ("192.168.0.1:80", "docker.io/library/192.168.0.1:80"),
        ("test.com:8080/foo", "test.com:8080/foo:latest"),
        ("test-com:8080/foo", "test-com:8080/foo:latest"),
        ("test_com/foo", "docker.io/test_com/foo:latest"),
        ("xn--n3h.com:18080/foo", "xn--n3h.com:18080/foo:latest"),
        ("ghcr.io/a/b:tag", "ghcr.io/a/b:tag"),
        ("[fc00::1]:5000/docker/docker", "[fc00::1]:5000/docker/docker:latest"),
        ("Foo/bar", "Foo/bar:latest"),
        ("DOCKER/docker", "DOCKER/docker:latest"),
        ("docker.io/" + HEX64, "docker.io/library/" + HEX64 + ":latest"),
        ("dock__er/docker", "docker.io/dock__er/docker:latest"),
        ("docker---rules/docker", "docker.io/docker---rules/docker:latest"),
        ("jess/t", "docker.io/jess/t:latest"),
        ("dbcc1", "docker.io/library/dbcc1:latest"),
    ],
)
def test_parse_normalises_as_docker_does(given: str, expected: str) -> None:
    assert str(parse(given)) == expected


def test_parse_splits_domain_and_path() -> None:
    ref = parse("localhost:5000/x/y:1")
    assert (ref.domain, ref.path, ref.tag, ref.digest) == ("localhost:5000", "x/y", "1", None)
    assert ref.repository == ref.name == "localhost:5000/x/y"


def test_a_digest_reference_gets_no_default_tag() -> None:
    ref = parse("redis@" + DIGEST)
    assert ref.tag is None
    assert ref.digest == DIGEST
    assert str(ref) == "docker.io/library/redis@" + DIGEST


def test_tag_and_digest_are_both_kept() -> None:
    ref = parse("busybox:latest@" + DIGEST)
    assert str(ref) == "docker.io/library/busybox:latest@" + DIGEST
    assert ref.familiar() == "busybox:latest@" + DIGEST


def test_default_tag_none_keeps_a_bare_repository() -> None:
    ref = parse("busybox", default_tag=None)
    assert ref.tag is None
    assert str(ref) == "docker.io/library/busybox"


@pytest.mark.parametrize(
    ("given", "familiar", "familiar_repo"),
    [
        ("busybox", "busybox:latest", "busybox"),
        ("docker.io/library/ubuntu", "ubuntu:latest", "ubuntu"),
        ("fooo/bar", "fooo/bar:latest", "fooo/bar"),
        ("library/foo/bar", "library/foo/bar:latest", "library/foo/bar"),
        ("other/library", "other/library:latest", "other/library"),
        ("myreg:5000/x/y:1", "myreg:5000/x/y:1", "myreg:5000/x/y"),
        ("ghcr.io/a/b:tag", "ghcr.io/a/b:tag", "ghcr.io/a/b"),
        ("127.0.0.1:8000/privatebase", "127.0.0.1:8000/privatebase:latest", "127.0.0.1:8000/privatebase"),
    ],
)
def test_familiar_forms_match_what_docker_prints(given: str, familiar: str, familiar_repo: str) -> None:
    ref = parse(given)
    assert ref.familiar() == familiar
    assert ref.familiar_repository() == familiar_repo


@pytest.mark.parametrize(
    "given",
    [
        "https://github.com/docker/docker",
        "docker/Docker",
        "-docker",
        "-docker/docker",
        "-docker.io/docker/docker",
        "docker-/docker",
        "-docker-/docker",
        "docker///docker",
        "docker.io/docker/Docker",
        "docker.io/docker///docker",
        "[fc00::1]",
        "[fc00::1]:5000",
        "fc00::1:5000/debian",
        "[fe80::1%eth0]:5000/debian",
        "[2001:db8:3:4::192.0.2.33]:5000/debian",
        HEX64,
        "____/____",
        "_docker/_docker",
        "dock..er/docker",
        "dock_.er/docker",
        "dock-.er/docker",
        "docker/",
        "",
        ":",
        "test image:1",
        "private@registry:5000/test",
        "private.registry:port/namespace/test:1",
        "private.registry:5000/namespace/test:image:1",
        "localhost:5000/foo:#",
        "localhost:5000/foo?test",
        "busybox:-tag",
        "busybox:.tag",
        "busybox:" + "a" * 129,
        "Busybox",
        "Test_com/foo",
    ],
)
def test_parse_refuses_what_docker_refuses(given: str) -> None:
    with pytest.raises(BadReference):
        parse(given)


def test_a_128_character_tag_is_accepted() -> None:
    assert parse("busybox:" + "a" * 128).tag == "a" * 128


def test_uppercase_repository_gets_dockers_message() -> None:
    with pytest.raises(BadReference) as info:
        parse("Busybox")
    assert str(info.value).startswith(
        "invalid reference format: repository name (library/Busybox) must be lowercase"
    )


def test_names_longer_than_255_characters_are_refused() -> None:
    long_name = "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_" * 4 + "/docker"
    with pytest.raises(BadReference, match="255"):
        parse(long_name)
    # the limit counts the domain too, so 255 in total is fine and 256 is not
    ok = "a" * (255 - len("docker.io/library/"))
    assert parse(ok).path == "library/" + ok
    with pytest.raises(BadReference):
        parse(ok + "a")


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:" + "A" * 64,  # uppercase hex
        "sha256:" + "a" * 63,  # too short
        "sha256:" + "a" * 65,  # too long
        "sha256:" + "g" * 64,  # not hex
        "md5:" + "a" * 32,  # unsupported algorithm
        "bad_digest",
    ],
)
def test_digests_are_strictly_validated(digest: str) -> None:
    with pytest.raises(BadReference):
        parse("busybox@" + digest)


def test_bad_reference_is_an_invalid_argument() -> None:
    # front ends map InvalidArgument to HTTP 400
    with pytest.raises(InvalidArgument):
        parse("UPPER/lower:Tag@nope")


def test_with_tag_and_with_digest_return_new_references() -> None:
    ref = parse("busybox")
    assert str(ref.with_tag("1.36")) == "docker.io/library/busybox:1.36"
    assert str(ref.with_digest(DIGEST)) == "docker.io/library/busybox:latest@" + DIGEST
    assert ref.tag == "latest"  # frozen: the original is unchanged
    with pytest.raises(BadReference):
        ref.with_tag("-foo")
    with pytest.raises(BadReference):
        ref.with_digest("foo")


def test_references_compare_and_hash_by_value() -> None:
    assert parse("busybox") == parse("docker.io/library/busybox:latest")
    assert len({parse("busybox"), parse("index.docker.io/library/busybox")}) == 1
    assert parse("busybox") == Reference("docker.io", "library/busybox", "latest", None)


def test_parse_repository_refuses_tags() -> None:
    assert str(parse_repository("user/app")) == "docker.io/user/app"
    with pytest.raises(BadReference):
        parse_repository("user/app:1")


@pytest.mark.parametrize(
    ("s", "expected"),
    [
        ("0123456789ab", True),
        (HEX64, True),
        ("sha256:" + HEX64, True),
        ("0123456789a", False),  # too short to be an unambiguous prefix
        (HEX64 + "0", False),
        ("0123456789AB", False),
        ("busybox", False),
        ("", False),
    ],
)
def test_looks_like_id_tells_hex_ids_from_names(s: str, expected: bool) -> None:
    assert looks_like_id(s) is expected
