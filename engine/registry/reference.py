"""Image references: Docker's grammar and normalisation, as a pure function.

`parse("busybox")` gives `docker.io/library/busybox:latest`, exactly as `docker pull busybox` would
resolve it. The rules follow github.com/distribution/reference (`ParseNormalizedNamed`), so a name that
Docker accepts is accepted here and one it refuses is refused with a message a person can act on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from engine.errors import BadReference

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
NAME_TOTAL_LENGTH_MAX = 255

# The grammar, piece by piece (distribution/reference regexp.go describes the same language).
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
# Only plain hex-and-colon IPv6 literals: zone ids and embedded IPv4 are refused, as Docker does.
_IPV6 = r"\[[a-fA-F0-9:]+\]"
_DOMAIN = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_PATH = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
# Digests are checked strictly: the store only speaks sha256 with lowercase hex.
_DIGEST = r"sha256:[a-f0-9]{64}"

_DOMAIN_RE = re.compile(rf"^{_DOMAIN}$")
_PATH_RE = re.compile(rf"^{_PATH}$")
_TAG_RE = re.compile(rf"^{_TAG}$", re.ASCII)
_DIGEST_RE = re.compile(rf"^{_DIGEST}$")
# Any algorithm-looking digest, so a wrong one gets a digest-specific message instead of a generic one.
_ANY_DIGEST_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Za-z=_-]+$")
_REFERENCE_RE = re.compile(rf"^((?:{_DOMAIN}/)?{_PATH})(?::({_TAG}))?(?:@(.+))?$", re.ASCII)
_FULL_ID_RE = re.compile(r"^[a-f0-9]{64}$")
_ID_PREFIX_RE = re.compile(r"^(?:sha256:)?[a-f0-9]{12,64}$")


@dataclass(frozen=True)
class Reference:
    """A normalised image reference. `domain` and `path` are never empty; tag and digest may be None."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """The fully qualified repository name, e.g. `docker.io/library/busybox`."""
        return f"{self.domain}/{self.path}"

    @property
    def name(self) -> str:
        """Alias of `repository`, matching Docker's `Named.Name()`."""
        return self.repository

    def __str__(self) -> str:
        return self.repository + self._suffix()

    def familiar_repository(self) -> str:
        """The repository as `docker images` prints it: `busybox`, `user/app`, `ghcr.io/a/b`."""
        if self.domain != DEFAULT_DOMAIN:
            return self.repository
        path = self.path
        rest = path[len(OFFICIAL_REPO_PREFIX) :]
        # Only single-component official names are shortened: `library/foo/bar` stays as it is.
        if path.startswith(OFFICIAL_REPO_PREFIX) and "/" not in rest:
            return rest
        return path

    def familiar(self) -> str:
        """The short form Docker prints: `busybox:latest`, `myreg:5000/x/y:1`, `ghcr.io/a/b:tag`."""
        return self.familiar_repository() + self._suffix()

    def with_tag(self, tag: str) -> Reference:
        """Return a copy carrying `tag` (digest kept); raise BadReference if the tag is invalid."""
        _check_tag(tag)
        return replace(self, tag=tag)

    def with_digest(self, digest: str) -> Reference:
        """Return a copy carrying `digest` (tag kept); raise BadReference unless it is sha256:<64 hex>."""
        _check_digest(digest)
        return replace(self, digest=digest)

    def _suffix(self) -> str:
        out = ""
        if self.tag is not None:
            out += ":" + self.tag
        if self.digest is not None:
            out += "@" + self.digest
        return out


