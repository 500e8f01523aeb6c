"""Webhook delivery: one signed JSON POST to an http(s) URL, with a short timeout.

It decides nothing about retries or what to send (services/notify.py does); it signs, posts, and
turns every failure into `RuntimeFailure` with a one-line reason. Only http and https are spoken, and
a redirect is followed only when it keeps the POST (307/308) and stays on http(s).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ssl
import time
from urllib.parse import urljoin, urlsplit

from engine.errors import RuntimeFailure

TIMEOUT = 5.0
MAX_REDIRECTS = 3
SCHEMES = ("http", "https")
USER_AGENT = "Berth-Alerts/1"


def signature(secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of the raw body>` with the shared secret: the X-Berth-Signature value."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """True if `header` is the signature of `body` under `secret` (what a receiver checks)."""
    return hmac.compare_digest(signature(secret, body), header or "")


def headers(body: bytes, *, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """The request headers: JSON, the timestamp, and the signature when there is a secret."""
    result = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Berth-Timestamp": str(int(time.time()) if timestamp is None else timestamp),
    }
    if secret:
        result["X-Berth-Signature"] = signature(secret, body)
    return result


def check_url(url: str) -> str | None:
    """Why `url` cannot be a webhook target, or None if it can (http/https with a host)."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in SCHEMES:
        return f"webhook URL must start with http:// or https://, not {parts.scheme or 'nothing'}:"
    if not parts.hostname:
        return "webhook URL has no host"
    try:
        parts.port  # noqa: B018 — raises ValueError on a bad port
    except ValueError:
        return "webhook URL has a bad port"
    return None


def post(url: str, body: bytes, *, secret: str, timeout: float = TIMEOUT) -> int:
    """POST `body` to `url`; return the 2xx status. Raises RuntimeFailure with the reason otherwise."""
    sent_headers = headers(body, secret=secret)
    for _ in range(MAX_REDIRECTS + 1):
        problem = check_url(url)
        if problem:
            raise RuntimeFailure(problem)
        status, reason, location, snippet = _post_once(url, body, sent_headers, timeout)
        if 200 <= status < 300:
            return status
        if status in (307, 308) and location:
            url = urljoin(url, location)
            continue
        if 300 <= status < 400:
            raise RuntimeFailure(f"HTTP {status} redirect to {location or '?'} (set the final URL)")
        raise RuntimeFailure(f"HTTP {status} {reason}{': ' + snippet if snippet else ''}")
    raise RuntimeFailure(f"more than {MAX_REDIRECTS} redirects")


def _post_once(
    url: str, body: bytes, sent_headers: dict[str, str], timeout: float
) -> tuple[int, str, str, str]:
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn: http.client.HTTPConnection
    if parts.scheme.lower() == "https":
        conn = http.client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers=sent_headers)
        response = conn.getresponse()
        snippet = response.read(512).decode("utf-8", "replace").strip().replace("\n", " ")[:200]
        return response.status, response.reason, response.getheader("Location") or "", snippet
    except (OSError, http.client.HTTPException) as exc:
        raise RuntimeFailure(f"cannot reach {parts.hostname}: {exc or type(exc).__name__}") from exc
    finally:
        conn.close()
