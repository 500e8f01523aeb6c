"""Typed fields of a JSON request body: a wrong type is a 400 that names the field.

Absent or null fields give the empty value, as Go's decoder does for Docker.
"""

from __future__ import annotations

from typing import Any

from engine.errors import InvalidArgument


def boolean(body: dict[str, Any], key: str) -> bool:
    value = body.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidArgument(f"{key} must be a boolean, not {type(value).__name__}")
    return value


def string(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidArgument(f"{key} must be a string, not {type(value).__name__}")
    return value


def strings(body: dict[str, Any], key: str) -> list[str]:
    """A list of strings; a lone string counts as a list of one (Docker's strslice)."""
    value = body.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"{key} must be a list of strings")
    return value


def string_map(value: Any, what: str) -> dict[str, str]:
    """An object of strings such as Labels or DriverOpts."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidArgument(f"{what} must be an object of strings")
    return {str(k): v for k, v in value.items()}
