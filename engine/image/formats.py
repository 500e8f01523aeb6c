"""OCI and Docker image JSON documents: build them canonically, parse them strictly.

Everything here is pure: bytes in, frozen dataclasses out (or dataclasses in, canonical bytes out). Builders
emit sorted keys and no whitespace, because a manifest's or config's digest is the digest of these exact
bytes and the same image must always get the same ID. Parsers treat input as hostile: documents are size
capped, every digest is checked strictly and every field is type checked before anyone relies on it.

Over 400 lines because each document's strict parser sits beside the canonical builder it must round-trip
with, and the Docker and OCI shapes share the same field checks.
"""

from __future__ import annotations

import json
import logging
import platform as _platform
from dataclasses import dataclass, field
from typing import Any

from engine.errors import InvalidArgument
from engine.image import jsonlimits, stopsignal
from engine.store.digests import parse_digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDIST_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_FOREIGN_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_SCHEMA1_MEDIA_TYPES = frozenset(
    {
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    }
)

MANIFEST_MEDIA_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_MEDIA_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
CONFIG_MEDIA_TYPES = frozenset({OCI_CONFIG, DOCKER_CONFIG})
# Layer media type → compression of the blob (None: a plain tar).
LAYER_COMPRESSION: dict[str, str | None] = {
    OCI_LAYER: None,
    OCI_LAYER_GZIP: "gzip",
    OCI_LAYER_ZSTD: "zstd",
    OCI_LAYER_NONDIST: None,
    OCI_LAYER_NONDIST_GZIP: "gzip",
    OCI_LAYER_NONDIST_ZSTD: "zstd",
    DOCKER_LAYER_GZIP: "gzip",
    DOCKER_LAYER_FOREIGN_GZIP: "gzip",
}

logger = logging.getLogger(__name__)

# containerd caps manifests and indexes at 4 MiB; configs carry history and may be a little larger.
MAX_DOCUMENT_SIZE = 4 * 1024 * 1024
MAX_CONFIG_SIZE = 8 * 1024 * 1024

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"

# Keys of the config's "config" object whose types are checked; others pass through untouched.
_LIST_OF_STR_KEYS = ("Env", "Cmd", "Entrypoint", "Shell", "OnBuild")
_STR_KEYS = ("WorkingDir", "User", "StopSignal")
_SET_KEYS = ("ExposedPorts", "Volumes")


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict, hash=False, compare=True)
    platform: Platform | None = None


