"""Image archives read: `docker save` and OCI-layout tars (writing them is `engine.image.archivewriter`).

Reading treats the archive as hostile: member names are checked (no `..`, no absolute paths, no links
out of the archive, no links posing as blobs), every path a manifest names is checked the same way,
every digest is parsed strictly, JSON documents are size capped and verified against their digests.
Layers are never loaded into memory: callers stream them with `ArchiveContents.open_member`, and the
blob store verifies their digests while it copies them.

Over 400 lines because every hostile-archive check (names, links, digests, nesting, sizes) guards the same
ArchiveContents, for both the docker and the OCI layout.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import posixpath
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, BinaryIO, cast

import zstandard

from engine.errors import InvalidArgument, RuntimeFailure, UnsafeArchive
from engine.image import formats, jsonlimits
from engine.store.compression import detect
from engine.store.digests import parse_digest, sha256_digest
from engine.store.diskspace import Reserve, full_disk_error

CHUNK = 1 << 20
MAX_MEMBERS = 200_000
MAX_HEADER_READ = 1 << 20
# A compressed outer archive is expanded to a temp file; this bounds what a decompression bomb can take.
MAX_EXPANDED_SIZE = 64 << 30
_MAX_INDEX_DEPTH = 4
_MAX_LINK_DEPTH = 8
_LAYER_MEDIA_BY_SNIFF = {
    "gzip": formats.OCI_LAYER_GZIP,
    "zstd": formats.OCI_LAYER_ZSTD,
    "tar": formats.OCI_LAYER,
}


@dataclass(frozen=True)
class ArchiveLayer:
    """A layer inside an archive. `digest` is the blob digest when the archive names it (a claim the
    blob store must verify while copying); `media_type` comes from the manifest or is sniffed."""

    member_name: str
    digest: str | None
    size: int
    media_type: str | None


@dataclass(frozen=True)
class ArchiveImage:
    config: bytes
    config_digest: str
    layers: tuple[ArchiveLayer, ...]
    repo_tags: tuple[str, ...]


class ArchiveContents:
    """An opened, validated archive. Use as a context manager; streams die with it.

    `format` is "docker" (a manifest.json was found, preferred because it carries RepoTags) or "oci".
    Streams share the one open file: read them from one thread at a time.
    """

    def __init__(self, tar: tarfile.TarFile, fileobj: IO[bytes], members: dict[str, tarfile.TarInfo]) -> None:
        self._tar = tar
        self._fileobj = fileobj
        self._members = members
        self.images: tuple[ArchiveImage, ...] = ()
        self.format = ""

    def __enter__(self) -> ArchiveContents:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the archive (and delete the expanded temp file of a compressed one)."""
        self._tar.close()
        self._fileobj.close()

    def open_member(self, name: str) -> BinaryIO:
        """Return a stream of member `name`'s bytes (links inside the archive are followed safely).

        Raise UnsafeArchive for unsafe names, InvalidArgument if there is no such regular file.
        """
        info = self._resolve(_clean_name(name, "requested member"))
        stream = self._tar.extractfile(info)
        if stream is None:
            raise InvalidArgument(f"archive member {name} is not a regular file")
        return cast(BinaryIO, io.BufferedReader(_MemberStream(stream, name), CHUNK))

    def member_size(self, name: str) -> int:
        """The size in bytes of member `name` (after following links)."""
        return self._resolve(_clean_name(name, "requested member")).size

    def _resolve(self, name: str) -> tarfile.TarInfo:
        for _ in range(_MAX_LINK_DEPTH):
            info = self._members.get(name)
            if info is None:
                raise InvalidArgument(f"archive has no file {name!r}", hint="the archive is incomplete")
            if info.isreg():
                return info
            if info.issym():
                name = _symlink_target(name, info.linkname)
            elif info.islnk():
                name = _clean_name(info.linkname, "hard link target")
            else:
                raise UnsafeArchive(f"archive member {name!r} is not a regular file")
        raise UnsafeArchive(f"archive member {name!r}: too many levels of links")

    def _read_small(self, name: str, cap: int, what: str) -> bytes:
        info = self._resolve(_clean_name(name, what))
        if info.size > cap:
            raise UnsafeArchive(f"{what} {name!r} is {info.size} bytes, over the {cap} byte limit")
        with self._tar.extractfile(info) as stream:  # type: ignore[union-attr]
            return _read_exact(stream, info.size, name)

    def _read_blob(self, desc: formats.Descriptor, cap: int, what: str) -> bytes:
        if desc.size > cap:
            raise UnsafeArchive(f"{what} {desc.digest} is {desc.size} bytes, over the {cap} byte limit")
        data = self._read_small(blob_name(desc.digest), cap, what)
        if len(data) != desc.size or sha256_digest(data) != desc.digest:
            raise InvalidArgument(f"{what} {desc.digest} in the archive does not match its digest or size")
        return data

    def _layer(self, name: str, digest: str | None, size: int | None, media_type: str | None) -> ArchiveLayer:
        info = self._resolve(_clean_name(name, "layer path"))
        if size is not None and info.size != size:
            raise InvalidArgument(f"layer {name!r} is {info.size} bytes but its manifest says {size}")
        if media_type is None:
            with self._tar.extractfile(info) as stream:  # type: ignore[union-attr]
                media_type = _LAYER_MEDIA_BY_SNIFF.get(detect(stream.read(8)))
        return ArchiveLayer(_member_key(info), digest, info.size, media_type)


