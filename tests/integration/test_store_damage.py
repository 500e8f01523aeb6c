"""A damaged store (a layer directory deleted, a blob truncated) is reported, and removing the
damaged image still works (SECURITY.md fault scenario 15)."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import pytest

from engine.errors import ImageNotFound
from engine.models import Image, Layer
from engine.services import images, imagestore, imagetransfer, system
from engine.store.digests import digest_hex


def _import(tag: str | None, payload: bytes) -> Image:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("data")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    buffer.seek(0)
    return imagetransfer.import_tarball(buffer, tag)


def test_a_healthy_store_has_no_problems(engine: Path) -> None:
    system.seed()
    assert system.check() == []


def test_a_deleted_layer_directory_is_reported_and_rmi_f_still_works(engine: Path) -> None:
    image = _import("broken:1", b"x" * 1000)
    layer = Layer.objects.get(image_layers__image=image)
    shutil.rmtree(imagestore.layer_path(layer.chain_id))
    problems = system.check()
    assert any("broken:1" in p and "directory missing" in p for p in problems)
    images.remove("broken:1", force=True)
    with pytest.raises(ImageNotFound):
        images.resolve("broken:1")
    assert system.check() == []


def test_a_truncated_blob_is_reported_as_corrupt_and_prune_still_works(engine: Path) -> None:
    image = _import(None, b"y" * 5000)  # dangling: prune's to remove
    layer = Layer.objects.get(image_layers__image=image)
    blob = imagestore.blob_store().path(layer.blob_digest)
    with open(blob, "r+b") as f:
        f.truncate(10)
    assert any(layer.chain_id[7:19] in p and "corrupt" in p for p in system.check())
    assert system.check(verify_blobs=False) == []  # the quick check only looks for missing files
    images.prune()
    assert not Image.objects.filter(id=image.id).exists()
    assert not (imagestore.layer_path(layer.chain_id)).exists()
    assert digest_hex(layer.blob_digest) not in {p.name for p in blob.parent.iterdir()}
