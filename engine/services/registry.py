"""Images to and from registries: pull, push, login, logout.

`pull` and `push` take a keyword-only `progress` callable (engine.progress) and report per layer, plus
OutputLine events for the summary lines Docker prints ("Digest: …", "Status: …"), so a CLI and a
dashboard Job show the same thing. The reference is parsed before any network traffic; a pull that fails
part-way leaves no image row and no half blob (imagestore writes records last, blobs verified).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, TypeVar, cast

from engine import conf, events
from engine.errors import (
    BadReference,
    DigestMismatch,
    EngineError,
    ImageNotFound,
    InvalidArgument,
    NotFound,
    RegistryError,
)
from engine.image import formats
from engine.models import Image, RepoDigest
from engine.progress import CountingReader, LayerProgress, OutputLine, Progress, ignore
from engine.registry import reference
from engine.registry.auth import Credentials, CredentialStore, normalise_server
from engine.registry.client import FetchedManifest, RegistryClient
from engine.services import images, imagestore, staging

logger = logging.getLogger(__name__)

LAYER_ATTEMPTS = 3
T = TypeVar("T")


@dataclass(frozen=True)
class PushResult:
    """What a push stored: the manifest's digest and size under `reference`."""

    reference: str
    digest: str
    size: int


def credential_store() -> CredentialStore:
    return CredentialStore(conf.root() / "auth.json")


def client_for(domain: str, credentials: Credentials | None = None) -> RegistryClient:
    """A client for `domain` carrying `credentials`, else the stored ones, if any."""
    return RegistryClient(domain, credentials=credentials or credential_store().get(domain))


def parse_platform(value: str | None) -> formats.Platform:
    """`os/arch[/variant]` → Platform (the host's when None); raise InvalidArgument if malformed."""
    if not value:
        return formats.host_platform()
    parts = value.strip().lower().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise InvalidArgument(f"invalid platform {value!r}", hint="use os/arch[/variant], e.g. linux/arm64")
    return formats.Platform(os=parts[0], architecture=parts[1], variant=parts[2] if len(parts) == 3 else None)


def pull(
    ref: str,
    *,
    platform: str | None = None,
    progress: Progress = ignore,
    credentials: Credentials | None = None,
) -> Image:
    """Pull `ref` (name[:tag] or name@digest) and return the stored image.

    Tags the image with the reference when pulled by tag and records repository@manifest-digest.
    Raise BadReference before any traffic, ImageNotFound for an unknown manifest or platform,
    RegistryAuthError/RegistryError for registry trouble, InvalidArgument for a corrupt image.
    """
    parsed = reference.parse(ref.strip())
    want = parse_platform(platform)
    before = _existing(parsed)
    try:
        image, manifest_digest = _pull(parsed, want, progress, credentials)
    except EngineError as exc:
        events.record("image", "pull", object_name=parsed.familiar(), result="error", message=str(exc))
        raise
    events.record("image", "pull", object_id=image.id, object_name=parsed.familiar())
    progress(OutputLine(f"Digest: {manifest_digest}"))
    if before == image.id:
        progress(OutputLine(f"Status: Image is up to date for {parsed.familiar()}"))
    else:
        progress(OutputLine(f"Status: Downloaded newer image for {parsed.familiar()}"))
    return image


def _existing(parsed: reference.Reference) -> str | None:
    try:
        return images.resolve(str(parsed)).id
    except (ImageNotFound, InvalidArgument):
        return None


