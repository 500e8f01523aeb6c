"""Images: find, list, inspect, tag, remove, prune. Import, load, save and seeding are in imagetransfer.

Every front end calls these; they return model instances or plain data and raise EngineError.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q

from engine import events
from engine.errors import BadReference, ImageNotFound, InUse, InvalidArgument
from engine.models import ContainerState, Image, ImageTag, RepoDigest
from engine.registry import reference
from engine.services import imagestore, leftovers

_ID_FILTERS = ("dangling", "reference", "label", "before", "since")


@dataclass(frozen=True)
class ImageRow:
    """One line of `images`: an image under one of its names (or <none>)."""

    image: Image
    repository: str
    tag: str
    digest: str


@dataclass(frozen=True)
class PruneResult:
    deleted: list[dict[str, str]]
    reclaimed: int


def resolve(ref: str) -> Image:
    """Find an image by name, name@digest, full ID or unique ID prefix. Raise ImageNotFound otherwise."""
    ref = ref.strip()
    if not ref:
        raise InvalidArgument("image reference is empty")
    if reference.looks_like_id(ref):
        hexpart = ref.removeprefix("sha256:")
        matches = list(Image.objects.filter(id__startswith=f"sha256:{hexpart}")[:2])
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidArgument(f"image ID prefix {ref} is ambiguous: give more characters")
    try:
        parsed = reference.parse(ref)
    except BadReference:
        raise ImageNotFound(f"no such image: {ref}") from None
    if parsed.digest:
        row = (
            RepoDigest.objects.filter(name=f"{parsed.repository}@{parsed.digest}")
            .select_related("image")
            .first()
        )
        if row is not None:
            return row.image
        image = Image.objects.filter(id=parsed.digest).first()
        if image is not None:
            return image
    else:
        tag = ImageTag.objects.filter(name=str(parsed)).select_related("image").first()
        if tag is not None:
            return tag.image
    raise ImageNotFound(f"no such image: {parsed}", hint="pull, load or import it first")


def exists(ref: str) -> bool:
    try:
        resolve(ref)
    except (ImageNotFound, InvalidArgument):
        return False
    return True


def familiar_tags(image: Image) -> list[str]:
    return [reference.parse(t.name).familiar() for t in image.tags.all()]


def familiar_digests(image: Image) -> list[str]:
    out = []
    for row in image.repo_digests.all():
        repo, _, digest = row.name.partition("@")
        out.append(f"{reference.parse(repo).familiar_repository()}@{digest}")
    return out


def list_images(*, all: bool = False, filters: dict[str, list[str]] | None = None) -> list[ImageRow]:
    """List images one row per name, as `docker images` does; untagged images show as <none>."""
    filters = filters or {}
    for key in filters:
        if key not in _ID_FILTERS:
            raise InvalidArgument(f"invalid filter {key!r} (use {', '.join(_ID_FILTERS)})")
    qs = Image.objects.prefetch_related("tags", "repo_digests").annotate(n_children=Count("children"))
    for value in filters.get("dangling", []):
        dangling = value.lower() in ("1", "true")
        qs = qs.filter(tags__isnull=True) if dangling else qs.filter(tags__isnull=False)
    for key, op in (("before", "lt"), ("since", "gt")):
        for value in filters.get(key, []):
            pivot = resolve(value)
            qs = qs.filter(**{f"loaded__{op}": pivot.loaded})
    rows: list[ImageRow] = []
    for image in qs.distinct().order_by("-loaded"):
        labels = (image.config.get("config") or {}).get("Labels") or {}
        if not _labels_match(labels, filters.get("label", [])):
            continue
        tags = list(image.tags.all())
        digest = image.repo_digests.first()
        digest_str = digest.name.partition("@")[2] if digest else "<none>"
        if not tags:
            if not all and image.n_children and not filters.get("dangling"):
                continue  # an intermediate build image, shown only with -a
            if filters.get("reference"):
                continue
            rows.append(ImageRow(image, "<none>", "<none>", digest_str))
            continue
        for tag in tags:
            parsed = reference.parse(tag.name)
            if not _reference_match(parsed, filters.get("reference", [])):
                continue
            rows.append(ImageRow(image, parsed.familiar_repository(), parsed.tag or "<none>", digest_str))
    return rows


def _labels_match(labels: dict[str, str], wanted: list[str]) -> bool:
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def _reference_match(parsed: reference.Reference, patterns: list[str]) -> bool:
    if not patterns:
        return True
    names = {parsed.familiar(), parsed.familiar_repository(), str(parsed), parsed.repository}
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns for name in names)


def used_by(image: Image) -> list[str]:
    """Names of the containers created from this image."""
    return list(image.containers.values_list("name", flat=True))


def inspect(ref: str) -> dict[str, Any]:
    """Docker's `image inspect` shape."""
    image = resolve(ref)
    config = image.config
    return {
        "Id": image.id,
        "RepoTags": familiar_tags(image),
        "RepoDigests": familiar_digests(image),
        "Parent": image.parent_id or "",
        "Comment": _last_comment(config),
        "Created": config.get("created") or "",
        "Author": config.get("author", ""),
        "Config": config.get("config") or {},
        "Architecture": image.architecture,
        "Variant": config.get("variant", ""),
        "Os": image.os,
        "Size": image.size,
        "RootFS": {"Type": "layers", "Layers": list((config.get("rootfs") or {}).get("diff_ids") or [])},
        "Metadata": {"LastTagTime": image.loaded.strftime("%Y-%m-%dT%H:%M:%S.%fZ")},
    }


