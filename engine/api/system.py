"""Docker API: system endpoints (_ping, version, info, system/df). Events live in api/events.py."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from typing import Any

from engine.api.containerformat import parse_go_duration
from engine.api.http import Request, Response
from engine.api.router import API_VERSION, MIN_API_VERSION, route
from engine.errors import InvalidArgument
from engine.models import Image
from engine.services import images, system

BERTH_VERSION = system.VERSION


def parse_timestamp(value: str, *, now: float | None = None) -> float:
    """A time as Docker's daemon takes it: Unix seconds (with fraction), RFC 3339, or a Go duration
    such as "10m" or "1h30m" counted back from now. Raises InvalidArgument otherwise."""
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    seconds = parse_go_duration(text)
    if seconds is not None:
        return (now if now is not None else datetime.now(UTC).timestamp()) - seconds
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(
            f"invalid time {value!r}: use Unix seconds, RFC 3339 or a duration such as 10m"
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


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


def _arch(machine: str) -> str:
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _version_number(line: str) -> str:
    """ "runc version 1.1.12" → "1.1.12" (the first line of `--version`)."""
    _, found, rest = line.partition("version ")
    return rest.strip() if found else line.strip()


@route("GET", "/version")
def version(request: Request) -> Response:
    uname = os.uname()
    arch = _arch(uname.machine)
    host = system.info()
    engine = {
        "Name": "Engine",
        "Version": BERTH_VERSION,
        "Details": {
            "ApiVersion": API_VERSION,
            "Arch": arch,
            "BuildTime": "",
            "Experimental": "false",
            "GitCommit": "",
            "GoVersion": f"python{platform.python_version()}",
            "KernelVersion": uname.release,
            "MinAPIVersion": MIN_API_VERSION,
            "Os": "linux",
        },
    }
    components = [engine]
    for name, key in (("runc", "runtime"), ("conmon", "conmon")):
        part = host[key]
        if part.get("found"):
            components.append(
                {
                    "Name": name,
                    "Version": _version_number(part["version"]),
                    "Details": {"Path": part["binary"]},
                }
            )
    return Response(
        body={
            "Platform": {"Name": "Berth"},
            "Components": components,
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


@route("GET", "/info")
def info(request: Request) -> Response:
    facts = system.summary()
    counts = facts["counts"]
    runtime = facts["runtime"]
    now = datetime.now(UTC)
    return Response(
        body={
            "ID": facts["id"],
            "Containers": counts["containers"],
            "ContainersRunning": counts["running"],
            "ContainersPaused": counts["paused"],
            "ContainersStopped": counts["stopped"],
            "Images": counts["images"],
            "Driver": "overlay2",
            "DriverStatus": [["Backing Filesystem", facts["backing_fs"]], ["Supports d_type", "true"]],
            "Plugins": {
                "Volume": ["local"],
                "Network": ["bridge", "host", "null"],
                "Authorization": None,
                "Log": ["json-file"],
            },
            "MemoryLimit": True,
            "SwapLimit": True,
            "CpuCfsPeriod": True,
            "CpuCfsQuota": True,
            "CPUShares": True,
            "CPUSet": True,
            "PidsLimit": True,
            "OomKillDisable": False,
            "IPv4Forwarding": True,
            "Debug": False,
            "NFd": _open_fds(),
            "NGoroutines": 0,
            "SystemTime": now.isoformat().replace("+00:00", "Z"),
            "LoggingDriver": "json-file",
            "CgroupDriver": facts["cgroup_driver"],
            "CgroupVersion": "2" if facts["cgroup_mode"] == "v2" else "1",
            "NEventsListener": 0,
            "KernelVersion": facts["kernel"],
            "OperatingSystem": facts["os"],
            "OSVersion": "",
            "OSType": "linux",
            "Architecture": facts["arch"],
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {
                "AllowNondistributableArtifactsCIDRs": None,
                "AllowNondistributableArtifactsHostnames": None,
                "InsecureRegistryCIDRs": ["127.0.0.0/8"],
                "IndexConfigs": {
                    "docker.io": {"Name": "docker.io", "Mirrors": [], "Secure": True, "Official": True}
                },
                "Mirrors": None,
            },
            "NCPU": facts["cpus"],
            "MemTotal": facts["memory"],
            "GenericResources": None,
            "DockerRootDir": facts["root"],
            "HttpProxy": os.environ.get("HTTP_PROXY", ""),
            "HttpsProxy": os.environ.get("HTTPS_PROXY", ""),
            "NoProxy": os.environ.get("NO_PROXY", ""),
            "Name": facts["name"],
            "Labels": [],
            "ExperimentalBuild": False,
            "ServerVersion": BERTH_VERSION,
            # Containers keep running while the server is down (conmon supervises them).
            "LiveRestoreEnabled": True,
            "Runtimes": {"runc": {"path": runtime["binary"]}},
            "DefaultRuntime": "runc",
            "Swarm": {
                "NodeID": "",
                "NodeAddr": "",
                "LocalNodeState": "inactive",
                "ControlAvailable": False,
                "Error": "",
                "RemoteManagers": None,
            },
            "Isolation": "",
            "InitBinary": "",
            "ContainerdCommit": {"ID": ""},
            "RuncCommit": {"ID": _version_number(runtime["version"]) if runtime.get("found") else ""},
            "InitCommit": {"ID": ""},
            "SecurityOptions": [_security_option(name) for name in facts["security"]],
            "CDISpecDirs": [],
            "Warnings": facts["warnings"],
        }
    )


def _security_option(name: str) -> str:
    return "name=seccomp,profile=builtin" if name == "seccomp" else f"name={name}"


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


# -- system df -----------------------------------------------------------------------------------


@route("GET", "/system/df")
def disk_usage(request: Request) -> Response:
    kinds = set(request.query.get("type", [])) or {"container", "image", "volume", "build-cache"}
    unknown = kinds - {"container", "image", "volume", "build-cache"}
    if unknown:
        raise InvalidArgument(
            f"invalid type {sorted(unknown)[0]!r} (use container, image, volume or build-cache)"
        )
    detail = system.disk_usage_detail()
    body: dict[str, Any] = {"LayersSize": detail["layers_size"], "BuildCache": []}
    if "image" in kinds:
        body["Images"] = [_image_summary(row) for row in detail["images"]]
    if "container" in kinds:
        from engine.api.containerlist import list_entry

        body["Containers"] = [
            {**list_entry(row["container"]), "SizeRw": row["size_rw"], "SizeRootFs": row["size_root"]}
            for row in detail["containers"]
        ]
    if "volume" in kinds:
        from engine.api.volumes import volume_shape

        body["Volumes"] = [
            volume_shape(row["volume"], usage=(row["size"], row["ref_count"])) for row in detail["volumes"]
        ]
    return Response(body=body)


def _image_summary(row: dict[str, Any]) -> dict[str, Any]:
    image: Image = row["image"]
    config = image.config.get("config") or {}
    return {
        "Id": image.id,
        "ParentId": image.parent_id or "",
        "RepoTags": images.familiar_tags(image),
        "RepoDigests": images.familiar_digests(image),
        "Created": int(image.created.timestamp()) if image.created else 0,
        "Size": row["size"],
        "SharedSize": row["shared"],
        "VirtualSize": row["size"],
        "Labels": config.get("Labels") or {},
        "Containers": row["containers"],
    }
