"""A writer that compresses (gzip, zstd or none) in a thread of its own, as `tar -c | zstd` runs in two processes."""

from __future__ import annotations

import queue
import threading
import zlib
from collections.abc import Callable
from typing import BinaryIO

import zstandard

ZSTD_LEVEL = 3  # zstd(1)'s default
GZIP_LEVEL = 6  # gzip(1)'s default
_QUEUE_DEPTH = 8


class CompressingWriter:
    """Compress and write chunks in a thread: walking and reading the tree overlap with compressing
    (zlib and zstd release the GIL), as `tar -c | zstd` runs in two processes. The queue is bounded,
    so memory stays flat; a write error surfaces on the next ``write`` or ``close``."""

    def __init__(self, out: BinaryIO, compression: str) -> None:
        self.out = out
        self.compression = compression
        self.written = 0
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_QUEUE_DEPTH)
        self._error: BaseException | None = None
        self._failed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="compressing-writer", daemon=True)
        self._thread.start()

    def write(self, chunk: bytes) -> None:
        while True:
            self._raise_if_failed()
            try:
                self._queue.put(chunk, timeout=0.2)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Flush everything and wait for the writer; raise its error, if any."""
        self._raise_if_failed()
        self._put_end()
        self._thread.join()
        self._raise_if_failed()

    def abort(self) -> None:
        """Stop the writer without flushing (idempotent; after close it does nothing)."""
        if self._thread.is_alive():
            self._failed.set()
            self._put_end()
            self._thread.join()

    def _put_end(self) -> None:
        while self._thread.is_alive():
            try:
                self._queue.put(None, timeout=0.2)
                return
            except queue.Full:
                continue

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _emit(self, data: bytes) -> None:
        if data:
            self.out.write(data)
            self.written += len(data)

    def _run(self) -> None:
        try:
            encode: Callable[[bytes], bytes]
            finish: Callable[[], bytes]
            if self.compression == "zstd":
                encoder = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compressobj()
                encode, finish = encoder.compress, encoder.flush
            elif self.compression == "gzip":
                deflater = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
                encode, finish = deflater.compress, deflater.flush
            else:
                encode, finish = bytes, bytes
            while True:
                chunk = self._queue.get()
                if chunk is None or self._failed.is_set():
                    break
                self._emit(encode(chunk))
            if not self._failed.is_set():
                self._emit(finish())
                self.out.flush()
        except BaseException as exc:  # noqa: BLE001 — handed to the producer, which re-raises it
            self._error = exc
            self._failed.set()
            while True:  # unblock a producer waiting on a full queue
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
