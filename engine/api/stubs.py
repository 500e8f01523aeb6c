"""Docker API: what Berth does not do (swarm, plugins, sessions) answers as Podman's layer does.

Clients probe these and carry on when the answer is an error in Docker's shape; swarm calls get
503 "not a swarm manager", which is what the docker CLI expects from a daemon outside a swarm.
"""

from __future__ import annotations

from engine.api.http import ApiError, Request, Response
from engine.api.router import route

SWARM_MESSAGE = "This node is not a swarm manager. Berth does not support swarm mode."


def _not_swarm(request: Request) -> Response:
    raise ApiError(503, SWARM_MESSAGE)


for _method, _template in [
    ("GET", "/swarm"),
    ("POST", "/swarm/init"),
    ("POST", "/swarm/join"),
    ("POST", "/swarm/leave"),
    ("POST", "/swarm/update"),
    ("GET", "/swarm/unlockkey"),
    ("POST", "/swarm/unlock"),
    ("GET", "/nodes"),
    ("GET", "/nodes/{id}"),
    ("GET", "/services"),
    ("POST", "/services/create"),
    ("GET", "/services/{id}"),
    ("GET", "/tasks"),
    ("GET", "/secrets"),
    ("GET", "/configs"),
]:
    route(_method, _template)(_not_swarm)


@route("GET", "/plugins")
def list_plugins(request: Request) -> Response:
    return Response(body=[])


@route("POST", "/session")
def session(request: Request) -> Response:
    raise ApiError(501, "BuildKit sessions are not supported: build with DOCKER_BUILDKIT=0")


@route("GET", "/distribution/{name:path}/json")
def distribution(request: Request) -> Response:
    raise ApiError(501, "the distribution endpoint is not supported by Berth")
