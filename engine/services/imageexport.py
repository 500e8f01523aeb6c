"""Export one image as a streamed `berth save` archive, for front ends that send it as a download.

`imagetransfer.save` writes to a file object; here it writes into a pipe from a worker thread and the
caller reads chunks from the other end, so the archive is never held whole in memory or on disk.
The name is resolved before the thread starts: an unknown image is an ImageNotFound (404) while an
HTTP answer can still say so. Closing the stream early closes the pipe; the writer then stops on EPIPE.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import logging
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from engine.errors import EngineError
from engine.registry import reference
from engine.services import images, imagetransfer

logger = logging.getLogger(__name__)

CHUNK = 1 << 16


@dataclass
class ExportStream:
    """Tar bytes as they are written; iterate for chunks, then always `close()`."""

    filename: str
    _reader: io.BufferedReader
    _closed: bool = False

    def __iter__(self) -> Iterator[bytes]:
        read = self._reader.read1
        while True:
            data = read(CHUNK)
            if not data:
                return
            yield data

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._reader.close()


def export(ref: str) -> ExportStream:
    """Start writing the archive of the image `ref` (a name or ID); return the stream to read it from.

    The archive is `berth save REF`'s: `berth load` and `docker load` read it. Records an image
    `save` event (as imagetransfer.save does) once the archive is complete.
    Raise ImageNotFound for an unknown image, BadReference for a malformed name.
    """
    image = images.resolve(ref)
    name = ref.strip() if not reference.looks_like_id(ref.strip()) else image.id
    read_fd, write_fd = os.pipe()
    reader = os.fdopen(read_fd, "rb")
    context = contextvars.copy_context()  # the acting user travels with the writer

    def write() -> None:
        from django.db import connections

        try:
            with os.fdopen(write_fd, "wb") as out:
                imagetransfer.save([name], out)
        except (EngineError, OSError) as exc:
            logger.warning("export of %r stopped: %s", name, exc)
        finally:
            connections.close_all()

    threading.Thread(target=context.run, args=(write,), name="image-export", daemon=True).start()
    return ExportStream(filename=download_name(name, image.short_id), _reader=reader)


def download_name(name: str, short_id: str) -> str:
    """`busybox:latest` → `busybox-latest.tar`; an ID → `image-<short id>.tar`."""
    if reference.looks_like_id(name):
        return f"image-{short_id}.tar"
    familiar = reference.parse(name).familiar()
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", familiar).strip("-.") + ".tar"
