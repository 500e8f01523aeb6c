"""Issue 10, findings 5 and 6b: a refused write leaves the store as it was; crash leftovers are found
by `system df` and reclaimed by prune; deeply nested JSON in an archive is one clear error.

Each refused archive first stores something (a good layer) before it is refused, which is what used
to leave unreferenced blobs and layer directories that nothing ever reclaimed.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import lzma
import os
import tarfile
import time
from pathlib import Path

import pytest

from engine.errors import InvalidArgument
from engine.image import formats
from engine.image.archivewriter import SaveImage, SaveLayer, write_archive
from engine.models import Image, Layer
from engine.services import housekeeping, imagestore, imagetransfer, leftovers, staging, system
from engine.store.digests import sha256_digest
from tests.conftest import BerthCLI
from tests.integration.test_image_archives import tar_bytes

OLD = time.time() - 7 * 24 * 3600  # older than every safe age


def write_docker_archive(
    path: Path,
    blobs: list[bytes],
    *,
    diff_ids: list[str],
    media: str = formats.OCI_LAYER,
    tag: str = "refused:1",
) -> None:
    config = formats.image_config(
        architecture=imagetransfer.host_architecture(),
        os="linux",
        config={"Cmd": ["sh"]},
        diff_ids=diff_ids,
        history=[{"created_by": f"layer {i}"} for i in range(len(blobs))],
        created="2024-01-01T00:00:00Z",
    )
    store = {sha256_digest(b): b for b in blobs}
    layers = [SaveLayer(sha256_digest(b), len(b), media) for b in blobs]
    with path.open("wb") as out:
        write_archive(
            out,
            [SaveImage(sha256_digest(config), config, layers, [tag])],
            open_blob=lambda d: io.BytesIO(store[d]),
        )


def rewrite_member(src: Path, dst: Path, name: str, data: bytes, *, drop: str = "") -> None:
    """Copy an archive, replacing member `name`'s content (its header name and mode kept) and
    leaving out member `drop`."""
    with tarfile.open(src) as inp, tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as out:
        for info in inp:
            if info.name == drop:
                continue
            content = inp.extractfile(info).read() if info.isfile() else None  # type: ignore[union-attr]
            if info.name == name:
                content = data
                info.size = len(data)
            out.addfile(info, io.BytesIO(content) if content is not None else None)


def snapshot(root: Path) -> dict[str, tuple[str, int, str]]:
    """Every entry under the engine root: type, size and content hash (the store byte for byte)."""
    out: dict[str, tuple[str, int, str]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = ("link", 0, os.readlink(path))
        elif path.is_file():
            out[rel] = ("file", st.st_size, hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            out[rel] = ("dir", 0, "")
    return out


GOOD = tar_bytes({"good.txt": b"a good first layer\n"})
SECOND = tar_bytes({"second.txt": b"the second layer\n"})


def _digest_mismatch(tmp: Path) -> Path:
    good = tmp / "good.tar"
    write_docker_archive(good, [GOOD, SECOND], diff_ids=[sha256_digest(GOOD), sha256_digest(SECOND)])
    bad = tmp / "bad.tar"
    # The second layer's bytes no longer match its name: found only after the first layer is stored.
    with tarfile.open(good) as inp:
        name = next(m.name for m in inp if m.isfile() and inp.extractfile(m).read() == SECOND)  # type: ignore[union-attr]
    rewrite_member(good, bad, name, SECOND.replace(b"the second", b"an evil 2nd"))
    return bad


def _diff_ids_lie(tmp: Path) -> Path:
    path = tmp / "bad.tar"
    # Both layers unpack, then the config's diff_ids do not match: refused at the very end.
    write_docker_archive(path, [GOOD, SECOND], diff_ids=[sha256_digest(GOOD), sha256_digest(b"other")])
    return path


def _traversal(tmp: Path) -> Path:
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as tar:
        info = tarfile.TarInfo("../../escaped.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    path = tmp / "bad.tar"
    write_docker_archive(
        path, [GOOD, evil.getvalue()], diff_ids=[sha256_digest(GOOD), sha256_digest(evil.getvalue())]
    )
    return path


def _xz_layer(tmp: Path) -> Path:
    path = tmp / "bad.tar"
    second = lzma.compress(SECOND)
    write_docker_archive(
        path,
        [gzip.compress(GOOD, mtime=0), second],
        diff_ids=[sha256_digest(GOOD), sha256_digest(SECOND)],
        media=formats.OCI_LAYER_GZIP,
    )
    return path


def _nested_manifest(tmp: Path) -> Path:
    good = tmp / "good.tar"
    write_docker_archive(good, [GOOD], diff_ids=[sha256_digest(GOOD)])
    path = tmp / "bad.tar"
    rewrite_member(good, path, "manifest.json", b"[" * 100_000 + b"]" * 100_000)
    return path


def _nested_oci_index(tmp: Path) -> Path:
    good = tmp / "good.tar"
    write_docker_archive(good, [GOOD], diff_ids=[sha256_digest(GOOD)])
    path = tmp / "bad.tar"
    deep = b'{"schemaVersion":2,"manifests":' + b"[" * 5000 + b"]" * 5000 + b"}"
    # An OCI layout only (no manifest.json), so index.json is what is read.
    rewrite_member(good, path, "index.json", deep, drop="manifest.json")
    return path


REFUSED = {
    "digest-mismatch": (_digest_mismatch, "digest mismatch"),
    "diff-ids-lie": (_diff_ids_lie, "diff_ids do not match"),
    "traversal": (_traversal, ""),
    "xz-layer": (_xz_layer, ""),
    "nested-manifest-json": (_nested_manifest, "manifest.json: nesting deeper than 64 levels"),
    "nested-oci-index": (_nested_oci_index, "nesting deeper than 64 levels"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_refused_load_leaves_the_store_byte_for_byte_as_before(
    engine: Path, tmp_path: Path, case: str
) -> None:
    system.seed()  # something already in the store, which must survive untouched too
    make, message = REFUSED[case]
    archive = make(tmp_path)
    before = snapshot(engine)
    images_before = set(Image.objects.values_list("id", flat=True))

    with pytest.raises(InvalidArgument) as caught:
        imagetransfer.load(archive)

    assert message in caught.value.message
    assert "\n" not in caught.value.message  # one clear line
    assert snapshot(engine) == before
    assert set(Image.objects.values_list("id", flat=True)) == images_before
    assert leftovers.find(min_age=0) == []


def test_a_deep_image_config_in_an_archive_is_refused_cleanly(engine: Path, tmp_path: Path) -> None:
    config = (
        b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"x":'
        + b"[" * 50_000
        + b"]" * 50_000
        + b"}"
    )
    manifest = [{"Config": "blobs/sha256/" + sha256_digest(config)[7:], "RepoTags": ["deep:1"], "Layers": []}]
    path = tmp_path / "deep.tar"
    with tarfile.open(path, "w") as tar:
        for name, data in (("manifest.json", json.dumps(manifest).encode()), (manifest[0]["Config"], config)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    system.seed()
    before = snapshot(engine)
    with pytest.raises(InvalidArgument, match="image config: nesting deeper than 64 levels"):
        imagetransfer.load(path)
    assert snapshot(engine) == before


# -- crash leftovers: found by df, removed by prune, referenced blobs never ----------------------


def _crash_leftovers(root: Path) -> list[Path]:
    """What a process killed mid-write leaves: a named blob and a layer dir with no rows, a temp
    blob nobody holds, a temp layer dir of a dead process, an old upload."""
    data = b"orphan blob content\n" * 100
    blob = root / "blobs" / "sha256" / sha256_digest(data)[7:]
    blob.write_bytes(data)
    layer = root / "layers" / hashlib.sha256(b"orphan layer").hexdigest()
    (layer / "etc").mkdir(parents=True)
    (layer / "etc" / "file").write_bytes(b"x" * 10_000)
    temp_blob = root / "blobs" / "sha256" / ".tmp-crashed"
    temp_blob.write_bytes(b"half a blob")
    temp_layer = root / "layers" / ".tmp-999999999-abcdef"
    temp_layer.mkdir()
    upload = root / "tmp" / "upload-crashed.part"
    upload.write_bytes(b"half an upload")
    made = [blob, layer, temp_blob, temp_layer, upload]
    for path in made:
        os.utime(path, (OLD, OLD))
    return made


def _age_the_store(root: Path) -> None:
    """Make every referenced blob and layer dir look ancient too: age alone must not doom them."""
    for path in [*(root / "blobs" / "sha256").iterdir(), *(root / "layers").iterdir()]:
        os.utime(path, (OLD, OLD))


def test_crash_leftovers_are_shown_by_df_and_removed_by_prune_but_referenced_blobs_are_kept(
    engine: Path,
) -> None:
    image = system.seed()
    _age_the_store(engine)
    made = _crash_leftovers(engine)

    found = {item.path for item in leftovers.find()}
    assert found == set(made)
    assert system.disk_usage(max_age=0)["leftovers"] >= 2000 + 10_000
    assert {item.path for item in system.disk_usage_detail()["leftovers"]} == set(made)

    result = housekeeping.prune()

    assert not any(path.exists() for path in made)
    assert result.reclaimed >= 2000 + 10_000
    assert leftovers.find(min_age=0) == []
    # The seeded image's blobs and layer are referenced: untouched, and the store is sound.
    assert Image.objects.filter(id=image.id).exists()
    assert system.check() == []


def test_image_prune_reclaims_leftovers_too(engine: Path) -> None:
    from engine.services import images

    system.seed()
    made = _crash_leftovers(engine)
    assert images.prune().reclaimed > 0
    assert not any(path.exists() for path in made)
    assert system.check() == []


def test_young_leftovers_are_kept_for_a_write_that_may_own_them(engine: Path) -> None:
    system.seed()
    made = _crash_leftovers(engine)
    for path in made:
        os.utime(path)  # just now
    assert leftovers.reclaim().count == 0
    assert all(path.exists() for path in made)


def test_prune_leaves_named_entries_alone_while_a_write_is_in_flight(engine: Path) -> None:
    system.seed()
    blob, layer, temp_blob, temp_layer, upload = _crash_leftovers(engine)
    with staging.staged():  # another load, mid-way: its blobs and layers have no rows yet
        result = leftovers.reclaim()
    assert result.skipped_in_flight
    assert blob.exists() and layer.exists()  # might belong to the write in flight
    assert not temp_blob.exists() and not temp_layer.exists() and not upload.exists()  # provably dead
    assert leftovers.reclaim().count == 2  # once the write is over


def test_a_temp_blob_whose_writer_lives_is_not_a_leftover(engine: Path) -> None:
    system.seed()
    with imagestore.blob_store().writer() as writer:
        writer.write(b"in flight")
        os.utime(writer.temp_path, (OLD, OLD))
        assert leftovers.find(min_age=0) == []
        assert leftovers.reclaim(min_age=0).count == 0
        assert writer.temp_path.exists()


def test_a_failed_commit_of_a_new_image_keeps_layers_another_image_uses(engine: Path, tmp_path: Path) -> None:
    system.seed()
    path = tmp_path / "one.tar"
    write_docker_archive(path, [GOOD], diff_ids=[sha256_digest(GOOD)], tag="one:1")
    imagetransfer.load(path)
    before = snapshot(engine)
    # Same first layer (already recorded), then a lie: nothing of the first image may go.
    with pytest.raises(InvalidArgument):
        imagetransfer.load(_diff_ids_lie(tmp_path))
    assert snapshot(engine) == before
    assert Layer.objects.filter(diff_id=sha256_digest(GOOD)).exists()
    assert system.check() == []


# -- the CLI --------------------------------------------------------------------------------------


def test_cli_system_df_shows_and_system_prune_removes_leftovers(berth_cli: BerthCLI) -> None:
    made = _crash_leftovers(berth_cli.root)
    rows = [line for line in berth_cli.ok("system", "df").splitlines() if line.startswith("Leftovers")]
    assert len(rows) == 1 and rows[0].split()[1] == str(len(made))
    out = berth_cli.ok("system", "prune", "-f")
    assert "Total reclaimed space:" in out
    assert not any(path.exists() for path in made)
    assert "Leftovers" not in berth_cli.ok("system", "df")
    assert berth_cli.ok("system", "check", "--quick").strip() == "no problems found"


# -- pulls and builds that stop half-way -----------------------------------------------------------


class Cancelled(Exception):
    """What the dashboard's cancel button raises from the progress callback."""


