"""Building images: `build` runs a Dockerfile against a context, `commit` turns a container's changes
into an image.

Every front end calls these. Arguments are validated before any work starts (a bad tag or a missing
context is an error before the first step); progress goes to the `progress` callable as StepProgress
and OutputLine events. A failed or cancelled build leaves no container, mount or temp directory; the
steps it finished stay as untagged intermediate images, which is the build cache.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from engine import conf, events
from engine.dockerfile import context
from engine.dockerfile import parser as dockerfile_parser
from engine.errors import BadReference, InvalidArgument
from engine.image import changes as image_changes
from engine.models import Container, ContainerState, Image
from engine.progress import Progress, ignore
from engine.registry import reference
from engine.services import buildrunner as builder
from engine.services import buildstate as imagestate
from engine.services import buildsteps as steps
from engine.services import containers, imagestore, lifecycle, staging
from engine.services.buildsteps import BuildCancelled

log = logging.getLogger(__name__)

__all__ = ["BuildCancelled", "build", "commit", "commit_config"]

MAX_BUILD_ARGS = 1000
# What `commit` carries from the container's config into the image's (Docker's image config keys).
_COMMIT_KEYS = (
    "User",
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "Labels",
    "Volumes",
    "ExposedPorts",
    "StopSignal",
)


def _normalise_tags(tags: Sequence[str]) -> list[str]:
    out = []
    for tag in tags:
        parsed = reference.parse(tag)
        if parsed.digest:
            raise BadReference(f"cannot tag with a digest reference: {tag}")
        out.append(str(parsed))
    return out


def _check_build_args(build_args: Mapping[str, str] | None) -> dict[str, str]:
    args = dict(build_args or {})
    if len(args) > MAX_BUILD_ARGS:
        raise InvalidArgument(f"more than {MAX_BUILD_ARGS} build args")
    for key in args:
        if not key or "=" in key or any(c.isspace() for c in key):
            raise InvalidArgument(f"invalid build arg name {key!r}")
    return args


@staging.staged()  # a failed or cancelled build leaves no blob or layer no image uses
def build(
    context_source: Path | str | BinaryIO,
    *,
    dockerfile: str = "Dockerfile",
    dockerfile_text: str | None = None,
    tags: Sequence[str] = (),
    build_args: Mapping[str, str] | None = None,
    target: str | None = None,
    no_cache: bool = False,
    progress: Progress = ignore,
    cancel: threading.Event | None = None,
) -> Image:
    """Build an image from a Dockerfile and return it, tagged with `tags`.

    `context_source` is a directory or a tar stream (plain or compressed). The Dockerfile is read from
    the context (`dockerfile`, relative to it) unless `dockerfile_text` is given. Raise DockerfileError
    (with the line) for a bad Dockerfile or a failing step, InvalidArgument for a bad context, tag or
    build arg, and ImageNotFound-style DockerfileErrors for a base image that is not present locally.
    Setting `cancel` (from another thread) stops the build within a few milliseconds with
    BuildCancelled; a running RUN container is killed and removed first.
    """
    normalised = _normalise_tags(tags)
    args = _check_build_args(build_args)
    with ExitStack() as stack:
        tree = stack.enter_context(_open(context_source, stack))
        text = dockerfile_text if dockerfile_text is not None else context.read_dockerfile(tree, dockerfile)
        parsed = dockerfile_parser.parse(text)
        if target and parsed.find_stage(target) is None:
            raise InvalidArgument(f"target stage {target!r} could not be found in the Dockerfile")
        image = builder.Builder(
            parsed, tree, build_args=args, target=target, no_cache=no_cache, progress=progress, cancel=cancel
        ).run()
    for tag in normalised:
        imagestore.move_tag(image, tag)
    names = [reference.parse(t).familiar() for t in normalised]
    events.record("image", "build", object_id=image.id, object_name=", ".join(names) or image.short_id)
    return image


def _open(source: Path | str | BinaryIO, stack: ExitStack) -> context.SourceTree:
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise InvalidArgument(f"unable to prepare context: path {str(source)!r} not found")
        if not path.is_dir():
            raise InvalidArgument(f"unable to prepare context: {source} is not a directory")
        return context.open_context(path.resolve())  # a context that is a symlink to a directory works
    scratch = stack.enter_context(steps.temp_dir("ctx-"))
    root = scratch / "context"
    root.mkdir(mode=0o755)
    context.unpack_tar(source, root, reserve=conf.disk_reserve())
    return context.open_context(root)


# -- commit ---------------------------------------------------------------------------------------


@staging.staged()
def commit(
    container_ref: str,
    ref: str | None = None,
    *,
    changes: Sequence[str] = (),
    message: str = "",
    author: str = "",
    pause: bool = True,
) -> Image:
    """Make an image of the container's image plus its changes, with its config and `changes` applied.

    A running container is paused for the copy (unless pause=False) and always unpaused afterwards.
    Raise InvalidArgument for a bad change or reference, ContainerNotFound for an unknown container.
    """
    tags = _normalise_tags([ref]) if ref else []
    container = containers.resolve(container_ref)
    base = imagestate.state_of(container.image)
    config = image_changes.apply_changes(commit_config(container, base.config), list(changes))
    paused = False
    if pause and container.state == ContainerState.RUNNING:
        lifecycle.pause(container.id)
        paused = True
    try:
        layer = steps.upper_layer(container.id, base.parent_chain)
    finally:
        if paused:
            _unpause_quietly(container)
    when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    entry: dict[str, Any] = {"created": when, "created_by": _command_line(container)}
    if message:
        entry["comment"] = message
    if author:
        entry["author"] = author
    base.author = author
    image = imagestate.commit(base, config, base.layers + [layer], base.history + [entry], when)
    for tag in tags:
        imagestore.move_tag(image, tag)
    events.record(
        "container",
        "commit",
        object_id=container.id,
        object_name=container.name,
        attributes={"image": image.id, "tags": ", ".join(reference.parse(t).familiar() for t in tags)},
    )
    return image


def commit_config(container: Container, image_config: dict[str, Any]) -> dict[str, Any]:
    """The image config a commit records: the image's, with what the container was run with on top."""
    out = json.loads(json.dumps(image_config))
    for key in _COMMIT_KEYS:
        value = container.config.get(key)
        if key == "StopSignal" and value == "SIGTERM" and "StopSignal" not in image_config:
            continue  # the engine's default, not something the user chose
        if value in (None, "", [], {}):
            if key in ("Cmd", "Entrypoint"):
                out.pop(key, None)  # the container ran without one, so the image has none
            continue
        out[key] = value
    return out


def _command_line(container: Container) -> str:
    argv = list(container.config.get("Entrypoint") or []) + list(container.config.get("Cmd") or [])
    return " ".join(argv)


def _unpause_quietly(container: Container) -> None:
    try:
        lifecycle.unpause(container.id)
    except Exception:  # noqa: BLE001 — it may have died or been removed meanwhile; the image is made
        log.warning("could not unpause container %s after commit", container.name, exc_info=True)
