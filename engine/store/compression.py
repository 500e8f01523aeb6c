"""Single-pass streaming decompression with hashing on both sides.

``DecodedStream`` reads a layer's raw bytes exactly once in large chunks, hashes them (the blob
digest), copies them to an optional tee (a ``BlobWriter``), detects the compression from magic
bytes, decompresses incrementally with a bounded output per step (so a gzip bomb never sits in
memory), hashes the uncompressed bytes (the diff ID) and counts them against a cap. It then
serves the uncompressed bytes to ``tarfile`` as a forward-only file object, plus a ``copy_to``
fast path that writes file contents straight from its buffers to a file descriptor.

Decompression is in-process (zlib, zstandard, lzma, bz2): no external binary is ever run on
image content (attack A12, CVE-2014-9357).

Over 400 lines because DecodedStream is one buffer state machine (raw read, tee, two hashes, bounded
decompression, copy_to fast path) that is only correct as a whole.
"""

from __future__ import annotations

import bz2
import hashlib
import lzma
import os
import queue
import threading
import zlib
from collections.abc import Callable, Iterator
from typing import IO, BinaryIO, Protocol, cast

import zstandard

from engine.errors import EngineError, InvalidArgument, RuntimeFailure, UnsafeArchive
from engine.store.diskspace import Reserve

CHUNK = 1 << 20
# tarfile reads headers, PAX records and GNU long names through read(); file data never goes
# through it. A header claiming a gigantic PAX record must not make us allocate that much (A9).
MAX_READ = 16 << 20
_QUEUE_DEPTH = 8
# Zero runs this long, aligned in the file, become holes (a multiple of every file system's block).
HOLE = 64 * 1024
_ZEROS = memoryview(bytes(HOLE))

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_XZ_MAGIC = b"\xfd7zXZ\x00"
_BZIP2_MAGIC = b"BZh"

_Decompressor = lzma.LZMADecompressor | bz2.BZ2Decompressor


def detect(prefix: bytes) -> str:
    """Return "gzip", "zstd", "xz", "bzip2" or "tar" for a stream starting with ``prefix``."""
    if prefix.startswith(_GZIP_MAGIC):
        return "gzip"
    if prefix.startswith(_ZSTD_MAGIC):
        return "zstd"
    if prefix.startswith(_XZ_MAGIC):
        return "xz"
    if prefix.startswith(_BZIP2_MAGIC):
        return "bzip2"
    return "tar"


