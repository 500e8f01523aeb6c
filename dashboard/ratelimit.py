"""Login rate limiting with lockout, kept in Django's cache (no extra dependency).

Failures are counted per (username, client IP) and, more loosely, per client IP alone, so one address
cannot cycle through usernames either. When a counter reaches its limit within the window, that key
is locked for the lockout period and the login view refuses without checking the password. A
successful login clears the (username, IP) counter.

The default cache (LocMemCache) is per process, which is right for Berth's single daphne process; with
several processes, point CACHES at a shared backend. The client IP is REMOTE_ADDR: Berth is not meant
to sit behind a proxy, and trusting X-Forwarded-For would let anyone choose their own counter.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

_PREFIX = "berth:login"


@dataclass(frozen=True)
class Limit:
    """At most `max_failures` failed logins per key within `window` seconds, else `lockout` seconds."""

    scope: str
    max_failures: int
    window: int
    lockout: int


def limits() -> tuple[Limit, ...]:
    """Return the limits in force, read from settings at call time so tests can override them."""
    window = int(getattr(settings, "BERTH_LOGIN_WINDOW", 15 * 60))
    lockout = int(getattr(settings, "BERTH_LOGIN_LOCKOUT", 15 * 60))
    per_user = int(getattr(settings, "BERTH_LOGIN_MAX_FAILURES", 10))
    per_ip = int(getattr(settings, "BERTH_LOGIN_MAX_FAILURES_PER_IP", 50))
    return (Limit("user-ip", per_user, window, lockout), Limit("ip", per_ip, window, lockout))


def client_ip(request: HttpRequest) -> str:
    return str(request.META.get("REMOTE_ADDR") or "unknown")


def locked_for(request: HttpRequest, username: str) -> int:
    """Return how many seconds logins for (username, this client) stay refused; 0 when not locked."""
    now = time.time()
    remaining = 0.0
    for limit in limits():
        until = cache.get(_key("lock", limit, request, username))
        if until is not None:
            remaining = max(remaining, float(until) - now)
    return math.ceil(remaining) if remaining > 0 else 0


def record_failure(request: HttpRequest, username: str) -> int:
    """Count one failed login; return the lockout in seconds if this failure started one, else 0."""
    locked = 0
    for limit in limits():
        key = _key("fail", limit, request, username)
        # add() starts the window on the first failure; incr() keeps that expiry (fixed window).
        cache.add(key, 0, timeout=limit.window)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add() and incr()
            cache.set(key, 1, timeout=limit.window)
            count = 1
        if count >= limit.max_failures:
            cache.set(
                _key("lock", limit, request, username), time.time() + limit.lockout, timeout=limit.lockout
            )
            cache.delete(key)
            locked = max(locked, limit.lockout)
    return locked


def record_success(request: HttpRequest, username: str) -> None:
    """Forget the failures of (username, this client) after a successful login."""
    for limit in limits():
        if limit.scope == "user-ip":
            cache.delete(_key("fail", limit, request, username))


def reset(request: HttpRequest, username: str) -> None:
    """Clear every counter and lock for (username, this client). For admins and tests."""
    for limit in limits():
        cache.delete_many([_key(kind, limit, request, username) for kind in ("fail", "lock")])


def lockout_message(seconds: int) -> str:
    """Say, in words, that logins are refused and for how long."""
    minutes = max(1, math.ceil(seconds / 60))
    unit = "minute" if minutes == 1 else "minutes"
    return f"Too many failed log-ins. Log-in is locked for {minutes} {unit}; try again later."


def _key(kind: str, limit: Limit, request: HttpRequest, username: str) -> str:
    # Hashed: usernames are user input and cache keys must be short and free of control characters.
    subject = client_ip(request)
    if limit.scope == "user-ip":
        subject = f"{username.strip().lower()}\0{subject}"
    digest = hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{_PREFIX}:{kind}:{limit.scope}:{digest}"
