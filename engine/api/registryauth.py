"""Docker API: registry credentials — `POST /auth` (docker login, stored by the engine) and the
X-Registry-Auth header that a pull or push may carry instead.
"""

from __future__ import annotations

import base64
import binascii
import json

from engine.api.http import Request, Response
from engine.api.router import route
from engine.errors import InvalidArgument
from engine.services import registry
from engine.services.registry import Credentials


def registry_credentials(request: Request) -> Credentials | None:
    """The user name and password of the X-Registry-Auth header (base64url JSON), if it has both.

    Without them the registry client uses what `/auth` (docker login) stored. An undecodable header
    is ignored, as moby does.
    """
    raw = request.headers.get("x-registry-auth", "").strip()
    if not raw:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    username, password = data.get("username"), data.get("password")
    if isinstance(username, str) and isinstance(password, str) and username and password:
        return Credentials(username, password)
    return None


@route("POST", "/auth")
def auth(request: Request) -> Response:
    body = request.json_object()
    username = body.get("username") or body.get("Username") or ""
    password = body.get("password") or body.get("Password") or ""
    server = body.get("serveraddress") or body.get("ServerAddress") or "docker.io"
    if not all(isinstance(v, str) for v in (username, password, server)):
        raise InvalidArgument("username, password and serveraddress must be strings")
    if body.get("identitytoken") and not password:
        raise InvalidArgument("identity tokens are not supported: log in with a user name and password")
    registry.login(server, username, password)
    return Response(body={"Status": "Login Succeeded", "IdentityToken": ""})