class _Hash(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...


class _NoHash:
    """Stands in for sha256 where no digest is wanted: hashing 1 GB costs about a second of CPU."""

    def update(self, data: bytes, /) -> None:
        pass

    def hexdigest(self) -> str:
        return ""


class _RawSource:
    """The raw stream, read once: hashed, teed and capped as it goes; supports one-chunk peek."""

    def __init__(
        self, stream: BinaryIO, tee: BinaryIO | None, max_bytes: int, *, hashed: bool = True
    ) -> None:
        self._stream = stream
        self._tee = tee
        self._max = max_bytes
        self.hash: _Hash = hashlib.sha256() if hashed else _NoHash()
        self.size = 0
        self._pending = b""
        self.eof = False

    def _pull(self, size: int) -> bytes:
        try:
            chunk = self._stream.read(size)
        except OSError as exc:
            raise RuntimeFailure(f"cannot read the layer stream: {exc}") from exc
        if not chunk:
            self.eof = True
            return b""
        self.size += len(chunk)
        if self.size > self._max:
            raise UnsafeArchive(f"layer is larger than the limit of {self._max} bytes (compressed)")
        self.hash.update(chunk)
        if self._tee is not None:
            self._tee.write(chunk)
        return chunk

    def peek(self, size: int) -> bytes:
        """Return at least ``size`` leading bytes (fewer at end of stream) without consuming them."""
        while len(self._pending) < size and not self.eof:
            self._pending += self._pull(CHUNK)
        return self._pending[:size]

    def read(self, size: int = -1) -> bytes:
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        return self._pull(CHUNK if size is None or size < 0 else max(size, CHUNK))

    def readinto(self, buffer: bytearray | memoryview) -> int:
        # zstandard's stream_reader prefers read(); kept for io-compatibility.
        data = self.read(len(buffer))
        view = memoryview(buffer)
        n = min(len(data), len(view))
        view[:n] = data[:n]
        if n < len(data):
            self._pending = data[n:] + self._pending
        return n


def _plain(raw: _RawSource) -> Iterator[bytes]:
    while chunk := raw.read(CHUNK):
        yield chunk


def _gzip(raw: _RawSource) -> Iterator[bytes]:
    # 16 + MAX_WBITS: expect a gzip header and trailer. A new decompressobj per member handles
    # multi-member files (pigz, concatenated gzip).
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    data = raw.read(CHUNK)
    while True:
        while data:
            out = inflater.decompress(data, CHUNK)
            if out:
                yield out
            if inflater.eof:
                data = inflater.unused_data
                if data and not data.startswith(_GZIP_MAGIC[: len(data)]):
                    raise InvalidArgument("corrupt gzip stream: trailing garbage after the last member")
                if not data:
                    data = raw.read(CHUNK)
                    if not data:
                        return
                inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                continue
            data = inflater.unconsumed_tail
        data = raw.read(CHUNK)
        if not data:
            # Drain what zlib still holds, then insist on a complete member.
            out = inflater.flush()
            if out:
                yield out
            if not inflater.eof:
                raise InvalidArgument("corrupt gzip stream: unexpected end of data")
            return


def _zstd(raw: _RawSource) -> Iterator[bytes]:
    reader = zstandard.ZstdDecompressor().stream_reader(
        cast(IO[bytes], raw), read_size=CHUNK, read_across_frames=True, closefd=False
    )
    while chunk := reader.read(CHUNK):
        yield chunk


def _bounded(raw: _RawSource, factory: Callable[[], _Decompressor]) -> Iterator[bytes]:
    decoder = factory()
    data = raw.read(CHUNK)
    while True:
        out = decoder.decompress(data, CHUNK)
        if out:
            yield out
        if decoder.eof:
            data = decoder.unused_data or raw.read(CHUNK)
            if not data:
                return
            decoder = factory()  # concatenated streams, as xz(1) and bzip2(1) accept
        elif decoder.needs_input:
            data = raw.read(CHUNK)
            if not data:
                raise InvalidArgument("corrupt compressed stream: unexpected end of data")
        else:
            data = b""  # output was capped at CHUNK; let the decoder continue


def _pwrite(fd: int, data: memoryview, offset: int, reserve: Reserve | None) -> int:
    done = 0
    while done < len(data):
        done += os.pwrite(fd, data[done:], offset + done)
    if reserve is not None:
        reserve.written(done)
    return offset + done


_DECODERS: dict[str, Callable[[_RawSource], Iterator[bytes]]] = {
    "tar": _plain,
    "gzip": _gzip,
    "zstd": _zstd,
    "xz": lambda raw: _bounded(raw, lzma.LZMADecompressor),
    "bzip2": lambda raw: _bounded(raw, bz2.BZ2Decompressor),
}


class DecodedStream:
    """The uncompressed bytes of a raw layer stream, as a forward-only file object.

    ``raw_digest``/``raw_size`` and ``digest``/``size`` are complete only after ``drain()``;
    always ``close()`` it (it owns a producer thread that reads ``stream`` and writes ``tee``).
    Errors: ``InvalidArgument`` for corrupt compressed data, ``UnsafeArchive`` when the
    uncompressed (or raw) size passes ``max_bytes``. With ``hashed=False`` (copies and restores,
    which need no digest) nothing is hashed and both digests are empty.
    """

    def __init__(
        self, stream: BinaryIO, *, tee: BinaryIO | None = None, max_bytes: int, hashed: bool = True
    ) -> None:
        self._raw = _RawSource(stream, tee, max_bytes, hashed=hashed)
        self._max = max_bytes
        self.compression = detect(self._raw.peek(8))
        self._hash: _Hash = hashlib.sha256() if hashed else _NoHash()
        self._buf = b""
        self._off = 0
        self._pos = 0  # stream position of self._buf[self._off]
        self.size = 0  # uncompressed bytes produced so far (written by the producer thread)
        self.last_read = b""
        self._ended = False
        # Reading, hashing, teeing and inflating run in a producer thread while the caller parses
        # and writes files: zlib, zstd, hashlib and os.write release the GIL, so on two cores the
        # two halves overlap (this is what lets us keep up with `gzip -dc | tar -x`).
        self._queue: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=_QUEUE_DEPTH)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="layer-decode", daemon=True)
        self._thread.start()

    # -- producing (producer thread) -------------------------------------------------------
    def _produce(self) -> None:
        item: bytes | BaseException | None = None
        try:
            for chunk in _DECODERS[self.compression](self._raw):
                self.size += len(chunk)
                if self.size > self._max:
                    raise UnsafeArchive(
                        f"layer expands past the limit of {self._max} bytes (decompression bomb?)"
                    )
                self._hash.update(chunk)
                if not self._put(chunk):
                    return
            # A decoder may stop at its end marker with raw bytes left: nothing may follow.
            if not self._raw.eof and self._raw.read(CHUNK):
                raise InvalidArgument(f"corrupt {self.compression} stream: trailing data after the end")
        except EngineError as exc:
            item = exc
        except (zlib.error, zstandard.ZstdError, lzma.LZMAError, OSError, EOFError, ValueError) as exc:
            item = InvalidArgument(f"corrupt {self.compression} stream: {exc}")
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            item = exc
        self._put(item)

    def _put(self, item: bytes | BaseException | None) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _refill(self) -> bool:
        if self._ended:
            return False
        item = self._queue.get()
        if item is None:
            self._ended = True
            self._thread.join()
            return False
        if isinstance(item, BaseException):
            self._ended = True
            self._thread.join()
            raise item
        self._buf = item
        self._off = 0
        return True

    def close(self) -> None:
        """Stop and join the producer thread (idempotent); the tee is no longer written after."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        self._thread.join()

    # -- file-object protocol for tarfile --------------------------------------------------
    def tell(self) -> int:
        return self._pos

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0 or size > MAX_READ:
            raise UnsafeArchive(f"tar header or extended record too large ({size} bytes)")
        avail = len(self._buf) - self._off
        if avail >= size:
            data = self._buf[self._off : self._off + size]
            self._off += size
        else:
            parts = [self._buf[self._off :]]
            got = avail
            self._off = len(self._buf)
            while got < size and self._refill():
                take = min(size - got, len(self._buf))
                parts.append(self._buf[:take])
                self._off = take
                got += take
            data = b"".join(parts)
        self._pos += len(data)
        self.last_read = data
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        target = offset if whence == os.SEEK_SET else self._pos + offset
        if whence not in (os.SEEK_SET, os.SEEK_CUR) or target < self._pos:
            raise InvalidArgument("layer stream cannot seek backwards")
        self.skip(target - self._pos)
        return self._pos

    def seekable(self) -> bool:
        return True  # forward only; tarfile's non-stream mode only seeks forward

    def readable(self) -> bool:
        return True

    # -- fast paths ------------------------------------------------------------------------
    def skip(self, count: int) -> None:
        """Consume ``count`` bytes; raise ``InvalidArgument`` if the stream ends first."""
        while count > 0:
            avail = len(self._buf) - self._off
            if avail == 0:
                if not self._refill():
                    raise InvalidArgument("truncated layer: unexpected end of tar data")
                continue
            step = min(avail, count)
            self._off += step
            self._pos += step
            count -= step

    def copy_to(self, fd: int, count: int, *, reserve: Reserve | None = None) -> None:
        """Write the next ``count`` bytes to ``fd``, a new empty file, without intermediate copies.

        Aligned runs of `HOLE` zero bytes are not written but left as holes, and the size is set
        with ftruncate, so a layer of zeros (a decompression bomb, a disk image) costs no disk.
        ``reserve.written`` is told every byte that is really written.
        """
        size = count
        pos = 0  # offset in the file of self._buf[self._off]
        end_written = 0
        while count > 0:
            avail = len(self._buf) - self._off
            if avail == 0:
                if not self._refill():
                    raise InvalidArgument("truncated layer: unexpected end of file data")
                continue
            step = min(avail, count)
            end_written = max(end_written, self._write_data(fd, pos, step, reserve))
            self._off += step
            self._pos += step
            pos += step
            count -= step
        if end_written < size:
            os.ftruncate(fd, size)

    def _write_data(self, fd: int, pos: int, step: int, reserve: Reserve | None) -> int:
        """pwrite ``step`` buffered bytes at file offset ``pos``, skipping aligned zero blocks.

        Return the file offset just past the last byte written (``pos`` if all were holes).
        """
        buf, start = self._buf, self._off
        end = start + step
        view = memoryview(buf)
        data_from = start  # first buffered byte not yet written
        i = start
        last = pos
        while i < end:
            block_end = min(end, i + HOLE - (pos + i - start) % HOLE)
            # buf[i] first: non-zero data almost never needs the comparison (memcmp stops early anyway).
            # A block cut by the buffer's edge is checked in parts: both zero parts are left unwritten.
            n = block_end - i
            if buf[i] == 0 and buf.startswith(_ZEROS[:n], i):
                if data_from < i:
                    last = _pwrite(fd, view[data_from:i], pos + data_from - start, reserve)
                data_from = block_end
            i = block_end
        if data_from < end:
            last = _pwrite(fd, view[data_from:end], pos + data_from - start, reserve)
        return last

    def drain(self) -> None:
        """Read (and hash) everything that is left, including tar padding and raw trailers."""
        self._pos += len(self._buf) - self._off
        self._off = len(self._buf)
        while self._refill():
            self._pos += len(self._buf)
            self._off = len(self._buf)

    @property
    def digest(self) -> str:
        """sha256 of the uncompressed bytes produced so far (the diff ID once drained)."""
        return f"sha256:{self._hash.hexdigest()}"

    @property
    def raw_digest(self) -> str:
        """sha256 of the raw bytes read so far (the blob digest once drained)."""
        return f"sha256:{self._raw.hash.hexdigest()}"

    @property
    def raw_size(self) -> int:
        return self._raw.size