def parse(ref: str, *, default_tag: str | None = "latest") -> Reference:
    """Parse and normalise `ref` as Docker does.

    `busybox` → docker.io/library/busybox:latest, `user/app` → docker.io/user/app:latest,
    `index.docker.io/x` → docker.io/library/x. `default_tag` is added when the reference has neither a
    tag nor a digest (pass None to keep a bare repository). Raise BadReference for anything Docker
    refuses, with Docker's wording where it has one.
    """
    if not isinstance(ref, str) or ref == "":
        raise BadReference("invalid reference format: repository name must have at least one component")
    if _FULL_ID_RE.match(ref):
        raise BadReference(
            f"invalid repository name ({ref}), cannot specify 64-byte hexadecimal strings",
            hint="use the image ID itself, not as a repository name",
        )
    domain, remainder = _split_domain(ref)
    remote = remainder.split(":", 1)[0] if ":" in remainder else remainder
    if remote.lower() != remote:
        raise BadReference(f"invalid reference format: repository name ({remote}) must be lowercase")

    full = f"{domain}/{remainder}"
    match = _REFERENCE_RE.match(full)
    if match is None:
        raise BadReference(f"invalid reference format: {ref!r}", hint=_explain(ref, remainder))
    name, tag, digest = match.group(1), match.group(2), match.group(3)
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise BadReference(
            f"invalid reference format: repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
        )
    if digest is not None:
        _check_digest(digest)
    path = name[len(domain) + 1 :]
    if tag is None and digest is None and default_tag is not None:
        _check_tag(default_tag)
        tag = default_tag
    return Reference(domain=domain, path=path, tag=tag, digest=digest)


def parse_repository(name: str) -> Reference:
    """Parse a repository name with no tag or digest (`docker push` targets, `docker images` filters)."""
    ref = parse(name, default_tag=None)
    if ref.tag is not None or ref.digest is not None:
        raise BadReference(f"invalid repository name {name!r}: it must not carry a tag or digest")
    return ref


def looks_like_id(s: str) -> bool:
    """Tell an image/container ID (or a 12–64 hex prefix, optionally `sha256:`) from a name.

    A 12-character hex string is also a valid repository name; callers should try it as an ID first,
    as Docker does, and fall back to the name.
    """
    return bool(_ID_PREFIX_RE.match(s))


def is_valid_tag(tag: str) -> bool:
    """Whether `tag` matches Docker's tag grammar (`[\\w][\\w.-]{0,127}`)."""
    return bool(_TAG_RE.match(tag))


def _split_domain(name: str) -> tuple[str, str]:
    """Split off the registry host exactly as Docker's splitDockerDomain does.

    The first component is a domain iff it contains `.` or `:`, is `localhost`, or has uppercase
    letters (a path component never may, so `Foo/bar` names the registry host `Foo`).
    """
    first, sep, rest = name.partition("/")
    if not sep or (not any(c in first for c in ".:") and first != "localhost" and first.lower() == first):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, rest
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def _check_tag(tag: str) -> None:
    if not isinstance(tag, str) or not _TAG_RE.match(tag):
        raise BadReference(
            f"invalid tag format: {tag!r}",
            hint="a tag is up to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'",
        )


def _check_digest(digest: str) -> None:
    if isinstance(digest, str) and _DIGEST_RE.match(digest):
        return
    if isinstance(digest, str) and _ANY_DIGEST_RE.match(digest) and not digest.startswith("sha256:"):
        raise BadReference(f"unsupported digest algorithm: {digest!r}", hint="only sha256 is supported")
    raise BadReference(
        f"invalid digest format: {digest!r}", hint="a digest is 'sha256:' followed by 64 lowercase hex digits"
    )


def _explain(ref: str, remainder: str) -> str:
    """Best-effort hint naming the part of a refused reference that is wrong."""
    if any(c.isspace() for c in ref):
        return "references cannot contain spaces"
    if "://" in ref:
        return "give a registry host and repository, not a URL"
    name_part = remainder.split("@", 1)[0]
    if ":" in name_part:
        tag = name_part.rsplit(":", 1)[1]
        if not _TAG_RE.match(tag):
            return f"tag {tag!r} is not valid: up to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'"
    if "//" in ref or ref.endswith("/") or ref.startswith("/"):
        return "repository path components cannot be empty"
    return (
        "a repository path is lowercase letters, digits and separators ('.', '_', '__', '-') "
        "between alphanumeric characters, joined by '/'"
    )
