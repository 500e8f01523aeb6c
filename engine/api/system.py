"""Docker API: system endpoints (_ping, version, info, df, events, auth)."""

from __future__ import annotations

import os
import platform

from engine.api.http import Request, Response
from engine.api.router import API_VERSION, MIN_API_VERSION, route

BERTH_VERSION = "0.8.0"


def _ping_headers() -> list[tuple[str, str]]:
    return [
        ("Builder-Version", "1"),
        ("Cache-Control", "no-cache, no-store, must-revalidate"),
        ("Pragma", "no-cache"),
    ]


@route("GET", "/_ping")
def ping(request: Request) -> Response:
    return Response(body=b"OK", content_type="text/plain; charset=utf-8", headers=_ping_headers())


@route("HEAD", "/_ping")
def ping_head(request: Request) -> Response:
    return Response(body=b"OK", content_type="text/plain; charset=utf-8", headers=_ping_headers())


@route("GET", "/version")
def version(request: Request) -> Response:
    uname = os.uname()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(uname.machine, uname.machine)
    return Response(
        body={
            "Platform": {"Name": "Berth"},
            "Components": [
                {
                    "Name": "Engine",
                    "Version": BERTH_VERSION,
                    "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux"},
                }
            ],
            "Version": BERTH_VERSION,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "",
            "GoVersion": f"python{platform.python_version()}",
            "Os": "linux",
            "Arch": arch,
            "KernelVersion": uname.release,
            "BuildTime": "",
        }
    )
