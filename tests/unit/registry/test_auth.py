"""Registry authentication: challenge parsing, realm checks, token responses and the credential file."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from engine.errors import InvalidArgument, RegistryAuthError
from engine.registry.auth import (
    Authorizer,
    Challenge,
    Credentials,
    CredentialStore,
    check_realm,
    normalise_server,
    parse_challenges,
    parse_token_response,
)


def trusted(netloc: str) -> bool:
    return netloc.startswith("127.0.0.1")


# -- challenges -----------------------------------------------------------------------------------


def test_parse_challenges_reads_docker_hubs_bearer_challenge() -> None:
    header = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/busybox:pull"'
    )
    assert parse_challenges(header) == [
        Challenge(
            "bearer",
            {
                "realm": "https://auth.docker.io/token",
                "service": "registry.docker.io",
                "scope": "repository:library/busybox:pull",
            },
        )
    ]


def test_parse_challenges_reads_basic_with_a_realm() -> None:
    assert parse_challenges('Basic realm="Registry Realm"') == [
        Challenge("basic", {"realm": "Registry Realm"})
    ]


def test_parse_challenges_splits_two_challenges_in_one_header() -> None:
    found = parse_challenges('Basic realm="x", Bearer realm="https://a/t",service="s"')
    assert [c.scheme for c in found] == ["basic", "bearer"]
    assert found[1].params == {"realm": "https://a/t", "service": "s"}


def test_parse_challenges_unescapes_quoted_values_and_accepts_bare_ones() -> None:
    (found,) = parse_challenges('Bearer realm="https://a/t?x=\\"y\\"",service=plain')
    assert found.params == {"realm": 'https://a/t?x="y"', "service": "plain"}


def test_parse_challenges_of_garbage_returns_what_it_understood() -> None:
    assert parse_challenges("") == []
    assert parse_challenges('"unterminated') == []


# -- realms and tokens ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "realm",
    [
        "file:///etc/passwd",
        "ftp://example.com/token",
        "gopher://127.0.0.1:70/",
        "//no-scheme/token",
        "https://user:pw@example.com/token",
        "",
    ],
)
def test_check_realm_refuses_anything_but_a_plain_http_url(realm: str) -> None:
    with pytest.raises(RegistryAuthError):
        check_realm(realm, trusted_http=trusted)


def test_check_realm_refuses_plain_http_to_an_untrusted_host() -> None:
    # Credentials travel to the realm: never in clear text to a host nobody said was local.
    with pytest.raises(RegistryAuthError, match="plain-http"):
        check_realm("http://auth.example.com/token", trusted_http=trusted)


def test_check_realm_accepts_https_and_trusted_http() -> None:
    assert check_realm("https://auth.example.com/token", trusted_http=trusted)
    assert check_realm("http://127.0.0.1:5001/token", trusted_http=trusted)


def test_parse_token_response_accepts_token_or_access_token() -> None:
    assert parse_token_response(b'{"token": "abc", "expires_in": 300}') == ("abc", 300)
    assert parse_token_response(b'{"access_token": "xyz"}') == ("xyz", 60)


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b"{}", b'{"token": ""}', b'{"token": "a\\r\\nX-Injected: 1"}', b'{"token": 5}'],
)
def test_parse_token_response_refuses_unusable_tokens(body: bytes) -> None:
    # A token becomes a header value: CR/LF in it would let the server inject headers.
    with pytest.raises(RegistryAuthError):
        parse_token_response(body)


def test_authorizer_sends_basic_credentials_to_the_realm_and_caches_the_token() -> None:
    calls: list[tuple[str, dict[str, str]]] = []

    def get(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
        calls.append((url, headers))
        return 200, b'{"token": "T1", "expires_in": 300}'

    auth = Authorizer(Credentials("alice", "s3cret"), get=get, trusted_http=trusted)
    header = 'Bearer realm="https://auth.example.com/token",service="reg"'
    assert auth.answer(header, "repository:a/b:pull") == "Bearer T1"
    assert auth.answer(header, "repository:a/b:pull") == "Bearer T1"
    assert len(calls) == 1
    url, headers = calls[0]
    assert url == "https://auth.example.com/token?service=reg&scope=repository%3Aa%2Fb%3Apull"
    assert headers["Authorization"] == Credentials("alice", "s3cret").basic_header()
    assert auth.cached("repository:a/b:pull") == "Bearer T1"


def test_authorizer_without_credentials_gets_an_anonymous_token() -> None:
    seen: list[dict[str, str]] = []

    def get(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
        seen.append(headers)
        return 200, b'{"token": "anon"}'

    auth = Authorizer(None, get=get, trusted_http=trusted)
    assert auth.answer('Bearer realm="https://a.example/t"', "s") == "Bearer anon"
    assert seen == [{}]


def test_authorizer_reports_refused_credentials_without_the_password() -> None:
    auth = Authorizer(
        Credentials("alice", "hunter2"), get=lambda url, headers: (401, b"{}"), trusted_http=trusted
    )
    with pytest.raises(RegistryAuthError) as info:
        auth.answer('Bearer realm="https://a.example/t"', "s")
    assert "hunter2" not in str(info.value)


def test_authorizer_answers_basic_only_with_credentials() -> None:
    with pytest.raises(RegistryAuthError, match="berth login"):
        Authorizer(None, get=lambda u, h: (200, b""), trusted_http=trusted).answer('Basic realm="r"', "s")
    auth = Authorizer(Credentials("u", "p"), get=lambda u, h: (200, b""), trusted_http=trusted)
    assert auth.answer('Basic realm="r"', "s") == "Basic dTpw"
    assert auth.cached("any scope") == "Basic dTpw"


def test_credentials_repr_hides_the_password() -> None:
    assert "hunter2" not in repr(Credentials("alice", "hunter2"))


# -- servers and the credential file --------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "key"),
    [
        ("docker.io", "docker.io"),
        ("https://index.docker.io/v1/", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("127.0.0.1:5000", "127.0.0.1:5000"),
        ("http://127.0.0.1:5000/", "127.0.0.1:5000"),
        ("GHCR.io", "ghcr.io"),
        ("ghcr.io/owner/repo", "ghcr.io"),
    ],
)
def test_normalise_server_gives_the_key_references_use(given: str, key: str) -> None:
    assert normalise_server(given) == key


@pytest.mark.parametrize("bad", ["", "  ", "file:///x", "https://u:p@host", "a b", "https://h/?q=1"])
def test_normalise_server_refuses_malformed_addresses(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        normalise_server(bad)


def test_credential_store_writes_mode_0600_and_reads_back(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "auth.json")
    store.put("https://127.0.0.1:5000", Credentials("alice", "pa:ss"))
    assert stat.S_IMODE(os.stat(tmp_path / "auth.json").st_mode) == 0o600
    assert store.get("127.0.0.1:5000") == Credentials("alice", "pa:ss")
    assert store.get("other.example") is None
    doc = json.loads((tmp_path / "auth.json").read_text())
    assert list(doc["auths"]) == ["127.0.0.1:5000"]
    assert not [p for p in tmp_path.iterdir() if p.name != "auth.json"]  # no temp file left


def test_credential_store_remove_forgets_only_that_server(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "auth.json")
    store.put("a.example", Credentials("u1", "p1"))
    store.put("b.example", Credentials("u2", "p2"))
    assert store.remove("a.example") is True
    assert store.remove("a.example") is False
    assert store.get("a.example") is None
    assert store.get("b.example") == Credentials("u2", "p2")


def test_credential_store_narrows_a_widened_file(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "auth.json")
    store.put("a.example", Credentials("u", "p"))
    os.chmod(tmp_path / "auth.json", 0o644)
    assert store.get("a.example") == Credentials("u", "p")
    assert stat.S_IMODE(os.stat(tmp_path / "auth.json").st_mode) == 0o600


def test_credential_store_ignores_garbled_entries(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    path.write_text(json.dumps({"auths": {"a.example": {"auth": "!!!"}, "b.example": "x"}}))
    os.chmod(path, 0o600)
    store = CredentialStore(path)
    assert store.get("a.example") is None
    assert store.get("b.example") is None


def test_credential_store_refuses_to_follow_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "elsewhere.json").write_text("{}")
    (tmp_path / "auth.json").symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(Exception, match="cannot read"):
        CredentialStore(tmp_path / "auth.json").get("a.example")
