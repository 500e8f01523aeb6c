"""The OCI distribution protocol over http.client: manifests and blobs, in and out, for one registry.

Mechanism only: no django, no models, no decisions about images. Every response is hostile input:
digests are parsed strictly before use, documents are size capped, blob streams are bounded by their
descriptor's size, and redirects are followed only to http(s) (never https→http, at most five). The
Authorization header goes only to the origin it was made for, so a registry that redirects blob
downloads to storage on another host never hands that host our credentials (SECURITY.md A29–A32).

Over 400 lines because RegistryClient is one session (auth challenge, token scope, redirects, retries) that
every request goes through.
"""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import json
import os
import ssl
import time
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urlencode, urljoin, urlsplit

from engine.errors import ImageNotFound, InvalidArgument, RegistryAuthError, RegistryError
from engine.image import jsonlimits
from engine.registry.auth import Authorizer, Credentials, shown
from engine.store.digests import is_digest, parse_digest

DEFAULT_TIMEOUT = 30.0
MAX_REDIRECTS = 5
RETRIES = 2
RETRY_DELAY = 0.5
MAX_MANIFEST_SIZE = 4 * 1024 * 1024
MAX_ERROR_BODY = 64 * 1024
USER_AGENT = "berth/0.1"
MANIFEST_ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_TRANSIENT = frozenset({408, 429, 500, 502, 503, 504})
# Docker Hub's references say docker.io; its API lives elsewhere.
_HOST_ALIASES = {"docker.io": "registry-1.docker.io"}


def is_insecure(netloc: str, *, env: str | None = None) -> bool:
    """Tell whether `host[:port]` may be reached over plain http: loopback, or listed in
    BERTH_INSECURE_REGISTRIES (comma or space separated, `host` or `host:port`)."""
    host = urlsplit(f"//{netloc}").hostname or ""
    if host == "localhost":
        return True
    try:
        if ipaddress.ip_address(host).is_loopback:
            return True
    except ValueError:
        pass
    listed = os.environ.get("BERTH_INSECURE_REGISTRIES", "") if env is None else env
    names = {item.strip().lower() for item in listed.replace(",", " ").split() if item.strip()}
    return netloc.lower() in names or host in names


def base_url(domain: str, *, env: str | None = None) -> str:
    """The registry's API origin for a reference domain, e.g. `https://registry-1.docker.io`."""
    netloc = _HOST_ALIASES.get(domain, domain)
    return f"{'http' if is_insecure(netloc, env=env) else 'https'}://{netloc}"


def origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()


def check_redirect(current: str, location: str | None) -> str:
    """Resolve a redirect's Location against `current` and return it if it may be followed.

    Raise RegistryError for a missing or malformed target, a scheme other than http(s), user info in
    the URL, or a downgrade from https to http.
    """
    if not location or any(ord(c) <= 0x20 or ord(c) == 0x7F for c in location):
        raise RegistryError("registry sent a redirect without a usable Location", permanent=True)
    target = urljoin(current, location)
    new = urlsplit(target)
    if new.scheme not in ("http", "https") or not new.hostname:
        raise RegistryError(f"refusing redirect to {shown(target)} (only http(s) URLs)", permanent=True)
    if new.username or new.password:
        raise RegistryError("refusing redirect to a URL with user info in it", permanent=True)
    if urlsplit(current).scheme == "https" and new.scheme == "http":
        raise RegistryError(f"refusing redirect from https to plain http ({new.hostname})", permanent=True)
    return target


class Response:
    """An open HTTP response; close it (or use it as a context manager) to free the connection."""

    def __init__(self, raw: http.client.HTTPResponse, conn: http.client.HTTPConnection, url: str) -> None:
        self.raw = raw
        self.conn = conn
        self.url = url
        self.status = raw.status

    def header(self, name: str) -> str:
        return self.raw.headers.get(name, "") or ""

    def read_capped(self, cap: int, what: str) -> bytes:
        """Read the whole body, refusing one larger than `cap` bytes (whatever Content-Length claims)."""
        length = self.header("Content-Length")
        if length.isdigit() and int(length) > cap:
            raise RegistryError(f"{what} is {length} bytes, larger than the {cap} byte limit", permanent=True)
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = _guarded(self.raw, min(1 << 16, cap + 1 - total), what)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            total += len(chunk)
            if total > cap:
                raise RegistryError(f"{what} is larger than the {cap} byte limit", permanent=True)

    def close(self) -> None:
        self.raw.close()
        self.conn.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BlobReader:
    """A blob download as a stream: never more than the descriptor's size, network errors as RegistryError."""

    def __init__(self, response: Response, digest: str, size: int) -> None:
        self._response = response
        self._digest = digest
        self._size = size
        self._done = 0

    def read(self, amount: int = -1) -> bytes:
        want = self._size + 1 - self._done if amount is None or amount < 0 else amount
        chunk = _guarded(self._response.raw, min(want, self._size + 1 - self._done), self._digest)
        self._done += len(chunk)
        if self._done > self._size:
            raise RegistryError(f"blob {self._digest} is larger than its manifest says", permanent=True)
        if not chunk and amount != 0 and self._done < self._size:
            raise RegistryError(
                f"download of blob {self._digest} ended after {self._done} of {self._size} bytes",
                permanent=False,
            )
        return chunk

    def close(self) -> None:
        self._response.close()

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class FetchedManifest:
    """A manifest or index as the registry served it, its digest verified."""

    data: bytes
    media_type: str
    digest: str