def read_archive(
    path: Path, *, tmpdir: Path | None = None, reserve: Reserve | None = None
) -> ArchiveContents:
    """Open an image archive (`docker save` format or OCI image layout) and list its images.

    A gzip, bzip2, xz or zstd compressed archive is first expanded into an anonymous temp file (in
    `tmpdir`, capped at MAX_EXPANDED_SIZE and at the free-space `reserve`, zero runs left as holes)
    because layers are later read by random access. Raise
    InvalidArgument / UnsafeArchive for anything malformed or hostile; nothing is left open then.
    """
    try:
        fileobj: IO[bytes] = open(path, "rb")  # noqa: SIM115 - owned by the returned ArchiveContents
    except OSError as exc:
        raise InvalidArgument(f"cannot open archive {path}: {exc.strerror}") from exc
    tar = None
    try:
        kind = detect(fileobj.read(8))
        fileobj.seek(0)
        if kind != "tar":
            fileobj = _expand(fileobj, kind, tmpdir, reserve)
        guarded = _HeaderGuard(fileobj)
        tar = tarfile.open(fileobj=cast(IO[bytes], guarded), mode="r:")
        members = _index_members(tar)
        guarded.headers_done = True
        contents = ArchiveContents(tar, fileobj, members)
        if "manifest.json" in contents._members:
            contents.format, contents.images = "docker", _docker_images(contents)
        elif "index.json" in contents._members:
            contents.format, contents.images = "oci", _oci_images(contents)
        else:
            raise InvalidArgument(
                "not an image archive: it has neither manifest.json (docker save) nor index.json (OCI layout)"
            )
        return contents
    except BaseException as exc:
        if tar is not None:
            tar.close()
        fileobj.close()
        if isinstance(exc, tarfile.TarError | EOFError):
            raise InvalidArgument(f"{path} is not a valid tar archive: {exc}") from exc
        if isinstance(exc, OSError):
            raise InvalidArgument(f"cannot read archive {path}: {exc}") from exc
        raise


