"""Finding a row the way Docker does: by full ID, by name, or by a unique prefix of its ID."""

from __future__ import annotations

from typing import TypeVar

from django.db.models import Model

from engine.errors import InvalidArgument

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