def _last_comment(config: dict[str, Any]) -> str:
    history = config.get("history") or []
    return (history[-1].get("comment") or "") if history else ""


def history(ref: str) -> list[dict[str, Any]]:
    """The image's history, newest first, with each non-empty step's layer size, as `docker history`."""
    image = resolve(ref)
    sizes = [il.layer.size for il in image.image_layers.select_related("layer").order_by("position")]
    entries = list(image.config.get("history") or [])
    if not entries:
        entries = [{"created": image.config.get("created", ""), "created_by": ""} for _ in sizes]
    out: list[dict[str, Any]] = []
    layer_index = 0
    for entry in entries:
        size = 0
        if not entry.get("empty_layer"):
            size = sizes[layer_index] if layer_index < len(sizes) else 0
            layer_index += 1
        out.append(
            {
                "Id": "<missing>",
                "Created": entry.get("created", ""),
                "CreatedBy": entry.get("created_by", ""),
                "Size": size,
                "Comment": entry.get("comment", ""),
                "Tags": [],
            }
        )
    out.reverse()
    if out:
        out[0]["Id"] = image.id
        out[0]["Tags"] = familiar_tags(image)
    return out


def tag(source: str, target: str) -> Image:
    """Point the name `target` at the image `source` names; a tag elsewhere moves."""
    image = resolve(source)
    parsed = reference.parse(target)
    if parsed.digest:
        raise BadReference(f"refusing to create a tag with a digest reference: {target}")
    imagestore.move_tag(image, str(parsed))
    events.record("image", "tag", object_id=image.id, object_name=parsed.familiar())
    return image


