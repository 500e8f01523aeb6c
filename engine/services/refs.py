"""References as Docker reads them: a row by full ID, name or unique ID prefix; an image reference's parts.

Front ends parse image references here (not in engine/registry) so that they reach the engine only
through services.
"""

from __future__ import annotations

from typing import TypeVar

from django.db.models import Model

from engine.errors import InvalidArgument
from engine.registry import reference
from engine.registry.reference import Reference

M = TypeVar("M", bound=Model)


def find(model: type[M], ref: str, *, what: str) -> M | None:
    """The row whose ID or name is `ref`, else the one whose ID starts with it; None if none does.

    An empty ref, or a prefix shared by two IDs, is InvalidArgument (naming `what`).
    """
    if not ref:
        raise InvalidArgument(f"{what} name or ID is empty")
    objects = model._default_manager
    found = objects.filter(pk=ref).first() or objects.filter(name=ref).first()
    if found is not None or not all(c in "0123456789abcdef" for c in ref):
        return found
    matches = list(objects.filter(pk__startswith=ref)[:2])
    if len(matches) > 1:
        raise InvalidArgument(f"{what} ID prefix {ref} is ambiguous: give more characters")
    return matches[0] if matches else None


def parse_image(ref: str, *, default_tag: str | None = "latest") -> Reference:
    """The parts of image reference `ref`, normalised as Docker does (BadReference if it is not one)."""
    return reference.parse(ref, default_tag=default_tag)


def is_valid_tag(tag: str) -> bool:
    """True if `tag` is a valid image tag (letters, digits, `_`, `.`, `-`; at most 128)."""
    return reference.is_valid_tag(tag)