class _Rewindable:
    """A seekable upload body that reports bytes sent; rewinding resets the count."""

    def __init__(self, stream: BinaryIO, on_bytes: object) -> None:
        self._stream = stream
        self._start = stream.tell()
        self._on_bytes = on_bytes
        self.sent = 0

    def read(self, amount: int = -1) -> bytes:
        data = self._stream.read(amount)
        self.sent += len(data)
        if callable(self._on_bytes):
            self._on_bytes(self.sent)
        return data

    def rewind(self) -> None:
        self._stream.seek(self._start)
        self.sent = 0


class RegistryClient:
    """Talks to one registry (`domain` as references spell it) with the given credentials."""

    def __init__(
        self, domain: str, *, credentials: Credentials | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.domain = domain
        self.base = base_url(domain)
        self.timeout = timeout
        self._ssl = ssl.create_default_context()
        self._auth = Authorizer(credentials, get=self._get_token, trusted_http=is_insecure)

    # -- the protocol --------------------------------------------------------------------------
    def get_manifest(self, path: str, reference: str) -> FetchedManifest:
        """GET a manifest or index by tag or digest and verify its digest.

        Pulled by digest, the bytes must hash to it; a Docker-Content-Digest header must be a strict
        sha256 digest equal to the bytes' hash. Raise ImageNotFound on 404, RegistryError otherwise.
        """
        by_digest = reference.startswith("sha256:")
        if by_digest:
            parse_digest(reference)
        url = f"{self.base}/v2/{path}/manifests/{reference}"
        with self._send("GET", url, scope=_scope(path), headers={"Accept": MANIFEST_ACCEPT}) as resp:
            if resp.status == 404:
                raise ImageNotFound(
                    f"manifest unknown: {self.domain}/{path}{'@' if by_digest else ':'}{reference}"
                )
            self._expect(resp, {200}, f"manifest {path}:{reference}")
            data = resp.read_capped(MAX_MANIFEST_SIZE, "manifest")
            media_type = resp.header("Content-Type").split(";", 1)[0].strip().lower()
            claimed = resp.header("Docker-Content-Digest").strip()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if claimed and (not is_digest(claimed) or claimed != digest):
            raise RegistryError(
                f"manifest digest mismatch: registry said {shown(claimed)}, content is {digest}",
                permanent=True,
            )
        if by_digest and digest != reference:
            raise RegistryError(
                f"manifest digest mismatch: asked for {reference}, got {digest}", permanent=True
            )
        return FetchedManifest(data, media_type, digest)

    def open_blob(self, path: str, digest: str, *, size: int) -> BlobReader:
        """Start downloading a blob; the caller reads it as a stream and verifies the digest."""
        parse_digest(digest)
        resp = self._send("GET", f"{self.base}/v2/{path}/blobs/{digest}", scope=_scope(path))
        try:
            if resp.status == 404:
                raise RegistryError(f"blob unknown: {path}@{digest}", permanent=True)
            self._expect(resp, {200}, f"blob {digest}")
            length = resp.header("Content-Length")
            if length.isdigit() and int(length) != size:
                raise RegistryError(
                    f"blob {digest} is {length} bytes but its manifest says {size}", permanent=True
                )
        except BaseException:
            resp.close()
            raise
        return BlobReader(resp, digest, size)

    def get_blob(self, path: str, digest: str, *, size: int, cap: int) -> bytes:
        """Download a small blob (a config) whole, capped at `cap` bytes, and verify its digest."""
        if size > cap:
            raise RegistryError(
                f"blob {digest} is {size} bytes, larger than the {cap} byte limit", permanent=True
            )
        with self.open_blob(path, digest, size=size) as reader:
            data = b""
            while chunk := reader.read(1 << 16):
                data += chunk
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise RegistryError(f"blob {digest}: content does not match its digest", permanent=True)
        return data

    def blob_exists(self, path: str, digest: str) -> bool:
        """HEAD a blob: True when the registry has it in this repository."""
        parse_digest(digest)
        scope = _scope(path, push=True)
        with self._send("HEAD", f"{self.base}/v2/{path}/blobs/{digest}", scope=scope) as resp:
            if resp.status == 404:
                return False
            self._expect(resp, {200}, f"blob {digest}")
            return True

    def upload_blob(
        self, path: str, digest: str, size: int, stream: BinaryIO, *, on_bytes: object = None
    ) -> None:
        """Upload a blob monolithically (POST a session, PUT the bytes with ?digest=); retry whole uploads.

        `stream` must be seekable; `on_bytes(sent)` is called as bytes go out.
        """
        parse_digest(digest)
        body = _Rewindable(stream, on_bytes)
        scope = _scope(path, push=True)
        for attempt in range(RETRIES + 1):
            body.rewind()
            try:
                url = f"{self.base}/v2/{path}/blobs/uploads/"
                with self._send("POST", url, scope=scope, body=b"") as resp:
                    self._expect(resp, {202}, f"upload of {digest}")
                    location = check_redirect(resp.url, resp.header("Location"))
                    if urlsplit(location).scheme != urlsplit(self.base).scheme:
                        raise RegistryError("registry moved the upload to another scheme", permanent=True)
                sep = "&" if urlsplit(location).query else "?"
                headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
                with self._send("PUT", location + sep + urlencode({"digest": digest}), scope=scope, body=body,
                                headers=headers) as resp:  # fmt: skip
                    self._expect(resp, {201, 204}, f"upload of {digest}")
                return
            except RegistryError as exc:
                if exc.permanent or attempt == RETRIES:
                    raise
                time.sleep(RETRY_DELAY * (attempt + 1))

    def put_manifest(self, path: str, tag: str, data: bytes, media_type: str) -> str:
        """PUT a manifest under `tag`; return its digest (checked against what the registry says)."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        headers = {"Content-Type": media_type}
        url = f"{self.base}/v2/{path}/manifests/{tag}"
        with self._send("PUT", url, scope=_scope(path, push=True), body=data, headers=headers) as resp:
            self._expect(resp, {200, 201}, f"manifest {path}:{tag}")
            claimed = resp.header("Docker-Content-Digest").strip()
        if claimed and claimed != digest:
            raise RegistryError(f"registry stored the manifest as {shown(claimed)}, expected {digest}")
        return digest

    def check_login(self) -> None:
        """GET /v2/ with the credentials; raise RegistryAuthError when the registry refuses them."""
        with self._send("GET", f"{self.base}/v2/", scope="") as resp:
            if resp.status == 401:
                raise RegistryAuthError(f"login to {self.domain} failed: unauthorized")
            self._expect(resp, {200}, "registry ping")

    # -- transport -----------------------------------------------------------------------------
    def _send(
        self,
        method: str,
        url: str,
        *,
        scope: str,
        headers: dict[str, str] | None = None,
        body: bytes | _Rewindable | None = None,
    ) -> Response:
        """One logical request: answers one 401 challenge, retries transient failures of replayable ones."""
        answered = False
        attempt = 0
        while True:
            sent = self._auth.cached(scope)
            try:
                resp = self._follow(method, url, dict(headers or {}), body, sent, self.base)
            except RegistryError as exc:
                if exc.permanent or attempt >= RETRIES or isinstance(body, _Rewindable):
                    raise
                attempt += 1
                time.sleep(RETRY_DELAY * attempt)
                continue
            # Only the registry's own challenges are answered: a redirect target (blob storage) that
            # asks for credentials must not get them, nor pick a token realm they would be sent to.
            if resp.status == 401 and not answered and origin(resp.url) == origin(self.base):
                challenge = resp.header("WWW-Authenticate")
                resp.close()
                if sent is not None:
                    self._auth.forget(scope)  # an expired or too narrow token: ask for a new one
                if self._auth.credentials is None and "bearer" not in challenge.lower():
                    raise self._auth_required()
                self._auth.answer(challenge, scope)
                answered = True
                if isinstance(body, _Rewindable):
                    body.rewind()
                continue
            if resp.status in _TRANSIENT and attempt < RETRIES and not isinstance(body, _Rewindable):
                resp.close()
                attempt += 1
                time.sleep(RETRY_DELAY * attempt)
                continue
            return resp

    def _follow(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | _Rewindable | None,
        authorization: str | None,
        auth_origin: str,
    ) -> Response:
        """Send, following redirects of GET/HEAD; Authorization only while on `auth_origin`."""
        for _hop in range(MAX_REDIRECTS + 1):
            sent = dict(headers)
            if authorization and origin(url) == origin(auth_origin):
                sent["Authorization"] = authorization
            else:
                sent.pop("Authorization", None)
            resp = self._once(method, url, sent, body)
            if resp.status not in _REDIRECTS or method not in ("GET", "HEAD"):
                return resp
            location = resp.header("Location")
            resp.close()
            url = check_redirect(url, location)
        raise RegistryError(f"too many redirects (more than {MAX_REDIRECTS})", permanent=True)

    def _once(
        self, method: str, url: str, headers: dict[str, str], body: bytes | _Rewindable | None
    ) -> Response:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RegistryError(f"refusing to fetch {shown(url)} (only http(s) URLs)", permanent=True)
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(parts.netloc, timeout=self.timeout, context=self._ssl)
        else:
            conn = http.client.HTTPConnection(parts.netloc, timeout=self.timeout)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers.setdefault("User-Agent", USER_AGENT)
        if body is not None and "Content-Length" not in headers and isinstance(body, bytes):
            headers["Content-Length"] = str(len(body))
        try:
            conn.request(method, target, body=body, headers=headers)
            raw = conn.getresponse()
        except ssl.SSLCertVerificationError as exc:
            conn.close()
            raise RegistryError(f"TLS certificate of {parts.hostname} is not trusted: {exc.verify_message}",
                                permanent=True) from exc  # fmt: skip
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise RegistryError(f"cannot reach {parts.netloc}: {_reason(exc)}", permanent=False) from exc
        return Response(raw, conn, url)

    def _get_token(self, url: str, headers: dict[str, str]) -> tuple[int, bytes]:
        """The authorizer's way to the token endpoint: same redirect, timeout and retry rules."""
        for attempt in range(RETRIES + 1):
            try:
                with self._follow("GET", url, {}, None, headers.get("Authorization"), url) as resp:
                    if resp.status in _TRANSIENT and attempt < RETRIES:
                        continue
                    return resp.status, resp.read_capped(1 << 20, "token response")
            except RegistryError as exc:
                if exc.permanent or attempt >= RETRIES:
                    raise
            time.sleep(RETRY_DELAY * (attempt + 1))
        raise RegistryError("token endpoint kept failing", permanent=False)

    # -- errors --------------------------------------------------------------------------------
    def _auth_required(self, detail: str = "") -> RegistryAuthError:
        suffix = f" ({detail})" if detail else ""
        return RegistryAuthError(f"authentication required: run berth login {self.domain}{suffix}")

    def _expect(self, resp: Response, ok: set[int], what: str) -> None:
        if resp.status in ok:
            return
        try:
            body = resp.read_capped(MAX_ERROR_BODY, "error response") if resp.raw.length != 0 else b""
        except RegistryError:
            body = b""
        detail = describe_errors(body)
        if resp.status == 401:
            raise self._auth_required(detail)
        if resp.status == 403:
            raise RegistryAuthError(
                f"access to {what} denied by {self.domain}" + (f": {detail}" if detail else "")
            )
        message = f"{what}: registry {self.domain} answered HTTP {resp.status}" + (
            f": {detail}" if detail else ""
        )
        raise RegistryError(message, permanent=resp.status not in _TRANSIENT)


def describe_errors(body: bytes) -> str:
    """The registry's error text (`{"errors": [{"code", "message"}]}`), made safe to print."""
    try:
        jsonlimits.check_depth(body, "registry error")
        doc = json.loads(body)
        items = doc["errors"] if isinstance(doc, dict) else None
    except (ValueError, KeyError, UnicodeDecodeError, InvalidArgument):
        items = None
    if not isinstance(items, list):
        first = body.decode("utf-8", "replace").strip().splitlines()[:1]
        return shown(first[0]) if first and not first[0].lstrip().startswith("<") else ""
    parts = []
    for item in items[:3]:
        if isinstance(item, dict):
            code, message = item.get("code"), item.get("message")
            text = ": ".join(str(x) for x in (code, message) if isinstance(x, str) and x)
            if text:
                parts.append(shown(text.lower() if text.isupper() else text))
    return shown("; ".join(parts), 300)


def _scope(path: str, *, push: bool = False) -> str:
    return f"repository:{path}:{'pull,push' if push else 'pull'}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return shown(getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)


def _guarded(raw: http.client.HTTPResponse, amount: int, what: str) -> bytes:
    """Read up to `amount` body bytes, turning network failures into a transient RegistryError."""
    try:
        return raw.read(amount)
    except (OSError, http.client.HTTPException) as exc:
        raise RegistryError(f"download of {what} failed: {_reason(exc)}", permanent=False) from exc
