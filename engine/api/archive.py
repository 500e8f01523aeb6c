"""Docker API: a container's files and limits — archive (HEAD/GET/PUT), export, update."""

from __future__ import annotations

import base64
import json
import stat
from typing import Any

from engine.api.http import Request, Response, Stream
from engine.api.router import route
from engine.errors import InvalidArgument
from engine.services import files, updates
from engine.services import options as opts

TAR_TYPE = "application/x-tar"
STAT_HEADER = "X-Docker-Container-Path-Stat"

# Go's os.FileMode bits, which the docker CLI decodes from the stat header.
_GO_DIR = 1 << 31
_GO_SYMLINK = 1 << 27
_GO_DEVICE = 1 << 26
_GO_PIPE = 1 << 25
_GO_SOCKET = 1 << 24
_GO_SETUID = 1 << 23
_GO_SETGID = 1 << 22
_GO_CHARDEV = 1 << 21
_GO_STICKY = 1 << 20


def go_file_mode(mode: int) -> int:
    """Translate a Unix st_mode into Go's os.FileMode (what Docker's stat header carries)."""
    result = stat.S_IMODE(mode) & 0o777
    if stat.S_ISDIR(mode):
        result |= _GO_DIR
    elif stat.S_ISLNK(mode):
        result |= _GO_SYMLINK
    elif stat.S_ISFIFO(mode):
        result |= _GO_PIPE
    elif stat.S_ISSOCK(mode):
        result |= _GO_SOCKET
    elif stat.S_ISCHR(mode):
        result |= _GO_DEVICE | _GO_CHARDEV
    elif stat.S_ISBLK(mode):
        result |= _GO_DEVICE
    if mode & stat.S_ISUID:
        result |= _GO_SETUID
    if mode & stat.S_ISGID:
        result |= _GO_SETGID
    if mode & stat.S_ISVTX:
        result |= _GO_STICKY
    return result


def stat_header(info: files.PathStat) -> tuple[str, str]:
    document = {
        "name": info.name,
        "size": info.size,
        "mode": go_file_mode(info.mode),
        "mtime": info.mtime.isoformat().replace("+00:00", "Z"),
        "linkTarget": info.link_target,
    }
    return STAT_HEADER, base64.b64encode(json.dumps(document).encode()).decode()


def _path(request: Request) -> str:
    path = request.arg("path")
    if not path:
        raise InvalidArgument("the path query parameter is required")
    return path


@route("HEAD", "/containers/{id}/archive")
def archive_head(request: Request) -> Response:
    info = files.stat(request.params["id"], _path(request))
    return Response(status=200, headers=[stat_header(info)])


@route("GET", "/containers/{id}/archive")
def archive_get(request: Request) -> Stream:
    info, stream = files.get_archive(request.params["id"], _path(request))
    return Stream(chunks=stream, content_type=TAR_TYPE, headers=[stat_header(info)], close=stream.close)


@route("PUT", "/containers/{id}/archive")
def archive_put(request: Request) -> Response:
    files.put_archive(
        request.params["id"],
        _path(request),
        request.body,  # type: ignore[arg-type]
        no_overwrite_dir_non_dir=request.flag("noOverwriteDirNonDir"),
        copy_uid_gid=request.flag("copyUIDGID"),
    )
    return Response(status=200)


@route("GET", "/containers/{id}/export")
def export(request: Request) -> Stream:
    stream = files.export(request.params["id"])
    return Stream(chunks=stream, content_type=TAR_TYPE, close=stream.close)


def _int_field(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{key} must be an integer")
    return value


def changes_from_body(body: dict[str, Any]) -> updates.Changes:
    """Docker's update body: 0 (or absent) leaves a limit alone; PidsLimit null leaves it, 0 lifts it."""

    def nonzero(key: str) -> int | None:
        value = _int_field(body, key)
        return value or None

    restart = None
    policy = body.get("RestartPolicy")
    if isinstance(policy, dict) and policy.get("Name"):
        name = str(policy["Name"])
        count = policy.get("MaximumRetryCount") or 0
        restart = opts.parse_restart(f"{name}:{count}" if name == "on-failure" and count else name)
    elif policy is not None and not isinstance(policy, dict):
        raise InvalidArgument("RestartPolicy must be an object")
    return updates.Changes(
        memory=nonzero("Memory"),
        memory_swap=nonzero("MemorySwap"),
        nano_cpus=nonzero("NanoCpus") or nonzero("NanoCPUs"),
        cpu_shares=nonzero("CpuShares"),
        cpu_quota=nonzero("CpuQuota"),
        cpu_period=nonzero("CpuPeriod"),
        pids_limit=_int_field(body, "PidsLimit"),
        restart=restart,
    )


@route("POST", "/containers/{id}/update")
def update(request: Request) -> Response:
    changes = changes_from_body(request.json_object())
    if changes.is_empty():
        return Response(body={"Warnings": []})  # Docker accepts an update that changes nothing
    _, warnings = updates.update(request.params["id"], changes)
    return Response(body={"Warnings": warnings})