def remove(ref: str, *, force: bool = False) -> list[dict[str, str]]:
    """Untag or delete as `docker rmi` does. Returns [{"Untagged": name} | {"Deleted": id}, …].

    By name: remove that name; the image goes too when it was its last tag. By ID: delete the image.
    A container's image is a conflict unless forced; forced, the image only loses its names while a
    stopped container uses it. A running container's image cannot be deleted even with force.
    """
    image = resolve(ref)
    users = list(image.containers.values_list("name", "state"))
    running = [name for name, state in users if state in (ContainerState.RUNNING, ContainerState.PAUSED)]
    tags = list(image.tags.all())
    if not reference.looks_like_id(ref.strip()):
        name = str(reference.parse(ref.strip()))
        other_tags = [t for t in tags if t.name != name]
        if other_tags:
            return _untag(image, name)
        if users:
            if not force:
                raise InUse(
                    f'unable to remove repository reference "{ref}" (must force) - container '
                    f"{users[0][0]} is using its referenced image {image.short_id}"
                )
            return _untag(image, name)
    else:
        if running:
            raise InUse(
                f"unable to delete {image.short_id} (cannot be forced) - image is being used by running "
                f"container {', '.join(running)}"
            )
        if users and not force:
            raise InUse(
                f"unable to delete {image.short_id} (must be forced) - image is being used by stopped "
                f"container {', '.join(name for name, _ in users)}"
            )
        if len(tags) > 1 and not force:
            raise InUse(
                f"unable to delete {image.short_id} (must be forced) - image is referenced in multiple "
                "repositories"
            )
    out: list[dict[str, str]] = []
    for tag_row in tags:
        out.extend(_untag(image, tag_row.name))
    for digest_row in image.repo_digests.all():
        digest_row.delete()
        out.append({"Untagged": digest_row.name})
    if users:
        return out  # forced: the image stays, nameless, while containers use it
    parent_id = image.parent_id
    image_id, short_id = image.id, image.short_id  # Django clears the pk on delete
    for deleted in imagestore.delete_image(image):
        out.append({"Deleted": deleted})
    events.record("image", "delete", object_id=image_id, object_name=short_id)
    out.extend(_delete_unused_parents(parent_id))
    return out


def _delete_unused_parents(parent_id: str | None) -> list[dict[str, str]]:
    """Intermediate build images go with the last image built on them, as Docker does."""
    out: list[dict[str, str]] = []
    while parent_id:
        parent = Image.objects.filter(id=parent_id).first()
        if parent is None or parent.tags.exists() or parent.children.exists() or parent.containers.exists():
            break
        parent_id = parent.parent_id
        pid, short = parent.id, parent.short_id
        for deleted in imagestore.delete_image(parent):
            out.append({"Deleted": deleted})
        events.record("image", "delete", object_id=pid, object_name=short)
    return out


def _untag(image: Image, name: str) -> list[dict[str, str]]:
    if "@" in name:
        RepoDigest.objects.filter(name=name, image=image).delete()
    else:
        ImageTag.objects.filter(name=name, image=image).delete()
    familiar = _familiar(name)
    events.record("image", "untag", object_id=image.id, object_name=familiar)
    return [{"Untagged": familiar}]


def _familiar(name: str) -> str:
    try:
        return reference.parse(name).familiar()
    except BadReference:
        return name


def prune(*, all: bool = False) -> PruneResult:
    """Delete dangling images (all unused ones with all=True); never an image a container uses."""
    candidates = Image.objects.filter(containers__isnull=True)
    if not all:
        candidates = candidates.filter(tags__isnull=True)
    deleted: list[dict[str, str]] = []
    reclaimed = 0
    for image in candidates.distinct():
        if image.children.exists() and not all:
            continue
        tags = list(image.tags.all())
        freed = imagestore.unique_size(image)
        image_id, short_id = image.id, image.short_id  # Django clears the pk on delete
        for tag_row in tags:
            deleted.append({"Untagged": _familiar(tag_row.name)})
        for item in imagestore.delete_image(image):
            deleted.append({"Deleted": item})
        reclaimed += freed
        events.record("image", "delete", object_id=image_id, object_name=short_id, attributes={"prune": True})
    # What a crashed write left (unreferenced blobs and layer dirs, stale temp files) goes too.
    reclaimed += leftovers.reclaim().size
    return PruneResult(deleted=deleted, reclaimed=reclaimed)


def disk_usage() -> dict[str, int]:
    """Bytes held by images: all layers counted once, and what the dangling ones alone hold."""
    from engine.models import Layer

    total = sum(Layer.objects.values_list("size", flat=True))
    dangling = sum(imagestore.unique_size(i) for i in Image.objects.filter(Q(tags__isnull=True)).distinct())
    return {"total": total, "reclaimable": dangling}
