"""Image archives written: the layout docker 25+ `docker save` produces, which docker and skopeo both load.

An OCI image layout plus Docker's `manifest.json` pointing at the same `blobs/sha256/<hex>` files,
streamed, deterministic. Reading them is `engine.image.archive`.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

from engine.errors import InvalidArgument, RuntimeFailure
from engine.image import formats
from engine.image.archive import CHUNK, blob_name
from engine.registry import reference
from engine.store.digests import parse_digest, sha256_digest

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SaveLayer:
    digest: str
    size: int
    media_type: str


@dataclass(frozen=True)
class SaveImage:
    config_digest: str
    config: bytes
    layers: Sequence[SaveLayer]
    repo_tags: Sequence[str] = ()


@dataclass(frozen=True)
class _Plan:
    """Everything write_archive will emit, computed and validated before the first byte is written."""

    documents: list[tuple[str, bytes]]
    small_blobs: dict[str, bytes]
    layers: dict[str, SaveLayer]
    total: int


def write_archive(
    out: BinaryIO,
    images: Sequence[SaveImage],
    *,
    open_blob: Callable[[str], BinaryIO],
    progress: Progress | None = None,
) -> None:
    """Stream an archive of `images` to `out`: an OCI image layout plus docker's manifest.json.

    The output is deterministic (sorted blobs, mtime/uid/gid 0) and a layer shared by several images is
    written once. `open_blob(digest)` must return a stream of that blob; each blob is copied in 1 MiB
    chunks and its size and digest are checked on the way. `progress(done, total)` is called as bytes
    are written. Bad input raises InvalidArgument/BadReference before anything is written; a failure
    while streaming raises RuntimeFailure and leaves `out` incomplete (the caller discards it).
    """
    plan = _plan(images)
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, plan.total)

    sink = _Sink(out)
    try:
        tar = tarfile.open(fileobj=cast(BinaryIO, sink), mode="w|", format=tarfile.PAX_FORMAT)
        tar.copybufsize = CHUNK  # type: ignore[attr-defined]  # 1 MiB reads, not the default 16 KiB
        for name, data in plan.documents:
            tar.addfile(_tar_info(name, len(data)), _BytesReader(data, advance))
        tar.addfile(_tar_info("blobs", 0, directory=True))
        tar.addfile(_tar_info("blobs/sha256", 0, directory=True))
        for digest in sorted(plan.small_blobs):
            data = plan.small_blobs[digest]
            tar.addfile(_tar_info(blob_name(digest), len(data)), _BytesReader(data, advance))
        for digest in sorted(plan.layers):
            _copy_layer(tar, plan.layers[digest], open_blob, advance)
        tar.close()
    except OSError as exc:
        sink.dead = True
        raise RuntimeFailure(f"writing the image archive failed: {exc}") from exc
    except BaseException:
        sink.dead = True
        raise


def _plan(images: Sequence[SaveImage]) -> _Plan:
    small: dict[str, bytes] = {}
    layers: dict[str, SaveLayer] = {}
    # manifest digest → (config digest, layer digests, references), in the order images were given
    entries: dict[str, tuple[str, list[str], list[reference.Reference]]] = {}
    owner: dict[reference.Reference, str] = {}
    if not images:
        raise InvalidArgument("no images to save")
    for image in images:
        config_digest = parse_digest(image.config_digest)
        if sha256_digest(image.config) != config_digest:
            raise InvalidArgument(f"image config does not match its digest {config_digest}")
        if len(formats.parse_config(image.config).diff_ids) != len(image.layers):
            raise InvalidArgument(f"image {config_digest} has a different number of layers than its config")
        for layer in image.layers:
            parse_digest(layer.digest)
            if layer.media_type not in formats.LAYER_COMPRESSION:
                raise InvalidArgument(f"layer {layer.digest} has unsupported media type {layer.media_type!r}")
            if layers.setdefault(layer.digest, layer).size != layer.size:
                raise InvalidArgument(f"layer {layer.digest} is given with two different sizes")
        manifest = formats.oci_manifest(
            config_digest,
            len(image.config),
            [(formats.oci_layer_media_type(ly.media_type), ly.digest, ly.size) for ly in image.layers],
        )
        manifest_digest = sha256_digest(manifest)
        small[config_digest] = image.config
        small[manifest_digest] = manifest
        _, _, refs = entries.setdefault(
            manifest_digest, (config_digest, [ly.digest for ly in image.layers], [])
        )
        for tag in image.repo_tags:
            ref = reference.parse(tag)
            if ref.digest is not None:
                raise InvalidArgument(f"cannot save {tag!r} under a digest; give a tag")
            if owner.setdefault(ref, manifest_digest) != manifest_digest:
                raise InvalidArgument(f"{ref.familiar()} is given for two different images")
            if ref not in refs:
                refs.append(ref)
    descriptors: list[formats.Descriptor] = []
    docker_manifest: list[dict[str, Any]] = []
    for manifest_digest, (config_digest, layer_digests, refs) in entries.items():
        size = len(small[manifest_digest])
        for ref in refs:
            annotations = {
                formats.ANNOTATION_CONTAINERD_NAME: str(ref),
                formats.ANNOTATION_REF_NAME: ref.tag or "",
            }
            descriptors.append(formats.Descriptor(formats.OCI_MANIFEST, manifest_digest, size, annotations))
        if not refs:
            descriptors.append(formats.Descriptor(formats.OCI_MANIFEST, manifest_digest, size))
        docker_manifest.append(
            {
                "Config": blob_name(config_digest),
                "RepoTags": [ref.familiar() for ref in refs],
                "Layers": [blob_name(d) for d in layer_digests],
            }
        )
    documents = [
        ("oci-layout", formats.canonical_json({"imageLayoutVersion": "1.0.0"})),
        ("index.json", formats.oci_index(descriptors)),
        ("manifest.json", formats.canonical_json(docker_manifest)),
    ]
    total = (
        sum(len(d) for _, d in documents)
        + sum(map(len, small.values()))
        + sum(ly.size for ly in layers.values())
    )
    return _Plan(documents, small, layers, total)


def _tar_info(name: str, size: int, *, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644
    return info


def _copy_layer(
    tar: tarfile.TarFile,
    layer: SaveLayer,
    open_blob: Callable[[str], BinaryIO],
    advance: Callable[[int], None],
) -> None:
    try:
        source = open_blob(layer.digest)
    except OSError as exc:
        raise RuntimeFailure(f"cannot read layer blob {layer.digest}: {exc}") from exc
    with source:
        reader = _VerifyingReader(source, layer, advance)
        tar.addfile(_tar_info(blob_name(layer.digest), layer.size), reader)
        if source.read(1):
            raise RuntimeFailure(f"layer blob {layer.digest} is longer than its recorded size {layer.size}")


class _Sink:
    """Forwards writes to `out` until a failure; then tarfile's late flush (from its finaliser) is dropped."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.dead = False

    def write(self, data: bytes) -> int:
        if self.dead:
            return len(data)
        return self._out.write(data)


