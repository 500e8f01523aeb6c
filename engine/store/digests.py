"""Content digests: strict parsing, hashing and OCI chain IDs.

Pure helpers. A digest string reaches file paths in the blob and layer stores, so it is parsed
strictly (attack A29, "digest string as path") before anything else looks at it: only
``sha256:`` followed by exactly 64 lowercase hex digits is accepted, and the value is returned
unchanged so that callers cannot accidentally use a normalised form that differs from the input.
"""

from __future__ import annotations

import hashlib
import re

from engine.errors import InvalidArgument

ALGORITHM = "sha256"

# fullmatch + an explicit character class: no re.IGNORECASE, no trailing-newline leniency of "$".
_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")


def parse_digest(value: str) -> str:
    """Return ``value`` unchanged if it is ``sha256:`` + 64 lowercase hex digits.

    Raise ``InvalidArgument`` for anything else: other algorithms, upper case, short or long hex,
    path separators, whitespace, non-strings.
    """
    if not isinstance(value, str) or _DIGEST_RE.fullmatch(value) is None:
        shown = value[:80] if isinstance(value, str) else type(value).__name__
        raise InvalidArgument(
            f"invalid digest: {shown!r}", hint="expected sha256: followed by 64 lowercase hex digits"
        )
    return value


def is_digest(value: object) -> bool:
    """Tell whether ``value`` is a digest string that ``parse_digest`` would accept."""
    return isinstance(value, str) and _DIGEST_RE.fullmatch(value) is not None


def digest_hex(digest: str) -> str:
    """Return the 64-character hex part of a validated digest (raise ``InvalidArgument`` if invalid)."""
    return parse_digest(digest)[len(ALGORITHM) + 1 :]


def sha256_digest(data: bytes) -> str:
    """Return the ``sha256:<hex>`` digest of ``data``."""
    return f"{ALGORITHM}:{hashlib.sha256(data).hexdigest()}"


def chain_id(diff_ids: list[str]) -> str:
    """Return the OCI chain ID of a stack of layers given bottom-most first.

    ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)), as in the
    OCI image spec (config.md, "Layer ChainID"). Raise ``InvalidArgument`` for an empty list or an
    invalid diff ID.
    """
    if not diff_ids:
        raise InvalidArgument("cannot compute a chain ID of zero layers")
    current = parse_digest(diff_ids[0])
    for diff_id in diff_ids[1:]:
        current = sha256_digest(f"{current} {parse_digest(diff_id)}".encode("ascii"))
    return current


def chain_ids(diff_ids: list[str]) -> list[str]:
    """Return the chain ID of every prefix of ``diff_ids`` (one per layer, bottom-most first)."""
    result: list[str] = []
    for diff_id in diff_ids:
        parse_digest(diff_id)
        if not result:
            result.append(diff_id)
        else:
            result.append(sha256_digest(f"{result[-1]} {diff_id}".encode("ascii")))
    return result