@dataclass(frozen=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: dict[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Index:
    media_type: str
    manifests: tuple[Descriptor, ...]
    annotations: dict[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class ImageConfig:
    architecture: str
    os: str
    created: str | None
    config: dict[str, Any] = field(hash=False)
    diff_ids: tuple[str, ...]
    history: tuple[dict[str, Any], ...] = field(hash=False)
    variant: str | None = None


def canonical_json(obj: Any) -> bytes:
    """Serialise `obj` deterministically: sorted keys, no whitespace, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def image_config(
    *,
    architecture: str,
    os: str,
    config: dict[str, Any],
    diff_ids: list[str],
    history: list[dict[str, Any]],
    created: str,
    variant: str | None = None,
) -> bytes:
    """Build an OCI image config as canonical bytes; its sha256 is the image ID.

    Raise InvalidArgument if a diff_id is not a strict sha256 digest.
    """
    for diff_id in diff_ids:
        _check_digest(diff_id, "diff_id")
    doc: dict[str, Any] = {
        "architecture": architecture,
        "os": os,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "history": history,
        "created": created,
    }
    if variant:
        doc["variant"] = variant
    return canonical_json(doc)


def oci_manifest(
    config_digest: str,
    config_size: int,
    layers: list[tuple[str, str, int]],
    annotations: dict[str, str] | None = None,
) -> bytes:
    """Build an OCI image manifest as canonical bytes; `layers` are (media_type, digest, size)."""
    _check_digest(config_digest, "config digest")
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
        "layers": [],
    }
    for media_type, digest, size in layers:
        _check_digest(digest, "layer digest")
        doc["layers"].append({"mediaType": media_type, "digest": digest, "size": size})
    if annotations:
        doc["annotations"] = dict(annotations)
    return canonical_json(doc)


def oci_index(manifests: list[Descriptor], annotations: dict[str, str] | None = None) -> bytes:
    """Build an OCI image index (e.g. an image layout's index.json) as canonical bytes."""
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    for desc in manifests:
        _check_digest(desc.digest, "manifest digest")
        entry: dict[str, Any] = {"mediaType": desc.media_type, "digest": desc.digest, "size": desc.size}
        if desc.annotations:
            entry["annotations"] = dict(desc.annotations)
        if desc.platform is not None:
            entry["platform"] = _platform_doc(desc.platform)
        doc["manifests"].append(entry)
    if annotations:
        doc["annotations"] = dict(annotations)
    return canonical_json(doc)


def parse_config(data: bytes) -> ImageConfig:
    """Parse an image config (OCI or Docker, they share a schema); raise InvalidArgument if malformed."""
    doc = _load(data, "image config", MAX_CONFIG_SIZE)
    architecture = _req_str(doc, "architecture", "image config")
    os_name = _req_str(doc, "os", "image config")
    created = _opt_str(doc, "created", "image config")
    variant = _opt_str(doc, "variant", "image config")
    rootfs = doc.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
        raise InvalidArgument("image config: rootfs must be an object of type 'layers'")
    diff_ids = rootfs.get("diff_ids") or []
    if not isinstance(diff_ids, list):
        raise InvalidArgument("image config: rootfs.diff_ids must be a list")
    for diff_id in diff_ids:
        _check_digest(diff_id, "image config diff_id")
    history = doc.get("history") or []
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise InvalidArgument("image config: history must be a list of objects")
    for entry in history:
        if "empty_layer" in entry and not isinstance(entry["empty_layer"], bool):
            raise InvalidArgument("image config: history empty_layer must be true or false")
        for key in ("created", "created_by", "comment", "author"):
            if key in entry and not isinstance(entry[key], str):
                raise InvalidArgument(f"image config: history {key} must be a string")
    return ImageConfig(
        architecture=architecture,
        os=os_name,
        created=created,
        config=_check_container_config(doc.get("config")),
        diff_ids=tuple(diff_ids),
        history=tuple(history),
        variant=variant,
    )


def parse_manifest(data: bytes) -> Manifest:
    """Parse an OCI or Docker schema2 image manifest; raise InvalidArgument for anything else."""
    doc = _load(data, "manifest", MAX_DOCUMENT_SIZE)
    media_type = doc.get("mediaType", OCI_MANIFEST)
    if media_type in DOCKER_SCHEMA1_MEDIA_TYPES or doc.get("schemaVersion") == 1:
        raise InvalidArgument(
            "Docker schema1 manifests are not supported", hint="re-push the image with a newer tool"
        )
    if media_type in INDEX_MEDIA_TYPES or "manifests" in doc:
        raise InvalidArgument("expected an image manifest but got an index / manifest list")
    if media_type not in MANIFEST_MEDIA_TYPES:
        raise InvalidArgument(f"manifest: unsupported media type {media_type!r}")
    if doc.get("schemaVersion") != 2:
        raise InvalidArgument("manifest: schemaVersion must be 2")
    config = _descriptor(doc.get("config"), "manifest config")
    if config.media_type not in CONFIG_MEDIA_TYPES:
        raise InvalidArgument(
            f"manifest: config media type {config.media_type!r} is not a container image config",
            hint="this artifact is not a container image",
        )
    raw_layers = doc.get("layers")
    if not isinstance(raw_layers, list):
        raise InvalidArgument("manifest: layers must be a list")
    layers = tuple(_descriptor(item, "manifest layer") for item in raw_layers)
    for layer in layers:
        if layer.media_type not in LAYER_COMPRESSION:
            raise InvalidArgument(f"manifest: unsupported layer media type {layer.media_type!r}")
    return Manifest(media_type, config, layers, _annotations(doc, "manifest"))


def parse_index(data: bytes) -> Index:
    """Parse an OCI image index or a Docker manifest list; raise InvalidArgument if malformed."""
    doc = _load(data, "index", MAX_DOCUMENT_SIZE)
    media_type = doc.get("mediaType", OCI_INDEX)
    if media_type not in INDEX_MEDIA_TYPES:
        raise InvalidArgument(f"index: unsupported media type {media_type!r}")
    if doc.get("schemaVersion") != 2:
        raise InvalidArgument("index: schemaVersion must be 2")
    raw = doc.get("manifests")
    if not isinstance(raw, list):
        raise InvalidArgument("index: manifests must be a list")
    return Index(
        media_type, tuple(_descriptor(item, "index entry") for item in raw), _annotations(doc, "index")
    )


def oci_layer_media_type(media_type: str) -> str:
    """Map a Docker layer media type to its OCI twin (same bytes), so OCI manifests never mix the two."""
    return {DOCKER_LAYER_GZIP: OCI_LAYER_GZIP, DOCKER_LAYER_FOREIGN_GZIP: OCI_LAYER_NONDIST_GZIP}.get(
        media_type, media_type
    )


def host_platform() -> Platform:
    """The OCI platform of this machine (linux/amd64, linux/arm64/v8, …)."""
    machine = _platform.machine().lower()
    arch, variant = {
        "x86_64": ("amd64", None),
        "amd64": ("amd64", None),
        "aarch64": ("arm64", "v8"),
        "arm64": ("arm64", "v8"),
        "armv7l": ("arm", "v7"),
        "armv6l": ("arm", "v6"),
        "i686": ("386", None),
        "i386": ("386", None),
        "ppc64le": ("ppc64le", None),
        "s390x": ("s390x", None),
        "riscv64": ("riscv64", None),
    }.get(machine, (machine, None))
    return Platform(os="linux", architecture=arch, variant=variant)


def select_manifest(
    manifests: tuple[Descriptor, ...] | list[Descriptor], want: Platform
) -> Descriptor | None:
    """Pick the image manifest for `want` from an index's entries, or None if there is none.

    The variant must match when both sides name one (arm64 without a variant counts as v8). Entries
    that are not image manifests, and attestations (platform unknown/unknown), are never picked.
    """
    for desc in manifests:
        plat = desc.platform
        if desc.media_type not in MANIFEST_MEDIA_TYPES or plat is None:
            continue
        if plat.os != want.os or plat.architecture != want.architecture:
            continue
        have_variant = plat.variant or ("v8" if plat.architecture == "arm64" else None)
        want_variant = want.variant or ("v8" if want.architecture == "arm64" else None)
        if have_variant and want_variant and have_variant != want_variant:
            continue
        return desc
    return None


def _check_digest(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be a string digest")
    try:
        parse_digest(value)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{what}: {exc.message}", hint=exc.hint) from exc
    return value


def _load(data: bytes, what: str, cap: int) -> dict[str, Any]:
    doc = jsonlimits.load_bounded(data, what, max_size=cap)
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{what} must be a JSON object")
    return doc


def _req_str(doc: dict[str, Any], key: str, what: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{what}: {key} must be a non-empty string")
    return value


def _opt_str(doc: dict[str, Any], key: str, what: str) -> str | None:
    value = doc.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidArgument(f"{what}: {key} must be a string")
    return value or None


def _annotations(doc: dict[str, Any], what: str) -> dict[str, str]:
    value = doc.get("annotations") or {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidArgument(f"{what}: annotations must map strings to strings")
    return dict(value)


def _descriptor(item: object, what: str) -> Descriptor:
    if not isinstance(item, dict):
        raise InvalidArgument(f"{what} must be an object")
    media_type = item.get("mediaType")
    if not isinstance(media_type, str) or not media_type:
        raise InvalidArgument(f"{what}: mediaType must be a non-empty string")
    digest = _check_digest(item.get("digest"), f"{what} digest")
    size = item.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidArgument(f"{what}: size must be a non-negative integer")
    plat = None
    raw_platform = item.get("platform")
    if raw_platform is not None:
        if not isinstance(raw_platform, dict):
            raise InvalidArgument(f"{what}: platform must be an object")
        plat = Platform(
            os=_req_str(raw_platform, "os", f"{what} platform"),
            architecture=_req_str(raw_platform, "architecture", f"{what} platform"),
            variant=_opt_str(raw_platform, "variant", f"{what} platform"),
            os_version=_opt_str(raw_platform, "os.version", f"{what} platform"),
        )
    return Descriptor(media_type, digest, size, _annotations(item, what), plat)


def _platform_doc(plat: Platform) -> dict[str, str]:
    doc = {"os": plat.os, "architecture": plat.architecture}
    if plat.variant:
        doc["variant"] = plat.variant
    if plat.os_version:
        doc["os.version"] = plat.os_version
    return doc


def _check_container_config(value: object) -> dict[str, Any]:
    """Type-check the runtime defaults (`config` object); null and missing mean empty."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument("image config: config must be an object")
    for key in _LIST_OF_STR_KEYS:
        item = value.get(key)
        if item is not None and (not isinstance(item, list) or not all(isinstance(s, str) for s in item)):
            raise InvalidArgument(f"image config: config.{key} must be a list of strings")
    for key in _STR_KEYS:
        if value.get(key) is not None and not isinstance(value[key], str):
            raise InvalidArgument(f"image config: config.{key} must be a string")
    for key in _SET_KEYS:
        if value.get(key) is not None and not isinstance(value[key], dict):
            raise InvalidArgument(f"image config: config.{key} must be an object")
    labels = value.get("Labels")
    if labels is not None and (
        not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values())
    ):
        raise InvalidArgument("image config: config.Labels must map strings to strings")
    stop = value.get("StopSignal")
    if stop and not stopsignal.is_valid(stop):
        # Kept (the config's digest covers it), but a container can only be created from this image
        # with --stop-signal: services.containers refuses the image's value at create, as Docker does.
        logger.warning(
            "image config: StopSignal %r is not a valid signal; create needs --stop-signal", stop[:32]
        )
    return dict(value)
