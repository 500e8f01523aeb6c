"""The distribution client against tiny hostile and honest HTTP servers on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import io
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from engine.errors import ImageNotFound, InvalidArgument, RegistryAuthError, RegistryError
from engine.registry import client as client_module
from engine.registry.auth import Credentials
from engine.registry.client import RegistryClient, base_url, check_redirect, is_insecure

Reply = tuple[int, dict[str, str], bytes]


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Fake:
    """An HTTP server whose answers the test writes: routes map (METHOD, path) to a reply function."""

    routes: dict[tuple[str, str], Callable[[Seen], Reply]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def netloc(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> Fake:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Seen(self.command, self.path, dict(self.headers.items()), body)
                fake.seen.append(request)
                route = fake.routes.get((self.command, self.path.split("?", 1)[0]))
                status, headers, payload = route(request) if route else (404, {}, b'{"errors":[]}')
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if "Content-Length" not in headers and "Transfer-Encoding" not in headers:
                    self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = _serve

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # clients that hang up early (size caps, timeouts) are what these tests provoke

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake() -> Iterator[Fake]:
    server = Fake().start()
    yield server
    server.stop()


@pytest.fixture
def other() -> Iterator[Fake]:
    """A second server: "another host" for redirects and token realms."""
    server = Fake().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "RETRY_DELAY", 0.0)


MANIFEST = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}'
OCI = "application/vnd.oci.image.manifest.v1+json"


def serve(data: bytes, media_type: str = OCI, **headers: str) -> Callable[[Seen], Reply]:
    return lambda _req: (200, {"Content-Type": media_type, **headers}, data)


# -- where to connect ---------------------------------------------------------------------------


def test_plain_http_is_used_only_for_loopback_and_listed_hosts() -> None:
    assert is_insecure("localhost:5000", env="")
    assert is_insecure("127.0.0.1:5000", env="")
    assert is_insecure("127.8.9.10", env="")
    assert is_insecure("[::1]:5000", env="")
    assert is_insecure("reg.lan:5000", env="other.lan, reg.lan:5000")
    assert is_insecure("reg.lan:5000", env="reg.lan")
    assert not is_insecure("reg.lan:5000", env="reg.lan:6000")
    assert not is_insecure("ghcr.io", env="")
    assert not is_insecure("10.0.0.1:5000", env="")


def test_docker_hub_maps_to_its_api_host_over_https() -> None:
    assert base_url("docker.io", env="") == "https://registry-1.docker.io"
    assert base_url("ghcr.io", env="") == "https://ghcr.io"
    assert base_url("127.0.0.1:5000", env="") == "http://127.0.0.1:5000"


@pytest.mark.parametrize(
    ("current", "location", "expected"),
    [
        ("http://a:1/v2/x", "https://b/blob", "https://b/blob"),
        ("https://a/v2/x", "https://b/blob?sig=1", "https://b/blob?sig=1"),
        ("http://a:1/v2/x", "/other", "http://a:1/other"),
        ("http://a:1/v2/x", "http://b:2/y", "http://b:2/y"),
    ],
)
def test_check_redirect_follows_same_scheme_or_upgrades(current: str, location: str, expected: str) -> None:
    assert check_redirect(current, location) == expected


@pytest.mark.parametrize(
    "location",
    ["http://b/blob", "file:///etc/passwd", "ftp://b/x", "https://user:pw@b/x", "", "https://b/\r\nX: y"],
)
def test_check_redirect_refuses_downgrades_and_other_schemes(location: str) -> None:
    with pytest.raises(RegistryError):
        check_redirect("https://a/v2/x", location)


# -- manifests ------------------------------------------------------------------------------------


def test_get_manifest_asks_for_all_four_media_types_and_verifies_the_digest(fake: Fake) -> None:
    fake.routes[("GET", "/v2/test/app/manifests/1")] = serve(
        MANIFEST, **{"Docker-Content-Digest": digest(MANIFEST)}
    )
    got = RegistryClient(fake.netloc).get_manifest("test/app", "1")
    assert (got.data, got.media_type, got.digest) == (MANIFEST, OCI, digest(MANIFEST))
    accept = fake.seen[0].headers["Accept"]
    for media_type in (
        "oci.image.index",
        "oci.image.manifest",
        "manifest.list.v2",
        "distribution.manifest.v2",
    ):
        assert media_type in accept


def test_get_manifest_by_digest_refuses_bytes_that_do_not_hash_to_it(fake: Fake) -> None:
    wanted = digest(b"something else")
    fake.routes[("GET", f"/v2/test/app/manifests/{wanted}")] = serve(MANIFEST)
    with pytest.raises(RegistryError, match="digest mismatch"):
        RegistryClient(fake.netloc).get_manifest("test/app", wanted)


@pytest.mark.parametrize("claimed", [digest(b"other"), "sha256:../../../etc/passwd", "SHA256:" + "A" * 64])
def test_get_manifest_refuses_a_wrong_or_malformed_digest_header(fake: Fake, claimed: str) -> None:
    fake.routes[("GET", "/v2/test/app/manifests/1")] = serve(MANIFEST, **{"Docker-Content-Digest": claimed})
    with pytest.raises(RegistryError, match="digest mismatch"):
        RegistryClient(fake.netloc).get_manifest("test/app", "1")


def test_get_manifest_refuses_a_malformed_digest_reference_before_any_request(fake: Fake) -> None:
    with pytest.raises(InvalidArgument):
        RegistryClient(fake.netloc).get_manifest("test/app", "sha256:../x")
    assert fake.seen == []


def test_an_unknown_manifest_is_image_not_found(fake: Fake) -> None:
    with pytest.raises(ImageNotFound, match="manifest unknown"):
        RegistryClient(fake.netloc).get_manifest("test/app", "nope")


def test_a_manifest_over_the_size_cap_is_refused(fake: Fake) -> None:
    fake.routes[("GET", "/v2/test/app/manifests/1")] = serve(b" " * (4 * 1024 * 1024 + 1))
    with pytest.raises(RegistryError, match="limit"):
        RegistryClient(fake.netloc).get_manifest("test/app", "1")


# -- authentication -------------------------------------------------------------------------------


def test_a_401_without_credentials_says_to_log_in(fake: Fake) -> None:
    fake.routes[("GET", "/v2/test/app/manifests/1")] = lambda _r: (
        401,
        {"WWW-Authenticate": 'Basic realm="r"'},
        b"",
    )
    with pytest.raises(RegistryAuthError, match=f"authentication required: run berth login {fake.netloc}"):
        RegistryClient(fake.netloc).get_manifest("test/app", "1")


def test_basic_auth_is_answered_with_the_stored_credentials(fake: Fake) -> None:
    good = "Basic " + base64.b64encode(b"alice:pw").decode()

    def manifest(req: Seen) -> Reply:
        if req.headers.get("Authorization") != good:
            return 401, {"WWW-Authenticate": 'Basic realm="r"'}, b""
        return 200, {"Content-Type": OCI}, MANIFEST

    fake.routes[("GET", "/v2/test/app/manifests/1")] = manifest
    client = RegistryClient(fake.netloc, credentials=Credentials("alice", "pw"))
    assert client.get_manifest("test/app", "1").data == MANIFEST
    assert client.get_manifest("test/app", "1").data == MANIFEST
    # The second request carries the credentials at once instead of provoking another 401.
    assert [r.headers.get("Authorization") is not None for r in fake.seen] == [False, True, True]


def test_wrong_basic_credentials_are_an_auth_error(fake: Fake) -> None:
    fake.routes[("GET", "/v2/test/app/manifests/1")] = lambda _r: (
        401,
        {"WWW-Authenticate": 'Basic realm="r"'},
        b"",
    )
    with pytest.raises(RegistryAuthError, match="authentication required"):
        RegistryClient(fake.netloc, credentials=Credentials("alice", "bad")).get_manifest("test/app", "1")


def test_bearer_flow_fetches_a_token_from_the_realm_with_basic_credentials(fake: Fake, other: Fake) -> None:
    scope = "repository:test/app:pull"
    challenge = f'Bearer realm="http://{other.netloc}/token",service="fake",scope="{scope}"'

    def manifest(req: Seen) -> Reply:
        if req.headers.get("Authorization") != "Bearer T0K3N":
            return 401, {"WWW-Authenticate": challenge}, b'{"errors":[{"code":"UNAUTHORIZED"}]}'
        return 200, {"Content-Type": OCI}, MANIFEST

    def token(req: Seen) -> Reply:
        if req.headers.get("Authorization") != "Basic " + base64.b64encode(b"bob:pw").decode():
            return 401, {}, b"{}"
        return 200, {"Content-Type": "application/json"}, b'{"token":"T0K3N","expires_in":300}'

    fake.routes[("GET", "/v2/test/app/manifests/1")] = manifest
    other.routes[("GET", "/token")] = token
    client = RegistryClient(fake.netloc, credentials=Credentials("bob", "pw"))
    assert client.get_manifest("test/app", "1").data == MANIFEST
    (token_request,) = other.seen
    assert token_request.path == "/token?service=fake&scope=repository%3Atest%2Fapp%3Apull"
    # The registry never sees the password, only the token.
    assert all(not r.headers.get("Authorization", "").startswith("Basic") for r in fake.seen)


def test_a_token_the_registry_stops_accepting_is_replaced(fake: Fake, other: Fake) -> None:
    challenge = f'Bearer realm="http://{other.netloc}/token",service="fake"'
    accepted = ["Bearer T1"]
    tokens = iter([b'{"token":"T1","expires_in":3600}', b'{"token":"T2","expires_in":3600}'])

    def manifest(req: Seen) -> Reply:
        if req.headers.get("Authorization") not in accepted:
            return 401, {"WWW-Authenticate": challenge}, b""
        return 200, {"Content-Type": OCI}, MANIFEST

    fake.routes[("GET", "/v2/test/app/manifests/1")] = manifest
    other.routes[("GET", "/token")] = lambda _r: (200, {}, next(tokens))
    client = RegistryClient(fake.netloc)
    client.get_manifest("test/app", "1")
    accepted[:] = ["Bearer T2"]  # T1 revoked (or expired early) on the registry's side
    assert client.get_manifest("test/app", "1").data == MANIFEST
    assert fake.seen[-1].headers["Authorization"] == "Bearer T2"


def test_bearer_flow_with_refused_credentials_is_an_auth_error(fake: Fake, other: Fake) -> None:
    challenge = f'Bearer realm="http://{other.netloc}/token",service="fake"'
    fake.routes[("GET", "/v2/test/app/manifests/1")] = lambda _r: (401, {"WWW-Authenticate": challenge}, b"")
    other.routes[("GET", "/token")] = lambda _r: (401, {}, b"{}")
    with pytest.raises(RegistryAuthError, match="unauthorized"):
        RegistryClient(fake.netloc, credentials=Credentials("bob", "bad")).get_manifest("test/app", "1")


def test_a_file_realm_is_refused(fake: Fake) -> None:
    challenge = 'Bearer realm="file:///etc/passwd",service="fake"'
    fake.routes[("GET", "/v2/test/app/manifests/1")] = lambda _r: (401, {"WWW-Authenticate": challenge}, b"")
    with pytest.raises(RegistryAuthError, match="realm"):
        RegistryClient(fake.netloc).get_manifest("test/app", "1")


# -- blobs and redirects --------------------------------------------------------------------------

BLOB = b"layer bytes " * 1000


def test_a_redirect_to_another_host_does_not_carry_the_authorization_header(fake: Fake, other: Fake) -> None:
    good = "Basic " + base64.b64encode(b"alice:pw").decode()
    path = f"/v2/test/app/blobs/{digest(BLOB)}"

    def blob(req: Seen) -> Reply:
        if req.headers.get("Authorization") != good:
            return 401, {"WWW-Authenticate": 'Basic realm="r"'}, b""
        return 307, {"Location": f"http://{other.netloc}/storage/blob?sig=abc"}, b""

    fake.routes[("GET", path)] = blob
    other.routes[("GET", "/storage/blob")] = lambda _r: (200, {}, BLOB)
    client = RegistryClient(fake.netloc, credentials=Credentials("alice", "pw"))
    with client.open_blob("test/app", digest(BLOB), size=len(BLOB)) as reader:
        assert reader.read() == BLOB
    assert fake.seen[-1].headers.get("Authorization") == good
    (storage_request,) = other.seen
    assert "Authorization" not in storage_request.headers
    assert storage_request.path == "/storage/blob?sig=abc"


def test_a_redirect_target_asking_for_credentials_does_not_get_them(fake: Fake, other: Fake) -> None:
    path = f"/v2/test/app/blobs/{digest(BLOB)}"
    fake.routes[("GET", path)] = lambda _r: (307, {"Location": f"http://{other.netloc}/storage"}, b"")
    challenge = f'Bearer realm="http://{other.netloc}/steal",service="x"'
    other.routes[("GET", "/storage")] = lambda _r: (401, {"WWW-Authenticate": challenge}, b"")
    client = RegistryClient(fake.netloc, credentials=Credentials("alice", "pw"))
    with pytest.raises(RegistryAuthError):
        client.open_blob("test/app", digest(BLOB), size=len(BLOB))
    assert [r.path for r in other.seen] == ["/storage"]  # the "realm" was never asked, with or without creds
    assert all("Authorization" not in r.headers for r in other.seen)


def test_redirect_loops_stop_after_five_hops(fake: Fake) -> None:
    path = f"/v2/test/app/blobs/{digest(BLOB)}"
    fake.routes[("GET", path)] = lambda _r: (302, {"Location": path}, b"")
    with pytest.raises(RegistryError, match="too many redirects"):
        RegistryClient(fake.netloc).open_blob("test/app", digest(BLOB), size=len(BLOB))
    assert len(fake.seen) == 6


def test_a_redirect_to_a_file_url_is_refused(fake: Fake) -> None:
    path = f"/v2/test/app/blobs/{digest(BLOB)}"
    fake.routes[("GET", path)] = lambda _r: (302, {"Location": "file:///etc/shadow"}, b"")
    with pytest.raises(RegistryError, match="only http"):
        RegistryClient(fake.netloc).open_blob("test/app", digest(BLOB), size=len(BLOB))


def test_a_blob_whose_length_differs_from_its_descriptor_is_refused(fake: Fake) -> None:
    fake.routes[("GET", f"/v2/test/app/blobs/{digest(BLOB)}")] = lambda _r: (200, {}, BLOB)
    with pytest.raises(RegistryError, match="manifest says"):
        RegistryClient(fake.netloc).open_blob("test/app", digest(BLOB), size=len(BLOB) - 1)


def test_a_blob_streamed_past_its_descriptor_size_is_cut_off(fake: Fake) -> None:
    # No Content-Length (chunked): nothing up front says the body is too long; reading must stop it.
    fake.routes[("GET", f"/v2/test/app/blobs/{digest(BLOB)}")] = _endless
    with (
        pytest.raises(RegistryError, match="larger than its manifest says"),
        RegistryClient(fake.netloc).open_blob("test/app", digest(BLOB), size=10) as reader,
    ):
        while reader.read(4096):
            pass


def _endless(_req: Seen) -> Reply:
    body = b"x" * 100_000
    chunked = hex(len(body))[2:].encode() + b"\r\n" + body + b"\r\n0\r\n\r\n"
    return 200, {"Transfer-Encoding": "chunked"}, chunked


def test_get_blob_verifies_the_content(fake: Fake) -> None:
    fake.routes[("GET", f"/v2/test/app/blobs/{digest(b'config')}")] = lambda _r: (200, {}, b"CONFIG")
    with pytest.raises(RegistryError, match="does not match"):
        RegistryClient(fake.netloc).get_blob("test/app", digest(b"config"), size=6, cap=100)


def test_get_blob_refuses_a_descriptor_over_the_cap_without_asking(fake: Fake) -> None:
    with pytest.raises(RegistryError, match="limit"):
        RegistryClient(fake.netloc).get_blob("test/app", digest(b"c"), size=10_000, cap=100)
    assert fake.seen == []


# -- failures and retries -------------------------------------------------------------------------


def test_transient_5xx_is_retried(fake: Fake) -> None:
    answers = iter([(503, {}, b""), (502, {}, b""), (200, {"Content-Type": OCI}, MANIFEST)])
    fake.routes[("GET", "/v2/test/app/manifests/1")] = lambda _r: next(answers)
    assert RegistryClient(fake.netloc).get_manifest("test/app", "1").data == MANIFEST


def test_a_persistent_5xx_is_a_transient_registry_error(fake: Fake) -> None:
    fake.routes[("GET", "/v2/test/app/manifests/1")] = lambda _r: (
        500,
        {},
        b'{"errors":[{"code":"UNKNOWN"}]}',
    )
    with pytest.raises(RegistryError) as info:
        RegistryClient(fake.netloc).get_manifest("test/app", "1")
    assert info.value.permanent is False
    assert "HTTP 500" in str(info.value)
    assert len(fake.seen) == 3


def test_a_registry_that_never_answers_times_out(fake: Fake) -> None:
    release = threading.Event()

    def stall(_req: Seen) -> Reply:
        release.wait(5)
        return 200, {}, b""

    fake.routes[("GET", "/v2/test/app/manifests/1")] = stall
    try:
        with pytest.raises(RegistryError, match="timed out") as info:
            RegistryClient(fake.netloc, timeout=0.2).get_manifest("test/app", "1")
        assert info.value.permanent is False
    finally:
        release.set()


def test_a_closed_port_is_a_transient_registry_error(fake: Fake) -> None:
    netloc = fake.netloc
    fake.stop()
    fake.server = None
    with pytest.raises(RegistryError, match="cannot reach") as info:
        RegistryClient(netloc).get_manifest("test/app", "1")
    assert info.value.permanent is False
    fake.start()  # so the fixture's stop() has a server to stop


def test_registry_error_text_is_made_safe_for_a_terminal(fake: Fake) -> None:
    body = b'{"errors":[{"code":"DENIED","message":"\\u001b[31mevil\\u0007"}]}'
    fake.routes[("GET", "/v2/test/app/manifests/1")] = lambda _r: (400, {}, body)
    with pytest.raises(RegistryError) as info:
        RegistryClient(fake.netloc).get_manifest("test/app", "1")
    assert "\x1b" not in str(info.value) and "\x07" not in str(info.value)
    assert "evil" in str(info.value)


# -- pushing --------------------------------------------------------------------------------------


def test_upload_blob_posts_then_puts_the_bytes_with_the_digest(fake: Fake) -> None:
    fake.routes[("POST", "/v2/test/app/blobs/uploads/")] = lambda _r: (
        202,
        {"Location": "/v2/test/app/blobs/uploads/u1?_state=s"},
        b"",
    )
    fake.routes[("PUT", "/v2/test/app/blobs/uploads/u1")] = lambda _r: (201, {}, b"")
    sent: list[int] = []
    RegistryClient(fake.netloc).upload_blob(
        "test/app", digest(BLOB), len(BLOB), io.BytesIO(BLOB), on_bytes=sent.append
    )
    put = fake.seen[-1]
    assert put.method == "PUT" and put.body == BLOB
    assert put.path == f"/v2/test/app/blobs/uploads/u1?_state=s&digest={digest(BLOB).replace(':', '%3A')}"
    assert sent[-1] == len(BLOB)


def test_upload_blob_restarts_the_upload_after_a_transient_failure(fake: Fake) -> None:
    fake.routes[("POST", "/v2/test/app/blobs/uploads/")] = lambda _r: (202, {"Location": "/up"}, b"")
    answers = iter([(503, {}, b""), (201, {}, b"")])
    fake.routes[("PUT", "/up")] = lambda _r: next(answers)
    RegistryClient(fake.netloc).upload_blob("test/app", digest(BLOB), len(BLOB), io.BytesIO(BLOB))
    puts = [r for r in fake.seen if r.method == "PUT"]
    assert [p.body for p in puts] == [BLOB, BLOB]
    assert [r.method for r in fake.seen] == ["POST", "PUT", "POST", "PUT"]


def test_blob_exists_reads_head_status(fake: Fake) -> None:
    fake.routes[("HEAD", f"/v2/test/app/blobs/{digest(BLOB)}")] = lambda _r: (
        200,
        {"Content-Length": "0"},
        b"",
    )
    client = RegistryClient(fake.netloc)
    assert client.blob_exists("test/app", digest(BLOB)) is True
    assert client.blob_exists("test/app", digest(b"missing")) is False


def test_put_manifest_sends_its_media_type_and_returns_the_digest(fake: Fake) -> None:
    fake.routes[("PUT", "/v2/test/app/manifests/2")] = lambda r: (
        201,
        {"Docker-Content-Digest": digest(r.body)},
        b"",
    )
    assert RegistryClient(fake.netloc).put_manifest("test/app", "2", MANIFEST, OCI) == digest(MANIFEST)
    assert fake.seen[0].headers["Content-Type"] == OCI
    assert fake.seen[0].body == MANIFEST