def _expand(src: IO[bytes], kind: str, tmpdir: Path | None, reserve: Reserve | None = None) -> IO[bytes]:
    """Decompress `src` (closing it) into an anonymous temp file, refusing to grow past the cap."""
    openers: dict[str, Callable[[IO[bytes]], Any]] = {
        "gzip": lambda f: gzip.GzipFile(fileobj=f, mode="rb"),
        "bzip2": lambda f: bz2.BZ2File(f, "rb"),
        "xz": lambda f: lzma.LZMAFile(f, "rb"),
        "zstd": lambda f: zstandard.ZstdDecompressor().stream_reader(f),
    }
    out = tempfile.TemporaryFile(dir=tmpdir)  # noqa: SIM115 - returned to the caller
    try:
        with src, openers[kind](src) as stream:
            total = 0
            while chunk := stream.read(CHUNK):
                total += len(chunk)
                if total > MAX_EXPANDED_SIZE:
                    raise UnsafeArchive(f"archive expands to more than {MAX_EXPANDED_SIZE} bytes")
                if chunk[0] == 0 and chunk[-1] == 0 and not chunk.strip(b"\0"):
                    out.seek(len(chunk), os.SEEK_CUR)  # a hole: zeros cost no disk
                    continue
                try:
                    out.write(chunk)
                except OSError as exc:  # our disk, not the archive, is at fault (ENOSPC)
                    raise full_disk_error(exc, tmpdir or "/tmp") or RuntimeFailure(
                        f"cannot expand the archive into a temp file: {exc}"
                    ) from exc
                if reserve is not None:
                    reserve.written(len(chunk))
        out.truncate(total)
        out.seek(0)
        return out
    except (OSError, EOFError, lzma.LZMAError, zstandard.ZstdError) as exc:
        out.close()
        raise InvalidArgument(f"cannot decompress the {kind} archive: {exc}") from exc
    except BaseException:
        out.close()
        raise


class _HeaderGuard:
    """The outer file as tarfile sees it: while headers are parsed, no single read may be huge.

    tarfile reads a PAX or GNU long-name record whole, sized by the header itself; a forged header
    would make it allocate gigabytes (A9). Member data is only read after indexing, in bounded reads.
    """

    mode = "rb"

    def __init__(self, fileobj: IO[bytes]) -> None:
        self._f = fileobj
        self.headers_done = False

    def read(self, n: int = -1) -> bytes:
        if not self.headers_done and (n < 0 or n > MAX_HEADER_READ):
            raise UnsafeArchive("archive has an oversized tar header record")
        return self._f.read(n)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def close(self) -> None:
        self._f.close()


class _MemberStream(io.RawIOBase):
    """A member's bytes; a truncated or unreadable archive surfaces as InvalidArgument, not OSError."""

    def __init__(self, inner: IO[bytes], name: str) -> None:
        super().__init__()
        self._inner = inner
        self._name = name

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            return self._inner.readinto(buffer)  # type: ignore[attr-defined]
        except (tarfile.TarError, OSError) as exc:
            raise InvalidArgument(f"archive member {self._name!r} cannot be read: {exc}") from exc

    def close(self) -> None:
        self._inner.close()
        super().close()


