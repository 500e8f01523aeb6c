"""Registry authentication: WWW-Authenticate challenges, Bearer tokens, Basic, and the credential file.

Mechanism only: no django. The credential file (`auths` in Docker's config.json shape) is written
atomically with mode 0600 by `login` and read by pull and push. A password never appears in a log line,
an exception message or a repr. Everything a server sends here (challenges, token responses) is hostile
input: realms must be http(s) URLs, and a plain-http realm is refused unless its host is trusted.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from engine.errors import InvalidArgument, RegistryAuthError, RegistryError
from engine.image import jsonlimits

logger = logging.getLogger(__name__)

MAX_TOKEN_RESPONSE = 1 << 20
DEFAULT_TOKEN_LIFETIME = 60
# Docker Hub's names for its registry; credentials for all of them are kept under `docker.io`.
DOCKER_HUB_ALIASES = frozenset(
    {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
)
# A token becomes an HTTP header: visible ASCII only, so a hostile server cannot inject header lines.
_TOKEN_RE = re.compile(r"[\x21-\x7e]{1,8192}")
_PARAM_RE = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*(?:,|$)')
_SCHEME_RE = re.compile(r"\s*([A-Za-z][A-Za-z0-9_-]*)(?:\s+|$)")

# (url, headers) → (status, body bytes); supplied by the client so all traffic shares its rules.
Getter = Callable[[str, dict[str, str]], tuple[int, bytes]]


@dataclass(frozen=True)
class Credentials:
    """A user name and password; the password is left out of repr so it never reaches a log."""

    username: str
    password: str = field(repr=False)

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class Challenge:
    """One challenge of a WWW-Authenticate header: the scheme (lower case) and its parameters."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict, hash=False)


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a WWW-Authenticate value such as `Bearer realm="…",service="…"` into challenges.

    Unparseable text ends the parse; what was understood so far is returned (possibly nothing).
    """
    challenges: list[Challenge] = []
    pos = 0
    text = header or ""
    while pos < len(text):
        scheme_match = _SCHEME_RE.match(text, pos)
        if scheme_match is None:
            break
        pos = scheme_match.end()
        params: dict[str, str] = {}
        while pos < len(text):
            param = _PARAM_RE.match(text, pos)
            if param is None:
                break
            quoted, bare = param.group(2), param.group(3)
            value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
            params[param.group(1).lower()] = value
            pos = param.end()
        challenges.append(Challenge(scheme_match.group(1).lower(), params))
        if pos < len(text) and text[pos] == ",":
            pos += 1
    return challenges


def normalise_server(server: str) -> str:
    """The key credentials are stored under: `host[:port]` as it appears in image references.

    `https://index.docker.io/v1/`, `registry-1.docker.io` and `docker.io` are all `docker.io`.
    Raise InvalidArgument for an empty value or one with user info, a query or a fragment.
    """
    value = (server or "").strip()
    if "://" in value:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https"):
            raise InvalidArgument(f"invalid registry address {server!r}: only http(s) URLs")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise InvalidArgument(f"invalid registry address {server!r}")
        value = parts.netloc
    else:
        value = value.split("/", 1)[0]
    value = value.lower()
    if not value or any(c.isspace() or c in "@/\\?#" for c in value):
        raise InvalidArgument(f"invalid registry address {server!r}", hint="give a host such as ghcr.io")
    if value in DOCKER_HUB_ALIASES:
        return "docker.io"
    return value


class CredentialStore:
    """The credential file: `{"auths": {"host[:port]": {"auth": base64(user:password)}}}`, mode 0600."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _load(self) -> dict[str, dict[str, str]]:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise RegistryError(f"cannot read {self.path}: {exc.strerror}", permanent=True) from exc
        with os.fdopen(fd, "rb") as handle:
            if os.fstat(handle.fileno()).st_mode & 0o077:
                # Someone widened it by hand: narrow it again rather than keep secrets world-readable.
                logger.warning("%s was readable by other users; resetting its mode to 0600", self.path)
                os.fchmod(handle.fileno(), 0o600)
            data = handle.read(MAX_TOKEN_RESPONSE + 1)
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise RegistryError(f"{self.path} is not valid JSON", permanent=True) from exc
        auths = doc.get("auths") if isinstance(doc, dict) else None
        if not isinstance(auths, dict):
            return {}
        return {k: v for k, v in auths.items() if isinstance(k, str) and isinstance(v, dict)}

    def get(self, server: str) -> Credentials | None:
        """Return the stored credentials for `server`, or None when there are none (or they are garbled)."""
        entry = self._load().get(normalise_server(server))
        if not entry or not isinstance(entry.get("auth"), str):
            return None
        try:
            raw = base64.b64decode(entry["auth"], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            logger.warning("ignoring garbled credentials for %s in %s", server, self.path)
            return None
        user, sep, password = raw.partition(":")
        return Credentials(user, password) if sep and user else None

    def servers(self) -> list[str]:
        """The server keys the file holds credentials for (unchecked: `get` may still find them garbled)."""
        return list(self._load())

    def put(self, server: str, credentials: Credentials) -> None:
        """Store credentials for `server`, replacing earlier ones (atomic write, mode 0600)."""
        auths = self._load()
        token = base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()
        auths[normalise_server(server)] = {"auth": token}
        self._write(auths)

    def remove(self, server: str) -> bool:
        """Forget `server`'s credentials; return False when there were none."""
        auths = self._load()
        if auths.pop(normalise_server(server), None) is None:
            return False
        self._write(auths)
        return True

    def _write(self, auths: dict[str, dict[str, str]]) -> None:
        data = json.dumps({"auths": auths}, indent=2, sort_keys=True).encode()
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".auth-", dir=self.path.parent)  # mkstemp makes it 0600
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise RegistryError(f"cannot write {self.path}: {exc.strerror}", permanent=True) from exc


