"""A build stage's current image and config, the build cache lookup, and committing a step.

Internal to the builder and to services/builds.py (commit). An image made by a step records the
previous image as its parent, so `images -a` shows the chain and the cache can find a step again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from engine.dockerfile import metadata
from engine.image import formats
from engine.models import Image
from engine.services import imagestore
from engine.services.imagestore import StoredLayer


@dataclass
class State:
    """Where a stage stands: its current image and what the next commit will be made of."""

    image: Image | None
    layers: list[StoredLayer]
    config: dict[str, Any]
    history: list[dict[str, Any]]
    architecture: str
    os: str
    variant: str | None = None
    author: str = ""
    args: dict[str, str] = field(default_factory=dict)  # ARGs declared in this stage that have a value
    cmd_set: bool = False  # a CMD in this stage (an ENTRYPOINT then keeps it)

    @property
    def parent_chain(self) -> str | None:
        return self.layers[-1].chain_id if self.layers else None

    def variables(self) -> dict[str, str]:
        """What ${VAR} sees: the stage's ARGs, overridden by ENV (as in Docker)."""
        return {**self.args, **metadata.env_of(self.config)}


def state_of(image: Image | None) -> State:
    """The state at `image` (None: FROM scratch, for this host's platform)."""
    if image is None:
        plat = formats.host_platform()
        return State(None, [], {}, [], plat.architecture, plat.os, plat.variant)
    doc = image.config
    rows = image.image_layers.select_related("layer").order_by("position")
    stored = [
        StoredLayer(
            r.layer.chain_id,
            r.layer.diff_id,
            r.layer.blob_digest,
            r.layer.blob_size,
            r.layer.media_type,
            r.layer.size,
        )
        for r in rows
    ]
    return State(
        image,
        stored,
        dict(doc.get("config") or {}),
        list(doc.get("history") or []),
        doc.get("architecture") or image.architecture,
        doc.get("os") or image.os,
        doc.get("variant"),
        doc.get("author") or "",
    )


def find_cached(st: State, created_by: str, config: dict[str, Any], *, adds_layer: bool) -> Image | None:
    """A child of the current image made by the same step: same `created_by` (the instruction, the
    build args a RUN saw, a digest of what a COPY read), same resulting config, one layer more or none."""
    candidates = (
        Image.objects.filter(parent=st.image) if st.image else Image.objects.filter(parent__isnull=True)
    )
    diff_ids = [layer.diff_id for layer in st.layers]
    for candidate in candidates.order_by("-loaded"):
        doc = candidate.config
        history = doc.get("history") or []
        if len(history) != len(st.history) + 1 or history[-1].get("created_by") != created_by:
            continue
        if (doc.get("config") or {}) != config or (doc.get("author") or "") != st.author:
            continue
        have = list((doc.get("rootfs") or {}).get("diff_ids") or [])
        if have[: len(diff_ids)] == diff_ids and len(have) == len(diff_ids) + (1 if adds_layer else 0):
            return candidate
    return None


def commit(
    st: State, config: dict[str, Any], layers: list[StoredLayer], history: list[dict[str, Any]], when: str
) -> Image:
    """Record an image made of `layers` with `config`, whose parent is the state's current image."""
    config_bytes = formats.image_config(
        architecture=st.architecture,
        os=st.os,
        config=config,
        diff_ids=[layer.diff_id for layer in layers],
        history=history,
        created=when,
        variant=st.variant,
    )
    if st.author:
        doc = json.loads(config_bytes)
        doc["author"] = st.author
        config_bytes = formats.canonical_json(doc)
    image, _ = imagestore.commit_image(config_bytes, layers)
    if st.image is not None and image.id != st.image.id and image.parent_id is None:
        Image.objects.filter(id=image.id, parent__isnull=True).update(parent=st.image)
        image.parent = st.image
    return image
