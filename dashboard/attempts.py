"""What a refused or failed dashboard request was trying to do, in the audit log's own words.

The engine records what it did; a request that never reached the engine (a viewer's refused stop)
or that the engine refused is recorded by dashboard/errors.py from this description: the object
type and verb (the same ones the engine uses, so one filter finds both the done and the refused
removal of a volume), and the object's real ID and name when the URL or form names one.

The URL name says what was asked: `volume_remove` → volume remove, `images_prune` → image prune,
`container_action` with action=stop → container stop. Resolving the object is a best-effort
lookup: an unknown reference is kept as typed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest

from engine.errors import EngineError

# The engine's verb where the URL's differs.
_VERBS: dict[tuple[str, str], str] = {
    ("network", "remove"): "destroy",
    ("image", "remove"): "delete",
    ("container", "run"): "create",
    ("container", "terminal_token"): "exec",
    ("container", "file_upload"): "upload",
    ("container", "file_download"): "download",
}
_REF_KEYS = ("ref", "name", "image_id", "container")


@dataclass(frozen=True)
class Attempt:
    object_type: str
    action: str
    object_id: str = ""
    object_name: str = ""


def describe(request: HttpRequest) -> Attempt:
    """The object type, verb and object a request was about (never raises)."""
    match = getattr(request, "resolver_match", None)
    url_name = (match.url_name if match else "") or ""
    kwargs: dict[str, Any] = dict(match.kwargs) if match else {}
    if not url_name:
        return Attempt(
            "web", request.method.lower() if request.method else "request", object_name=request.path
        )
    prefix, _, verb = url_name.partition("_")
    object_type = prefix.removesuffix("s")[:16]
    if url_name in ("container_action", "containers_bulk"):
        verb = str(kwargs.get("action") or request.POST.get("action") or "action")
    verb = _VERBS.get((object_type, verb), verb) or ("view" if request.method == "GET" else "change")
    refs = _refs(request, kwargs, bulk=url_name == "containers_bulk")
    object_id, object_name = _resolve(object_type, refs)
    return Attempt(object_type, verb[:32], object_id[:128], object_name[:512])


def _refs(request: HttpRequest, kwargs: dict[str, Any], *, bulk: bool) -> list[str]:
    if bulk:
        return [str(r) for r in request.POST.getlist("ids")[:20]]
    for key in _REF_KEYS:
        value = kwargs.get(key) or (request.POST.get(key) if request.method == "POST" else None)
        if value:
            return [str(value).strip()]
    return []


def _resolve(object_type: str, refs: list[str]) -> tuple[str, str]:
    """(ID, name) of the named objects; several are joined with ", " (a bulk action)."""
    found = [_one(object_type, ref) for ref in refs if ref]
    if len(found) == 1:
        return found[0]
    return "", ", ".join(name for _, name in found)


def _one(object_type: str, ref: str) -> tuple[str, str]:
    from engine.services import containers, images, networks

    try:
        if object_type == "container":
            container = containers.resolve(ref)
            return container.id, container.name
        if object_type == "network":
            network = networks.resolve(ref)
            return network.id, network.name
        if object_type == "image":
            image = images.resolve(ref)
            return image.id, image.short_id if image.id.removeprefix("sha256:").startswith(ref) else ref
    except EngineError:
        pass
    except Exception:  # noqa: BLE001 — describing an error must never raise another one
        pass
    # Volumes are known by name; anything unresolved is recorded as it was asked for.
    return (ref if object_type == "volume" else ""), ref
