"""Docker API: `POST /build` with the classic builder's JSON stream (BuildKit is refused).

The context tar arrives as the request body (plain or compressed, often chunked); it is spooled to
a temp file under the engine's tmp directory and handed to engine.services.builds.build, whose step
and output events become Docker's `{"stream": …}` lines.
"""

from __future__ import annotations

import json
import tarfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from engine.api.http import ApiError, Request, Stream, json_lines
from engine.api.progressstream import Pump, error_message, spool_body
from engine.api.router import route
from engine.errors import InvalidArgument
from engine.models import Image
from engine.progress import LayerProgress, OutputLine, ProgressEvent, StepProgress
from engine.services import builds, refs

MAX_DOCKERFILE = 1 << 20


@route("POST", "/build")
def build(request: Request) -> Stream:
    version = request.arg("version") or "1"
    if version == "2":
        raise ApiError(400, "BuildKit is not supported: set DOCKER_BUILDKIT=0")
    if version != "1":
        raise InvalidArgument(f"invalid version {version!r}")
    if request.arg("remote"):
        raise InvalidArgument("remote build contexts are not supported: send the context as a tar body")
    tags = [t for t in request.query.get("t", []) if t]
    for tag in tags:
        if refs.parse_image(tag).digest:
            raise InvalidArgument(f"cannot tag with a digest reference: {tag}")
    build_args = _string_map(request, "buildargs", allow_null=True)
    labels = _string_map(request, "labels", allow_null=False)
    dockerfile = request.arg("dockerfile") or "Dockerfile"
    target = request.arg("target") or None
    quiet = request.flag("q")
    no_cache = request.flag("nocache")
    path = spool_body(request.body, prefix="build-")
    cancel = threading.Event()

    def work(progress: Callable[[ProgressEvent], None]) -> Image:
        try:
            text = _dockerfile_with_labels(path, dockerfile, labels) if labels else None
            with open(path, "rb") as context:
                return builds.build(
                    context,
                    dockerfile=dockerfile,
                    dockerfile_text=text,
                    tags=tags,
                    build_args=build_args,
                    target=target,
                    no_cache=no_cache,
                    progress=progress,
                    cancel=cancel,
                )
        finally:
            path.unlink(missing_ok=True)

    pump: Pump[Image] = Pump(work, name="build", cancel=cancel)
    pump.start()
    return Stream(chunks=json_lines(_messages(pump, request, tags, quiet)), close=pump.abandon)


def _messages(pump: Pump[Image], request: Request, tags: list[str], quiet: bool) -> Iterator[dict[str, Any]]:
    held: list[dict[str, Any]] = []  # with q=1 the output is shown only if the build fails
    for event in pump.events(request.gone):
        line = _line(event)
        if line is None:
            continue
        if quiet:
            held.append(line)
        else:
            yield line
    if pump.error is not None:
        yield from held
        yield error_message(pump.error)
        return
    image = pump.result
    if image is None:
        return
    if quiet:
        yield {"stream": f"{image.id}\n"}
        return
    yield {"aux": {"ID": image.id}}
    yield {"stream": f"Successfully built {image.short_id}\n"}
    for tag in tags:
        yield {"stream": f"Successfully tagged {refs.parse_image(tag).familiar()}\n"}


def _line(event: ProgressEvent) -> dict[str, Any] | None:
    if isinstance(event, StepProgress):
        return {"stream": f"Step {event.step}/{event.total} : {event.text}\n"}
    if isinstance(event, OutputLine):
        return {"stream": event.text.rstrip("\n") + "\n"}
    if isinstance(event, LayerProgress):
        return None
    return None


def _string_map(request: Request, name: str, *, allow_null: bool) -> dict[str, str]:
    """A JSON object parameter (buildargs, labels); null values (an unset --build-arg) are dropped."""
    raw = request.json_arg(name)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidArgument(f"error reading {name}: it must be a JSON object")
    out: dict[str, str] = {}
    for key, value in raw.items():
        if value is None and allow_null:
            continue
        if not isinstance(value, str):
            raise InvalidArgument(f"error reading {name}: the value of {key!r} must be a string")
        out[str(key)] = value
    return out


def _dockerfile_with_labels(path: Path, dockerfile: str, labels: dict[str, str]) -> str | None:
    """The context's Dockerfile with a LABEL line added at the end, as moby's classic builder does.

    None when the Dockerfile is not in the tar: the build then reports that itself.
    """
    wanted = dockerfile.lstrip("/").removeprefix("./")
    try:
        with tarfile.open(path, mode="r:*") as tar:
            for member in tar:
                if member.isfile() and member.name.lstrip("/").removeprefix("./") == wanted:
                    handle = tar.extractfile(member)
                    if handle is None or member.size > MAX_DOCKERFILE:
                        return None
                    text = handle.read().decode("utf-8", errors="replace")
                    break
            else:
                return None
    except (tarfile.TarError, OSError, EOFError):
        return None  # a broken context is reported by the build itself
    pairs = " ".join(f"{json.dumps(k)}={json.dumps(v)}" for k, v in sorted(labels.items()))
    return text.rstrip("\n") + f"\nLABEL {pairs}\n"
