"""Typed fields of a JSON request body: a wrong type is a 400 that names the field.

The functions read one flat body: absent or null fields give the empty value, as Go's decoder does for
Docker. `Fields` reads nested objects (the create body, engine/api/createspec.py): absent is None, and
an error names the field's whole path.
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


# -- nested objects: errors name the field's whole path ("HostConfig.Mounts[0].Type") ----------------


def _what(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def wrong(field: str, expected: str, value: Any) -> InvalidArgument:
    return InvalidArgument(f"invalid value for {field}: expected {expected}, got {_what(value)}")


class Fields:
    """One JSON object of the body, with accessors that check types and name the field on error."""

    def __init__(self, data: Any, path: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise wrong(path or "the body", "an object", data)
        self.data = data
        self.path = path

    def name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def raw(self, key: str) -> Any:
        return self.data.get(key)

    def string(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise wrong(self.name(key), "a string", value)
        return value

    def boolean(self, key: str) -> bool:
        value = self.data.get(key)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise wrong(self.name(key), "a boolean", value)
        return value

    def integer(self, key: str) -> int | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise wrong(self.name(key), "an integer", value)
        return int(value)

    def strings(self, key: str) -> list[str] | None:
        """A list of strings (None when absent or null)."""
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise wrong(self.name(key), "a list of strings", value)
        return list(value)

    def str_slice(self, key: str) -> list[str] | None:
        """Docker's StrSlice: a list of strings, or one string meaning a one-element list."""
        value = self.data.get(key)
        if isinstance(value, str):
            return [value]
        return self.strings(key)

    def mapping(self, key: str) -> dict[str, Any]:
        value = self.data.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise wrong(self.name(key), "an object", value)
        return value

    def string_map(self, key: str) -> dict[str, str]:
        value = self.mapping(key)
        for k, v in value.items():
            if not isinstance(v, str):
                raise wrong(f"{self.name(key)}.{k}", "a string", v)
        return dict(value)

    def child(self, key: str) -> Fields:
        return Fields(self.data.get(key), self.name(key))