@staging.staged()  # a refused or cancelled pull leaves no blob or layer behind
def _pull(
    parsed: reference.Reference, want: formats.Platform, progress: Progress, credentials: Credentials | None
) -> tuple[Image, str]:
    client = client_for(parsed.domain, credentials)
    where = parsed.digest or parsed.tag or "latest"
    progress(OutputLine(f"{where}: Pulling from {parsed.path}"))
    top = client.get_manifest(parsed.path, where)
    manifest = _image_manifest(client, parsed, top, want)
    config = manifest.config
    store = imagestore.blob_store()
    if store.exists(config.digest) and store.verify(config.digest):
        with store.open(config.digest) as handle:
            config_bytes = handle.read(formats.MAX_CONFIG_SIZE + 1)
    else:
        config_bytes = client.get_blob(
            parsed.path, config.digest, size=config.size, cap=formats.MAX_CONFIG_SIZE
        )
    image_config = formats.parse_config(config_bytes)
    if len(image_config.diff_ids) != len(manifest.layers):
        raise InvalidArgument(
            f"image {parsed.familiar()} is corrupt: its config names {len(image_config.diff_ids)} layers, "
            f"its manifest {len(manifest.layers)}"
        )
    stored: list[imagestore.StoredLayer] = []
    parent: str | None = None
    for desc, diff_id in zip(manifest.layers, image_config.diff_ids, strict=True):
        short = desc.digest[7:19]
        known = imagestore.find_layer(parent, desc.digest)
        if known is not None:
            progress(LayerProgress(short, desc.size, desc.size, "Already exists"))
        else:
            known = _download_layer(client, parsed.path, desc, parent, progress)
            progress(LayerProgress(short, desc.size, desc.size, "Pull complete"))
        if known.diff_id != diff_id:
            raise InvalidArgument(
                f"image {parsed.familiar()} is corrupt: layer {desc.digest} unpacks to {known.diff_id}, "
                f"but its config says {diff_id}"
            )
        stored.append(known)
        parent = known.chain_id
    tags = [str(parsed)] if parsed.tag and not parsed.digest else []
    image, _moved = imagestore.commit_image(
        config_bytes, stored, tags=tags, repo_digests=[f"{parsed.repository}@{top.digest}"]
    )
    return image, top.digest


def _image_manifest(
    client: RegistryClient, parsed: reference.Reference, top: FetchedManifest, want: formats.Platform
) -> formats.Manifest:
    """Parse the fetched document; for an index, fetch (and verify) the manifest for `want`."""
    if _is_index(top):
        index = _parse(formats.parse_index, top.data, parsed)
        chosen = formats.select_manifest(index.manifests, want)
        if chosen is None:
            plat = "/".join(p for p in (want.os, want.architecture, want.variant) if p)
            raise ImageNotFound(
                f"no matching manifest for {plat} in the manifest list entries of {parsed.familiar()}"
            )
        child = client.get_manifest(parsed.path, chosen.digest)
        if _is_index(child):
            raise RegistryError(
                f"{parsed.familiar()}: an index inside an index is not supported", permanent=True
            )
        return _parse(formats.parse_manifest, child.data, parsed)
    return _parse(formats.parse_manifest, top.data, parsed)


def _is_index(fetched: FetchedManifest) -> bool:
    if fetched.media_type in formats.INDEX_MEDIA_TYPES:
        return True
    if fetched.media_type in formats.MANIFEST_MEDIA_TYPES:
        return False
    # No or a generic Content-Type: let the document say what it is (the parsers still check it).
    return b'"manifests"' in fetched.data


def _parse(parser: Callable[[bytes], T], data: bytes, parsed: reference.Reference) -> T:
    try:
        return parser(data)
    except InvalidArgument as exc:
        raise RegistryError(
            f"{parsed.familiar()}: bad manifest from registry: {exc}", permanent=True
        ) from exc


def _download_layer(
    client: RegistryClient,
    path: str,
    desc: formats.Descriptor,
    parent: str | None,
    progress: Progress,
) -> imagestore.StoredLayer:
    """Stream one layer blob into the store, retrying transient network failures from the start."""
    short = desc.digest[7:19]
    for attempt in range(1, LAYER_ATTEMPTS + 1):
        try:
            with client.open_blob(path, desc.digest, size=desc.size) as blob:
                stream = cast(BinaryIO, blob)
                reader = CountingReader(
                    stream, progress=progress, id=short, total=desc.size, status="Downloading"
                )
                return imagestore.unpack_layer(
                    cast(BinaryIO, reader), parent_chain=parent, expected_blob=desc.digest
                )
        except RegistryError as exc:
            if exc.permanent or attempt == LAYER_ATTEMPTS:
                raise
            logger.info("retrying layer %s after: %s", short, exc)
            progress(LayerProgress(short, 0, desc.size, f"Retrying in {attempt} seconds"))
            time.sleep(attempt)
        except DigestMismatch as exc:
            raise RegistryError(f"layer {desc.digest} from registry: {exc.message}", permanent=True) from exc
    raise AssertionError("unreachable")