def test_a_pull_cancelled_after_its_first_layer_leaves_the_store_as_before(
    engine: Path, tmp_path: Path
) -> None:
    from engine.progress import LayerProgress
    from engine.services import images, registry
    from tests.registry import start_registry

    running = start_registry(tmp_path)
    try:
        system.seed()
        ref = f"{running.netloc}/test/two:1"
        path = tmp_path / "two.tar"
        write_docker_archive(
            path, [GOOD, SECOND], diff_ids=[sha256_digest(GOOD), sha256_digest(SECOND)], tag=ref
        )
        imagetransfer.load(path)
        registry.push(ref)
        images.remove(ref, force=True)
        before = snapshot(engine)

        def cancel_after_first_layer(event: object) -> None:
            if isinstance(event, LayerProgress) and event.status == "Pull complete":
                raise Cancelled()

        with pytest.raises(Cancelled):
            registry.pull(ref, progress=cancel_after_first_layer)

        assert snapshot(engine) == before
        assert leftovers.find(min_age=0) == []
    finally:
        running.stop()


def test_a_failed_build_leaves_no_unreferenced_blob_or_layer(engine_tx: Path, tmp_path: Path) -> None:
    from engine.errors import DockerfileError
    from engine.services import builds
    from tests.conftest import _conmons, settle_conmons
    from tests.integration.test_build import wait_for_exit_commands

    conmons_before = _conmons()
    system.seed()
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "a.txt").write_text("copied into a layer before the failing step\n")
    dockerfile = "FROM busybox\nCOPY a.txt /a.txt\nRUN exit 3\n"
    with pytest.raises(DockerfileError):
        builds.build(tmp_path / "ctx", dockerfile_text=dockerfile)
    wait_for_exit_commands(engine_tx)  # the RUN container's conmon finishes after the build
    settle_conmons(conmons_before)
    # The COPY layer is either recorded (the build cache) or gone; never an orphan.
    assert leftovers.find(min_age=0) == []
    assert system.check() == []
