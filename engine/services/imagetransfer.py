"""Images in and out: import a root filesystem, load and save archives, seed busybox.

Each takes a keyword-only `progress` callable (engine.progress) and reports bytes per layer.
Validation happens before any work; a failure part-way leaves no image record and no half blob.
"""

from __future__ import annotations

import platform
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from engine import conf, events
from engine.errors import BadReference, InvalidArgument
from engine.image import archive, archivewriter, changes, formats, seed
from engine.models import Image
from engine.progress import CountingReader, LayerProgress, Progress, ignore
from engine.registry import reference
from engine.services import images, imagestore, staging

SEED_REFERENCE = "busybox:latest"


def host_architecture() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(machine, machine)


def _normalise_tag(ref: str) -> str:
    parsed = reference.parse(ref)
    if parsed.digest:
        raise BadReference(f"cannot tag with a digest reference: {ref}")
    return str(parsed)


def check_changes(lines: Sequence[str]) -> None:
    """Raise InvalidArgument unless every line is a valid `import --change` instruction."""
    changes.apply_changes({}, list(lines))


@staging.staged()  # a refused or failed write leaves no blob or layer behind
def import_tarball(
    stream: BinaryIO,
    ref: str | None = None,
    *,
    changes_: Sequence[str] = (),
    message: str = "",
    size: int = 0,
    created: str | None = None,
    progress: Progress = ignore,
) -> Image:
    """Make a one-layer image from a root filesystem tarball (plain, gzip or zstd)."""
    tag = _normalise_tag(ref) if ref else None
    config = changes.apply_changes({}, list(changes_))
    reader = CountingReader(stream, progress=progress, id="rootfs", total=size, status="Importing")
    layer = imagestore.unpack_layer(reader, parent_chain=None)  # type: ignore[arg-type]
    when = created or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    config_bytes = formats.image_config(
        architecture=host_architecture(),
        os="linux",
        config=config,
        diff_ids=[layer.diff_id],
        history=[{"created": when, "created_by": "import", "comment": message or "imported from tarball"}],
        created=when,
    )
    image, _ = imagestore.commit_image(config_bytes, [layer], tags=[tag] if tag else [])
    events.record("image", "import", object_id=image.id, object_name=_familiar(tag) or image.short_id)
    return image


@staging.staged()
def seed_busybox(*, progress: Progress = ignore) -> Image:
    """Build busybox:latest from the host's static busybox; the same host always gives the same ID."""
    if images.exists(SEED_REFERENCE):
        return images.resolve(SEED_REFERENCE)
    conf.ensure_dirs()
    with tempfile.TemporaryFile(dir=conf.tmp_dir()) as tmp:
        seed.write_rootfs(tmp)
        size = tmp.tell()
        tmp.seek(0)
        reader = CountingReader(tmp, progress=progress, id="busybox", total=size, status="Seeding")
        layer = imagestore.unpack_layer(reader, parent_chain=None)  # type: ignore[arg-type]
    when = seed.created()
    config_bytes = formats.image_config(
        architecture=host_architecture(),
        os="linux",
        config=seed.CONFIG,
        diff_ids=[layer.diff_id],
        history=[{"created": when, "created_by": "berth seed: host busybox-static", "comment": ""}],
        created=when,
    )
    image, _ = imagestore.commit_image(config_bytes, [layer], tags=[_normalise_tag(SEED_REFERENCE)])
    events.record("image", "seed", object_id=image.id, object_name=SEED_REFERENCE)
    return image


@staging.staged()
def load(path: Path, *, progress: Progress = ignore) -> list[tuple[Image, list[str]]]:
    """Load every image of a `docker save` or OCI image-layout archive. Returns (image, familiar tags)."""
    conf.ensure_dirs()
    contents = archive.read_archive(Path(path), tmpdir=conf.tmp_dir(), reserve=conf.disk_reserve())
    loaded: list[tuple[Image, list[str]]] = []
    try:
        if not contents.images:
            raise InvalidArgument(f"{path}: no images found in the archive")
        tags_per_image = [[_normalise_tag(t) for t in item.repo_tags] for item in contents.images]
        for item, tags in zip(contents.images, tags_per_image, strict=True):
            stored: list[imagestore.StoredLayer] = []
            parent: str | None = None
            for layer in item.layers:
                known = imagestore.find_layer(parent, layer.digest) if layer.digest else None
                if known is not None:
                    progress(LayerProgress(_short(layer.digest), layer.size, layer.size, "Already exists"))
                    stored.append(known)
                else:
                    with contents.open_member(layer.member_name) as member:
                        reader = CountingReader(
                            member,
                            progress=progress,
                            id=_short(layer.digest or layer.member_name),
                            total=layer.size,
                            status="Loading layer",
                        )
                        stored.append(
                            imagestore.unpack_layer(reader, parent_chain=parent, expected_blob=layer.digest)  # type: ignore[arg-type]
                        )
                parent = stored[-1].chain_id
            image, _ = imagestore.commit_image(item.config, stored, tags=tags)
            familiar = [_familiar(t) for t in tags]
            events.record(
                "image", "load", object_id=image.id, object_name=", ".join(familiar) or image.short_id
            )
            loaded.append((image, familiar))
    finally:
        contents.close()
    return loaded


def save(refs: Sequence[str], out: BinaryIO, *, progress: Progress = ignore) -> None:
    """Write the named images as one archive that both `docker load` and skopeo read."""
    if not refs:
        raise InvalidArgument("save needs at least one image")
    chosen: dict[str, Image] = {}
    tags: dict[str, list[str]] = {}
    for ref in refs:
        image = images.resolve(ref)
        chosen.setdefault(image.id, image)
        names = tags.setdefault(image.id, [])
        if not reference.looks_like_id(ref.strip()):
            parsed = reference.parse(ref)
            if not parsed.digest and parsed.familiar() not in names:
                names.append(parsed.familiar())
    store = imagestore.blob_store()
    by_image: dict[str, archivewriter.SaveImage] = {}
    for image_id, image in chosen.items():
        with store.open(image_id) as f:
            config = f.read()
        layers = [
            archivewriter.SaveLayer(
                digest=il.layer.blob_digest, size=il.layer.blob_size, media_type=il.layer.media_type
            )
            for il in image.image_layers.select_related("layer").order_by("position")
        ]
        by_image[image_id] = archivewriter.SaveImage(
            config_digest=image_id, config=config, layers=layers, repo_tags=tags[image_id]
        )
    order = list(by_image)
    total = sum(layer.size for item in by_image.values() for layer in item.layers)

    def report(done: int, _total: int) -> None:
        progress(LayerProgress("archive", done, total, "Saving"))

    archivewriter.write_archive(
        out, [by_image[i] for i in order], open_blob=imagestore.blob_store().open, progress=report
    )
    for image_id in order:
        events.record(
            "image", "save", object_id=image_id, object_name=", ".join(by_image[image_id].repo_tags)
        )


def _familiar(name: str | None) -> str:
    return reference.parse(name).familiar() if name else ""


def _short(digest: str | None) -> str:
    if digest and digest.startswith("sha256:"):
        return digest[7:19]
    return (digest or "layer")[:12]
