"""Routes of the Docker API: method + path pattern → handler.

Patterns name their parameters in braces: `{id}` matches one path segment, `{name:path}` matches
the rest of the path including slashes (image names such as `localhost:5000/team/app:1`). The
`/vX.Y` prefix is taken off before matching and gives the request's API version.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from engine.api.http import ApiError, Request, Response

Handler = Callable[[Request], object]

MIN_VERSION = (1, 24)
MAX_VERSION = (1, 44)
API_VERSION = "1.44"
MIN_API_VERSION = "1.24"

_VERSION_PREFIX = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")
_PARAM = re.compile(r"\{(\w+)(?::path)?\}")


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


_routes: list[Route] = []


def _compile(template: str) -> re.Pattern[str]:
    parts: list[str] = []
    position = 0
    for match in _PARAM.finditer(template):
        parts.append(re.escape(template[position : match.start()]))
        greedy = match.group(0).endswith(":path}")
        parts.append(f"(?P<{match.group(1)}>{'.+' if greedy else '[^/]+'})")
        position = match.end()
    parts.append(re.escape(template[position:]))
    return re.compile("^" + "".join(parts) + "$")


def route(method: str, template: str) -> Callable[[Handler], Handler]:
    """Register the decorated function for `method` on `template` (first registration wins)."""

    def register(handler: Handler) -> Handler:
        _routes.append(Route(method.upper(), _compile(template), handler))
        return handler

    return register


def split_version(path: str) -> tuple[tuple[int, int], str]:
    """('/v1.41/containers/json') → ((1, 41), '/containers/json'); no prefix means the newest."""
    match = _VERSION_PREFIX.match(path)
    if not match:
        return MAX_VERSION, path
    version = (int(match.group(1)), int(match.group(2)))
    if version < MIN_VERSION:
        raise ApiError(
            400,
            f"client version {version[0]}.{version[1]} is too old. "
            f"Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version",
        )
    if version > MAX_VERSION:
        raise ApiError(
            400,
            f"client version {version[0]}.{version[1]} is too new. Maximum supported API version is {API_VERSION}",
        )
    return version, match.group(3)


def resolve(method: str, path: str) -> tuple[Handler, dict[str, str]]:
    """The handler and path parameters for a request; 404 or 405 in Docker's shape otherwise."""
    path_known = False
    fallback: tuple[Handler, dict[str, str]] | None = None
    for candidate in _routes:
        match = candidate.pattern.match(path)
        if not match:
            continue
        path_known = True
        if candidate.method == method:
            return candidate.handler, match.groupdict()
        if method == "HEAD" and candidate.method == "GET" and fallback is None:
            fallback = candidate.handler, match.groupdict()
    if fallback is not None:
        return fallback
    if path_known:
        raise ApiError(405, f"method {method} is not allowed on {path}")
    raise ApiError(404, f"page not found: {method} {path}")


def ensure_loaded() -> None:
    """Import every handler module so that their routes are registered."""
    from engine.api import (  # noqa: F401
        archive,
        attach,
        build,
        containerlist,
        containers,
        containerstreams,
        events,
        execs,
        images,
        networks,
        registryauth,
        stubs,
        system,
        volumes,
    )


__all__ = ["Request", "Response", "route", "resolve", "split_version", "ensure_loaded"]
