"""Storing and deleting images: layers unpacked once per chain ID, records committed last.

Internal to the services. The order of work keeps crashes harmless: blobs are complete before
they get their names, a layer directory is complete before it is renamed to its chain ID, and the
image row (with its layer rows) is written in one short transaction at the very end. Anything a
crash leaves behind is unreferenced and removed by `collect_garbage()` at start-up.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, cast

from django.db import transaction
from django.utils.dateparse import parse_datetime

from engine import conf, locks
from engine.errors import InvalidArgument
from engine.image import formats
from engine.models import Image, ImageLayer, ImageTag, Layer, RepoDigest
from engine.services import staging
from engine.store import layers as layer_store
from engine.store.blobs import BlobStore
from engine.store.digests import chain_id as compute_chain_id
from engine.store.digests import digest_hex, sha256_digest

logger = logging.getLogger(__name__)

TMP_PREFIX = ".tmp-"
MEDIA_TAR = "application/vnd.oci.image.layer.v1.tar"
MEDIA_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
_MEDIA_TYPES = {"tar": MEDIA_TAR, "gzip": MEDIA_GZIP, "zstd": MEDIA_ZSTD}


@dataclass(frozen=True)
class StoredLayer:
    """A layer that is on disk under its chain ID (its row may not exist yet)."""

    chain_id: str
    diff_id: str
    blob_digest: str
    blob_size: int
    media_type: str
    size: int


def blob_store() -> BlobStore:
    return BlobStore(conf.blobs_dir(), reserve=conf.disk_reserve())


def layer_path(chain_id: str) -> Path:
    return conf.layers_dir() / digest_hex(chain_id)


def find_layer(parent_chain: str | None, blob_digest: str) -> StoredLayer | None:
    """Return an existing layer made from this blob on this parent, so it is not unpacked twice."""
    row = Layer.objects.filter(blob_digest=blob_digest, parent_id=parent_chain).first()
    if row is None or not layer_path(row.chain_id).is_dir():
        return None
    return _stored(row)


def _stored(row: Layer) -> StoredLayer:
    return StoredLayer(row.chain_id, row.diff_id, row.blob_digest, row.blob_size, row.media_type, row.size)


def unpack_layer(
    stream: BinaryIO, *, parent_chain: str | None, expected_blob: str | None = None
) -> StoredLayer:
    """Unpack one layer blob from `stream`, storing the blob too, and return it stored under its chain ID.

    The stream is read once: it is hashed, written to the blob store and unpacked in one pass.
    Raises UnsafeArchive/InvalidArgument for hostile or corrupt layers; nothing is left behind.
    """
    conf.ensure_dirs()
    tmp = conf.layers_dir() / f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}"
    tmp.mkdir(mode=0o755)
    try:
        with blob_store().writer(expected=expected_blob) as writer:
            # BlobWriter has the one method a tee needs (write).
            result = layer_store.unpack(stream, tmp, tee=cast(BinaryIO, writer), reserve=conf.disk_reserve())
            media_type = _MEDIA_TYPES.get(result.compression)
            if media_type is None:
                # xz and bzip2 unpack fine but have no OCI media type: such a blob could not be saved or pushed.
                raise InvalidArgument(
                    f"layers compressed with {result.compression} are not supported (use gzip, zstd or plain tar)"
                )
            store = blob_store()
            new_blob = not store.exists(writer.digest())
            blob_digest, blob_size = writer.commit()
        if new_blob:
            staging.created_blob(store, blob_digest)
        else:
            staging.reused(store.path(blob_digest))
        chain = compute_chain_id([parent_chain, result.diff_id]) if parent_chain else result.diff_id
        target = layer_path(chain)
        with locks.locked("store", "layers"):
            if target.is_dir():
                layer_store.remove_tree(tmp)  # shared with an image we already have
                staging.reused(target)
            else:
                os.rename(tmp, target)
                staging.created_layer(target, chain)
    except BaseException:
        layer_store.remove_tree(tmp)
        raise
    return StoredLayer(chain, result.diff_id, blob_digest, blob_size, media_type, result.size)


def commit_image(
    config_bytes: bytes,
    layers: Sequence[StoredLayer],
    *,
    tags: Sequence[str] = (),
    repo_digests: Sequence[str] = (),
) -> tuple[Image, list[str]]:
    """Record an image whose blobs and layers are on disk; move `tags` to it.

    Returns the image and the tags that moved away from another image (now possibly dangling).
    """
    config = formats.parse_config(config_bytes)
    if [layer.diff_id for layer in layers] != list(config.diff_ids):
        raise InvalidArgument(
            "image config's diff_ids do not match its layers (corrupt or mismatched archive)"
        )
    store = blob_store()
    new_config = not store.exists(sha256_digest(config_bytes))
    config_digest, config_size = store.put_bytes(config_bytes)
    if new_config:
        staging.created_blob(store, config_digest)
    else:
        staging.reused(store.path(config_digest))
    created = parse_datetime(config.created) if config.created else None
    moved: list[str] = []
    with locks.locked("store", "layers"), transaction.atomic():
        parent: str | None = None
        for layer in layers:
            Layer.objects.get_or_create(
                chain_id=layer.chain_id,
                defaults={
                    "diff_id": layer.diff_id,
                    "parent_id": parent,
                    "blob_digest": layer.blob_digest,
                    "blob_size": layer.blob_size,
                    "media_type": layer.media_type,
                    "size": layer.size,
                },
            )
            parent = layer.chain_id
        image, made = Image.objects.get_or_create(
            id=config_digest,
            defaults={
                "config": _config_json(config_bytes),
                "config_size": config_size,
                "architecture": config.architecture or "amd64",
                "os": config.os or "linux",
                "created": created if isinstance(created, datetime) else None,
                "size": sum(layer.size for layer in layers),
            },
        )
        if made:
            ImageLayer.objects.bulk_create(
                ImageLayer(image=image, layer_id=layer.chain_id, position=i) for i, layer in enumerate(layers)
            )
        for tag in tags:
            if move_tag(image, tag):
                moved.append(tag)
        for name in repo_digests:
            RepoDigest.objects.update_or_create(name=name, defaults={"image": image})
    return image, moved


def _config_json(config_bytes: bytes) -> dict:
    return json.loads(config_bytes)


def delete_image(image: Image) -> list[str]:
    """Delete an image row and every layer, blob and directory no other image uses.

    Returns the IDs deleted: the image, then its now-unused layers (top-most first).
    """
    deleted = [image.id]
    with locks.locked("store", "layers"):
        chains = list(image.image_layers.order_by("-position").values_list("layer_id", flat=True))
        with transaction.atomic():
            image.delete()
            unused = []
            for chain in chains:
                if not ImageLayer.objects.filter(layer_id=chain).exists():
                    row = Layer.objects.get(chain_id=chain)
                    unused.append((chain, row.blob_digest))
                    row.delete()
        for chain, blob in unused:
            layer_store.remove_tree(layer_path(chain))
            if not Layer.objects.filter(blob_digest=blob).exists():
                blob_store().delete(blob)
            deleted.append(chain)
    config_digest = deleted[0]
    if not Image.objects.filter(id=config_digest).exists():
        blob_store().delete(config_digest)
    return deleted


def layer_paths(image: Image) -> list[Path]:
    """The image's layer directories, top-most first (the order overlayfs wants)."""
    chains = image.image_layers.order_by("-position").values_list("layer_id", flat=True)
    return [layer_path(chain) for chain in chains]


