"""The work behind RUN, COPY and ADD, and the image views they read (internal to the builder).

RUN creates a container from the current image through the container services, streams its log as
progress, and turns its overlay upper dir into a layer. COPY and ADD write a layer tar directly from
the context. Every container, mount and temp directory made here is removed on every path out,
including a KeyboardInterrupt (a cancelled build must not leak a running RUN, fault scenario 21).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import stat
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from engine import conf
from engine.dockerfile.context import SourceTree
from engine.errors import ContainerNotFound, EngineError
from engine.models import Image
from engine.progress import OutputLine, Progress
from engine.runtime import conmon, logfile
from engine.services import bundle, containers, imagestore, lifecycle
from engine.services.options import ContainerOptions
from engine.store import layerdiff, overlay
from engine.store import layers as layer_store

log = logging.getLogger(__name__)

BUILD_LABEL = "io.berth.build"
# Files the engine bind-mounts over (or creates as mount points) in every container. They are not the
# user's changes; Docker keeps them out of diffs with its "init layer".
_PLACEHOLDERS = frozenset({"etc/hosts", "etc/hostname", "etc/resolv.conf", bundle.INIT_PATH.lstrip("/")})
_POLL = 0.02


class BuildCancelled(EngineError):
    """The build was cancelled (its Job's cancel button, a closed page)."""


def check_cancelled(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise BuildCancelled("the build was cancelled")


def skip_placeholder(rel: str, st: object) -> bool:
    return rel in _PLACEHOLDERS and stat.S_ISREG(st.st_mode) and st.st_size == 0  # type: ignore[attr-defined]


def store_layer(write: Callable[[tarfile.TarFile], None], parent_chain: str | None) -> imagestore.StoredLayer:
    """Stream the tar that `write` produces into the layer store, on top of `parent_chain`."""
    with layerdiff.TarPipe(write) as stream:
        return imagestore.unpack_layer(stream, parent_chain=parent_chain)


def upper_layer(container_id: str, parent_chain: str | None) -> imagestore.StoredLayer:
    """The container's changes (its overlay upper dir) as a new layer."""
    upper = bundle.paths(container_id).upper
    return store_layer(lambda tar: layerdiff.write_upper(tar, upper, skip=skip_placeholder), parent_chain)


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    conf.ensure_dirs()
    path = conf.tmp_dir() / f"{prefix}{secrets.token_hex(6)}"
    path.mkdir(mode=0o700)
    try:
        yield path
    finally:
        layer_store.remove_tree(path)


@contextlib.contextmanager
def image_view(image: Image | None) -> Iterator[SourceTree]:
    """The image's merged root filesystem, read-only by convention, as a SourceTree.

    One layer is read in place; several are mounted as an overlay, unmounted on the way out.
    """
    lowers = imagestore.layer_paths(image) if image is not None else []
    if len(lowers) == 1:
        with SourceTree(lowers[0]) as tree:
            yield tree
        return
    with temp_dir("view-") as base:
        merged = base / "merged"
        merged.mkdir()
        if lowers:
            (base / "upper").mkdir()
            (base / "work").mkdir()
            overlay.mount_overlay(lowers, upper=base / "upper", work=base / "work", target=merged)
        try:
            with SourceTree(merged) as tree:
                yield tree
        finally:
            if lowers:
                overlay.unmount(merged)


class RunStep:
    """One RUN: a container from `image_id`, its output streamed, its changes returned as a layer."""

    def __init__(
        self, options: ContainerOptions, *, progress: Progress, cancel: threading.Event | None = None
    ) -> None:
        self.options = options
        self.progress = progress
        self.cancel = cancel
        self.container_id: str | None = None

    def run(self) -> int:
        """Create, start and wait for the container; return its exit code (the container is kept)."""
        container = containers.create(self.options)
        self.container_id = container.id
        container = lifecycle.start(container.id)
        self._stream(container.id, container.conmon_pid)
        return lifecycle.wait(container.id, timeout=60)

    def remove(self) -> None:
        """Kill and remove the container (and its anonymous volumes); safe to call at any point."""
        if self.container_id is None:
            return
        try:
            lifecycle.remove(self.container_id, force=True, volumes=True)
        except ContainerNotFound:
            pass
        except (EngineError, OSError):
            log.warning("could not remove build container %s", self.container_id[:12], exc_info=True)
        self.container_id = None

    def _stream(self, container_id: str, conmon_pid: int) -> None:
        p = bundle.paths(container_id)

        def exited() -> bool:
            if conmon.read_exit_code(p.exit_dir, container_id) is not None:
                return True
            return not conmon_pid or conmon.is_zombie(conmon_pid)

        for line in logfile.iter_lines(_follow(p.log, exited, self.cancel)):
            self.progress(OutputLine(line.text))


def _follow(path: Path, exited: Callable[[], bool], cancel: threading.Event | None) -> Iterator[bytes]:
    """Raw lines of a log file as they are written, until `exited()` and the file is drained.

    Raise BuildCancelled as soon as `cancel` is set (the caller then kills the container).
    """
    fh = None
    buf = b""
    finished = False
    try:
        while True:
            if fh is None:
                try:
                    fh = open(path, "rb")  # noqa: SIM115 — kept open across iterations
                except FileNotFoundError:
                    pass
            chunk = fh.read(1 << 16) if fh is not None else b""
            if chunk:
                buf += chunk
                *complete, buf = buf.split(b"\n")
                yield from complete
                continue
            if finished:
                break
            check_cancelled(cancel)
            finished = exited()  # one more read after this, so the last lines are not lost
            if not finished:
                time.sleep(_POLL)
        if buf:
            yield buf
    finally:
        if fh is not None:
            fh.close()