class _BytesReader:
    """A read() source over in-memory bytes that reports progress."""

    def __init__(self, data: bytes, advance: Callable[[int], None]) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._advance = advance

    def read(self, n: int = -1) -> bytes:
        end = len(self._data) if n < 0 else min(len(self._data), self._pos + n)
        chunk = bytes(self._data[self._pos : end])
        self._pos = end
        self._advance(len(chunk))
        return chunk


class _VerifyingReader:
    """Hand tarfile exactly `layer.size` bytes of a blob, checking the digest before the last byte goes."""

    def __init__(self, source: BinaryIO, layer: SaveLayer, advance: Callable[[int], None]) -> None:
        self._source = source
        self._layer = layer
        self._left = layer.size
        self._hash = hashlib.sha256()
        self._advance = advance

    def read(self, n: int = -1) -> bytes:
        want = self._left if n < 0 else min(n, self._left, CHUNK)
        chunk = self._source.read(want) if want else b""
        # tarfile treats any short read as the end; keep reading so a slow stream is not mistaken for one.
        while chunk and len(chunk) < want and (more := self._source.read(want - len(chunk))):
            chunk += more
        if len(chunk) < want:
            raise RuntimeFailure(
                f"layer blob {self._layer.digest} is shorter than its recorded size {self._layer.size}",
                hint="the content store may be damaged; run a system check",
            )
        self._hash.update(chunk)
        self._left -= len(chunk)
        if self._left == 0 and "sha256:" + self._hash.hexdigest() != self._layer.digest:
            raise RuntimeFailure(
                f"layer blob {self._layer.digest} does not match its digest",
                hint="the content store may be damaged; run a system check",
            )
        self._advance(len(chunk))
        return chunk