def check_realm(realm: str, *, trusted_http: Callable[[str], bool]) -> str:
    """Return `realm` if it is an acceptable token endpoint; raise RegistryAuthError otherwise.

    Only http(s) URLs with a host; plain http only when `trusted_http(host)` says the host may be
    reached without TLS (credentials travel to the realm).
    """
    parts = urlsplit(realm or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RegistryAuthError(f"registry sent an unusable token realm {shown(realm)!r} (only http(s) URLs)")
    if parts.username or parts.password:
        raise RegistryAuthError("registry sent a token realm with user info in it")
    if parts.scheme == "http" and not trusted_http(parts.netloc):
        raise RegistryAuthError(
            f"registry sent a plain-http token realm on {parts.hostname}; refusing to send credentials",
            hint="add the host to BERTH_INSECURE_REGISTRIES if this is intended",
        )
    return realm


class Authorizer:
    """Answers 401 challenges for one registry: Basic from stored credentials, or a Bearer token per scope.

    Tokens are cached per (realm, service, scope) until shortly before they expire.
    """

    def __init__(
        self, credentials: Credentials | None, *, get: Getter, trusted_http: Callable[[str], bool]
    ) -> None:
        self.credentials = credentials
        self._get = get
        self._trusted_http = trusted_http
        self._tokens: dict[tuple[str, str, str], tuple[str, float]] = {}
        self._last: dict[str, str] = {}

    def cached(self, scope: str) -> str | None:
        """The Authorization value to send before any challenge, once one has been answered."""
        return self._last.get(scope) or self._last.get("*")

    def forget(self, scope: str) -> None:
        """Drop what was sent for `scope`: the server refused it, so a fresh token is needed."""
        sent = self._last.pop(scope, None)
        self._tokens = {k: v for k, v in self._tokens.items() if "Bearer " + v[0] != sent}

    def answer(self, header: str, scope: str) -> str:
        """Return an Authorization value for the WWW-Authenticate `header`; raise RegistryAuthError."""
        challenges = parse_challenges(header)
        for challenge in challenges:
            if challenge.scheme == "bearer":
                value = "Bearer " + self._token(challenge, scope)
                self._last[scope] = value
                return value
        for challenge in challenges:
            if challenge.scheme == "basic" and self.credentials is not None:
                value = self.credentials.basic_header()
                self._last["*"] = value
                return value
        raise RegistryAuthError("authentication required", hint="run berth login for this registry")

    def _token(self, challenge: Challenge, scope: str) -> str:
        realm = check_realm(challenge.params.get("realm", ""), trusted_http=self._trusted_http)
        service = challenge.params.get("service", "")
        # The server's own scope wins: it names exactly what the request needed.
        wanted = challenge.params.get("scope") or scope
        key = (realm, service, wanted)
        hit = self._tokens.get(key)
        if hit and hit[1] > time.monotonic():
            return hit[0]
        query = [(k, v) for k, v in (("service", service), *(("scope", s) for s in wanted.split(" "))) if v]
        url = realm + ("&" if urlsplit(realm).query else "?") + urlencode(query)
        headers = {"Authorization": self.credentials.basic_header()} if self.credentials else {}
        status, body = self._get(url, headers)
        if status in (401, 403):
            raise RegistryAuthError(
                f"authentication failed at {urlsplit(realm).hostname}: unauthorized",
                hint="check the user name and password (berth login)",
            )
        if status != 200:
            raise RegistryAuthError(f"token endpoint {urlsplit(realm).hostname} answered HTTP {status}")
        token, lifetime = parse_token_response(body)
        self._tokens[key] = (token, time.monotonic() + max(lifetime - 10, 5))
        return token


def parse_token_response(body: bytes) -> tuple[str, int]:
    """Return (token, lifetime seconds) from a token endpoint's JSON; raise RegistryAuthError if unusable."""
    if len(body) > MAX_TOKEN_RESPONSE:
        raise RegistryAuthError("token response is too large")
    try:
        jsonlimits.check_depth(body, "token response")
        doc = json.loads(body)
    except (ValueError, InvalidArgument):
        raise RegistryAuthError("token endpoint returned invalid JSON") from None
    if not isinstance(doc, dict):
        raise RegistryAuthError("token endpoint returned invalid JSON")
    token = doc.get("token") or doc.get("access_token")
    if not isinstance(token, str) or not _TOKEN_RE.fullmatch(token):
        raise RegistryAuthError("token endpoint returned no usable token")
    lifetime = doc.get("expires_in")
    if not isinstance(lifetime, int) or isinstance(lifetime, bool) or lifetime <= 0:
        lifetime = DEFAULT_TOKEN_LIFETIME
    return token, lifetime


def shown(text: str, limit: int = 120) -> str:
    """Server-sent text made safe for a terminal or a log: printable characters only, and short."""
    return "".join(c if c.isprintable() else "?" for c in (text or ""))[:limit]