def push(ref: str, *, progress: Progress = ignore, credentials: Credentials | None = None) -> PushResult:
    """Push the local image named `ref` to its registry under its tag; return the manifest digest.

    Uploads only blobs the registry lacks, then PUTs an OCI manifest. Raise ImageNotFound when no local
    image has that name, BadReference for a digest reference, RegistryAuthError/RegistryError otherwise.
    """
    parsed = reference.parse(ref.strip())
    if parsed.digest:
        raise BadReference(f"cannot push a digest reference: {ref}", hint="push a tag")
    try:
        image = images.resolve(str(parsed))
    except ImageNotFound:
        raise ImageNotFound(f"an image does not exist locally with the tag: {parsed.familiar()}") from None
    client = client_for(parsed.domain, credentials)
    store = imagestore.blob_store()
    progress(OutputLine(f"The push refers to repository [{parsed.familiar_repository()}]"))
    rows = list(image.image_layers.select_related("layer").order_by("position"))
    layers: list[tuple[str, str, int]] = []
    try:
        for row in rows:
            layer = row.layer
            _push_blob(client, parsed.path, layer.blob_digest, layer.blob_size, progress)
            layers.append(
                (formats.oci_layer_media_type(layer.media_type), layer.blob_digest, layer.blob_size)
            )
        _push_blob(client, parsed.path, image.id, store.size(image.id), progress, quiet=True)
        manifest = formats.oci_manifest(image.id, store.size(image.id), layers)
        digest = client.put_manifest(parsed.path, parsed.tag or "latest", manifest, formats.OCI_MANIFEST)
    except EngineError as exc:
        events.record("image", "push", object_id=image.id, object_name=parsed.familiar(), result="error",
                      message=str(exc))  # fmt: skip
        raise
    RepoDigest.objects.update_or_create(name=f"{parsed.repository}@{digest}", defaults={"image": image})
    events.record("image", "push", object_id=image.id, object_name=parsed.familiar())
    progress(OutputLine(f"{parsed.tag}: digest: {digest} size: {len(manifest)}"))
    return PushResult(str(parsed), digest, len(manifest))


def _push_blob(
    client: RegistryClient, path: str, digest: str, size: int, progress: Progress, *, quiet: bool = False
) -> None:
    short = digest[7:19]
    if client.blob_exists(path, digest):
        if not quiet:
            progress(LayerProgress(short, size, size, "Layer already exists"))
        return
    try:
        handle = imagestore.blob_store().open(digest)
    except NotFound:
        raise InvalidArgument(
            f"blob {digest} of this image is missing from the store", hint="pull or load the image again"
        ) from None
    with handle:

        def sent(done: int) -> None:
            if not quiet:
                progress(LayerProgress(short, done, size, "Pushing"))

        client.upload_blob(path, digest, size, handle, on_bytes=sent)
    if not quiet:
        progress(LayerProgress(short, size, size, "Pushed"))


def login(server: str, username: str, password: str) -> str:
    """Check the credentials against `server` and store them (mode 0600); return the server key.

    Raise RegistryAuthError when the registry refuses them; nothing is stored then.
    """
    key = normalise_server(server)
    if not username or not password:
        raise InvalidArgument("login needs a user name and a password")
    credentials = Credentials(username, password)
    try:
        RegistryClient(key, credentials=credentials).check_login()
    except EngineError as exc:
        events.record("registry", "login", object_name=key, result="error", message=str(exc),
                      attributes={"username": username})  # fmt: skip
        raise
    credential_store().put(key, credentials)
    events.record("registry", "login", object_name=key, attributes={"username": username})
    return key


@dataclass(frozen=True)
class RegistryLogin:
    """A registry this engine holds credentials for: its server key and user name, never the password."""

    server: str
    username: str


def logins() -> list[RegistryLogin]:
    """The registries logged in to, sorted by server; garbled entries are left out."""
    store = credential_store()
    found = []
    for server in store.servers():
        credentials = store.get(server)
        if credentials is not None:
            found.append(RegistryLogin(server, credentials.username))
    return sorted(found, key=lambda login: login.server)


def logout(server: str) -> bool:
    """Forget the credentials for `server`; return False when there were none."""
    key = normalise_server(server)
    removed = credential_store().remove(key)
    if removed:
        events.record("registry", "logout", object_name=key)
    return removed