def _index_members(tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    """Map every non-directory member's clean name to its header; refuse hostile names and links."""
    members: dict[str, tarfile.TarInfo] = {}
    for count, info in enumerate(tar):
        if count >= MAX_MEMBERS:
            raise UnsafeArchive(f"archive has more than {MAX_MEMBERS} members")
        name = _clean_name(info.name, "archive member")
        if not name or info.isdir():
            continue
        if name in members:
            raise UnsafeArchive(f"archive member {name!r} appears twice")
        if info.issym() or info.islnk():
            if name.startswith("blobs/"):
                raise UnsafeArchive(f"archive member {name!r} is a link; blobs must be regular files")
            if info.issym():
                _symlink_target(name, info.linkname)
            else:
                _clean_name(info.linkname, "hard link target")
        members[name] = info
    return members


def _member_key(info: tarfile.TarInfo) -> str:
    return _clean_name(info.name, "archive member")


def _clean_name(name: str, what: str) -> str:
    """Normalise a member path (`./a//b` → `a/b`); raise UnsafeArchive if absolute or containing `..`."""
    if not isinstance(name, str) or "\x00" in name or name.startswith("/"):
        raise UnsafeArchive(f"{what} {name!r} is an absolute or invalid path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive(f"{what} {name!r} points outside the archive")
    return "/".join(parts)


def _symlink_target(name: str, linkname: str) -> str:
    if linkname.startswith("/"):
        raise UnsafeArchive(f"archive member {name!r} is a symlink to an absolute path")
    target = posixpath.normpath(posixpath.join(posixpath.dirname(name), linkname))
    if target == ".." or target.startswith("../") or target == ".":
        raise UnsafeArchive(f"archive member {name!r} is a symlink pointing outside the archive")
    return target


def blob_name(digest: str) -> str:
    return "blobs/sha256/" + parse_digest(digest)[len("sha256:") :]


def _digest_from_path(name: str, what: str) -> str | None:
    """The digest a `blobs/...` path claims (strictly parsed), or None for other paths."""
    clean = _clean_name(name, what)
    if not clean.startswith("blobs/"):
        return None
    parts = clean.split("/")
    if len(parts) != 3:
        raise InvalidArgument(f"{what} {name!r} is not a blobs/<algorithm>/<hex> path")
    try:
        return parse_digest(f"{parts[1]}:{parts[2]}")
    except InvalidArgument as exc:
        raise InvalidArgument(f"{what} {name!r} does not name a valid digest", hint=exc.hint) from exc


def _read_exact(stream: IO[bytes], size: int, name: str) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise InvalidArgument(f"archive member {name!r} is truncated")
    return data


def _json(data: bytes, what: str) -> Any:
    jsonlimits.check_depth(data, what)  # json recurses per level: a deep document is a RecursionError
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"{what} is not valid JSON: {exc}") from exc


def _str_list(value: object, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"{what} must be a list of strings")
    return list(value)


def _checked_config(data: bytes, claimed: str | None, layer_count: int, what: str) -> str:
    digest = sha256_digest(data)
    if claimed is not None and claimed != digest:
        raise InvalidArgument(f"{what} does not match its digest {claimed}")
    if len(formats.parse_config(data).diff_ids) != layer_count:
        raise InvalidArgument(f"{what} lists a different number of layers than its manifest")
    return digest


def _docker_images(contents: ArchiveContents) -> tuple[ArchiveImage, ...]:
    """Images from `docker save`'s manifest.json (legacy layout and docker 25+ OCI layout alike)."""
    entries = _json(
        contents._read_small("manifest.json", formats.MAX_DOCUMENT_SIZE, "manifest.json"), "manifest.json"
    )
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise InvalidArgument("manifest.json must be a list of objects")
    images = []
    for entry in entries:
        config_name = entry.get("Config")
        if not isinstance(config_name, str):
            raise InvalidArgument("manifest.json: Config must be a path string")
        layer_names = _str_list(entry.get("Layers"), "manifest.json Layers")
        tags = _str_list(entry.get("RepoTags"), "manifest.json RepoTags")
        claimed = _digest_from_path(config_name, "config path")
        if claimed is None:
            # The legacy layout names the config <hex>.json after its own digest.
            stem = posixpath.basename(config_name).removesuffix(".json")
            claimed = f"sha256:{stem}" if _is_hex64(stem) else None
        config = contents._read_small(config_name, formats.MAX_CONFIG_SIZE, "image config")
        config_digest = _checked_config(config, claimed, len(layer_names), f"image config {config_name!r}")
        layers = tuple(
            contents._layer(name, _digest_from_path(name, "layer path"), None, None) for name in layer_names
        )
        images.append(ArchiveImage(config, config_digest, layers, tuple(dict.fromkeys(tags))))
    return tuple(images)


def _is_hex64(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _oci_images(contents: ArchiveContents) -> tuple[ArchiveImage, ...]:
    """Images from an OCI image layout: one per distinct manifest, tags from index annotations."""
    layout = _json(contents._read_small("oci-layout", formats.MAX_DOCUMENT_SIZE, "oci-layout"), "oci-layout")
    if not isinstance(layout, dict) or not isinstance(layout.get("imageLayoutVersion"), str):
        raise InvalidArgument("oci-layout must name an imageLayoutVersion")
    index = formats.parse_index(contents._read_small("index.json", formats.MAX_DOCUMENT_SIZE, "index.json"))
    entries = list(index.manifests)
    plain = [d for d in entries if d.media_type in formats.MANIFEST_MEDIA_TYPES]
    if len({d.platform for d in plain}) > 1 and all(d.platform for d in plain):
        # A multi-platform layout written without an index blob: keep only this host's image.
        chosen = _choose(plain)
        entries = [d for d in entries if d not in plain or (chosen and d.digest == chosen.digest)]
    found: dict[str, tuple[formats.Descriptor, list[str]]] = {}
    for desc in entries:
        if desc.media_type in formats.INDEX_MEDIA_TYPES:
            picked = _pick_from_index(contents, desc, 1)
            if picked is None:
                raise InvalidArgument(
                    f"index {desc.digest} has no image for this platform ({formats.host_platform()})"
                )
        elif desc.media_type in formats.MANIFEST_MEDIA_TYPES:
            picked = desc
        else:
            continue  # artifacts, signatures: not images
        _, tags = found.setdefault(picked.digest, (picked, []))
        tags.extend(t for t in _tags_from(desc.annotations) if t not in tags)
    images = []
    for manifest_desc, tags in found.values():
        manifest = formats.parse_manifest(
            contents._read_blob(manifest_desc, formats.MAX_DOCUMENT_SIZE, "image manifest")
        )
        config = contents._read_blob(manifest.config, formats.MAX_CONFIG_SIZE, "image config")
        _checked_config(
            config, manifest.config.digest, len(manifest.layers), f"image config {manifest.config.digest}"
        )
        layers = tuple(
            contents._layer(blob_name(d.digest), d.digest, d.size, d.media_type) for d in manifest.layers
        )
        images.append(ArchiveImage(config, manifest.config.digest, layers, tuple(tags)))
    return tuple(images)


def _choose(manifests: Sequence[formats.Descriptor]) -> formats.Descriptor | None:
    return formats.select_manifest(list(manifests), formats.host_platform()) or formats.select_manifest(
        list(manifests), formats.Platform(os="linux", architecture="amd64")
    )


def _pick_from_index(
    contents: ArchiveContents, desc: formats.Descriptor, depth: int
) -> formats.Descriptor | None:
    if depth > _MAX_INDEX_DEPTH:
        raise UnsafeArchive("image indexes are nested too deeply")
    index = formats.parse_index(contents._read_blob(desc, formats.MAX_DOCUMENT_SIZE, "image index"))
    chosen = _choose(index.manifests)
    if chosen is not None:
        return chosen
    plain = [d for d in index.manifests if d.media_type in formats.MANIFEST_MEDIA_TYPES]
    if len(plain) == 1 and plain[0].platform is None:
        return plain[0]
    for nested in index.manifests:
        if nested.media_type in formats.INDEX_MEDIA_TYPES:
            found = _pick_from_index(contents, nested, depth + 1)
            if found is not None:
                return found
    return None


def _tags_from(annotations: dict[str, str]) -> list[str]:
    """Names from OCI annotations; a bare ref.name (`1.0`, `latest`) is only a tag, so it names nothing."""
    full = annotations.get(formats.ANNOTATION_CONTAINERD_NAME)
    if full:
        return [full]
    ref_name = annotations.get(formats.ANNOTATION_REF_NAME, "")
    if ":" in ref_name or "/" in ref_name:
        return [ref_name]
    return []