def collect_garbage() -> dict[str, int]:
    """Remove what a crash left behind: temp blobs, half-unpacked layers, unreferenced layer dirs."""
    conf.ensure_dirs()
    removed = {"temp_blobs": blob_store().sweep_temp(), "layer_dirs": 0}
    known = {digest_hex(c) for c in Layer.objects.values_list("chain_id", flat=True)}
    with locks.locked("store", "layers"):
        for entry in conf.layers_dir().iterdir():
            if entry.name.startswith(TMP_PREFIX):
                if tmp_is_stale(entry):
                    layer_store.remove_tree(entry)
                    removed["layer_dirs"] += 1
            elif entry.name not in known and not _recent(entry):
                layer_store.remove_tree(entry)
                removed["layer_dirs"] += 1
        for entry in conf.tmp_dir().iterdir():
            # Uploads and spooled stdin of processes that died; live ones are younger than a day.
            if entry.name.startswith(("upload-", "load-")) and not _recent(entry, 24 * 3600):
                entry.unlink(missing_ok=True)
                removed["temp_files"] = removed.get("temp_files", 0) + 1
    return removed


def _recent(path: Path, seconds: float = 3600) -> bool:
    """A layer renamed into place moments ago may belong to a load still running in another process."""
    try:
        return time.time() - path.stat().st_mtime < seconds
    except FileNotFoundError:
        return False


def tmp_is_stale(path: Path) -> bool:
    """A temp layer dir is stale once the process that named it (.tmp-<pid>-…) is gone."""
    try:
        pid = int(path.name[len(TMP_PREFIX) :].split("-", 1)[0])
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return True
    except PermissionError:
        return False  # alive, just not ours to signal
    return False


def move_tag(image: Image, name: str) -> bool:
    """Point tag `name` at `image`; return True when it was taken from another image."""
    with transaction.atomic():
        moved = ImageTag.objects.filter(name=name).exclude(image=image).delete()[0] > 0
        ImageTag.objects.get_or_create(name=name, defaults={"image": image})
    return moved


def unique_size(image: Image) -> int:
    """Bytes that deleting this image would free: its layers that no other image uses."""
    total = 0
    for il in image.image_layers.select_related("layer"):
        if not ImageLayer.objects.filter(layer_id=il.layer_id).exclude(image=image).exists():
            total += il.layer.size
    return total
