"""`save` and `load` through the services: round trips, skopeo (a real client we did not write) on
both sides, multi-layer archives, and a load killed half-way."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zstandard

from engine.errors import InvalidArgument
from engine.image import formats
from engine.image.archivewriter import SaveImage, SaveLayer, write_archive
from engine.models import Image, Layer
from engine.progress import LayerProgress, ProgressEvent
from engine.services import images, imagestore, imagetransfer, system
from engine.store.digests import sha256_digest
from tests.conftest import TMP_PREFIX, require

REPO = Path(__file__).resolve().parents[2]
SKOPEO = "/usr/bin/skopeo"


# -- helpers -------------------------------------------------------------------------------------


def tar_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def archive_of(
    path: Path, plain_layers: list[bytes], blobs: list[bytes], media_types: list[str], tag: str
) -> SaveImage:
    """Write a one-image archive whose layers are `blobs` (the stored form of `plain_layers`)."""
    config = formats.image_config(
        architecture=imagetransfer.host_architecture(),
        os="linux",
        config={"Cmd": ["sh"]},
        diff_ids=[sha256_digest(p) for p in plain_layers],
        history=[{"created_by": f"layer {i}"} for i in range(len(plain_layers))],
        created="2024-01-01T00:00:00Z",
    )
    store = {sha256_digest(b): b for b in blobs}
    layers = [SaveLayer(sha256_digest(b), len(b), m) for b, m in zip(blobs, media_types, strict=True)]
    image = SaveImage(sha256_digest(config), config, layers, [tag])
    with path.open("wb") as out:
        write_archive(out, [image], open_blob=lambda d: io.BytesIO(store[d]))
    return image


def save_to(path: Path, *refs: str) -> Path:
    with path.open("wb") as out:
        imagetransfer.save(list(refs), out)
    return path


def skopeo(tmp_path: Path, *args: str) -> str:
    require(os.access(SKOPEO, os.X_OK), f"{SKOPEO} is not installed (apt-get install skopeo)")
    scratch = tmp_path / "skopeo-tmp"
    scratch.mkdir(exist_ok=True)
    proc = subprocess.run(
        [SKOPEO, "--insecure-policy", "--tmpdir", str(scratch), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"skopeo {' '.join(args)} failed: {proc.stderr}"
    return proc.stdout


def leftovers(root: Path) -> list[Path]:
    """Temp files and directories a writer left under the store."""
    return [p for p in root.rglob(".tmp-*")]


def store_is_empty(root: Path) -> bool:
    return not any((root / "blobs" / "sha256").iterdir()) and not any((root / "layers").iterdir())


def manage_env(root: Path, run: Path) -> dict[str, str]:
    env = {**os.environ, "BERTH_ROOT": str(root), "BERTH_RUN": str(run), "BERTH_ADMIN_PASSWORD": "test-pw"}
    env.pop("DATABASE_URL", None)  # the engine's own sqlite under its root, never a shared database
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"manage.py {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture
def spare_dirs() -> Iterator[tuple[Path, Path]]:
    """BERTH_ROOT and BERTH_RUN for a second engine that runs in subprocesses."""
    root = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir="/tmp"))
    run = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir="/tmp"))
    yield root, run
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(run, ignore_errors=True)


@pytest.fixture
def fresh_root(spare_dirs: tuple[Path, Path]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """A second, separate engine: `fresh_root(ARGS…)` runs `manage.py ARGS…` against it."""
    env = manage_env(*spare_dirs)
    manage(env, "migrate", "--verbosity", "0")
    return lambda *args: manage(env, *args)


# -- round trips ---------------------------------------------------------------------------------


def test_saved_busybox_loads_into_a_fresh_root_with_the_same_id_and_tag(
    engine: Path,
    tmp_path: Path,
    fresh_root,  # type: ignore[no-untyped-def]
) -> None:
    image = system.seed()
    archive = save_to(tmp_path / "busybox.tar", "busybox")
    out = fresh_root("berth", "load", "-i", str(archive)).stdout
    assert out.splitlines() == ["Loaded image: busybox:latest"]
    inspected = json.loads(fresh_root("berth", "image", "inspect", "busybox").stdout)
    assert inspected[0]["Id"] == image.id
    assert inspected[0]["RepoTags"] == ["busybox:latest"]


def test_loading_the_same_archive_twice_unpacks_nothing_again(engine: Path, tmp_path: Path) -> None:
    system.seed()
    archive = save_to(tmp_path / "busybox.tar", "busybox")
    events: list[ProgressEvent] = []
    ((image, tags),) = imagetransfer.load(archive, progress=events.append)
    assert tags == ["busybox:latest"]
    assert Image.objects.count() == 1 and Layer.objects.count() == 1
    statuses = {e.status for e in events if isinstance(e, LayerProgress)}
    assert statuses == {"Already exists"}


def test_a_multi_layer_archive_loads_with_all_its_layers(engine: Path, tmp_path: Path) -> None:
    plain = [
        tar_bytes({"one.txt": b"1\n"}),
        tar_bytes({"two.txt": b"2\n"}),
        tar_bytes({"three.txt": b"3\n"}),
    ]
    blobs = [gzip.compress(plain[0], mtime=0), plain[1], zstandard.ZstdCompressor().compress(plain[2])]
    media = [formats.OCI_LAYER_GZIP, formats.OCI_LAYER, formats.OCI_LAYER_ZSTD]
    saved = archive_of(tmp_path / "three.tar", plain, blobs, media, "three:1")

    ((image, tags),) = imagetransfer.load(tmp_path / "three.tar")

    assert image.id == saved.config_digest and tags == ["three:1"]
    assert images.inspect("three:1")["RootFS"]["Layers"] == [sha256_digest(p) for p in plain]
    rows = [il.layer for il in image.image_layers.select_related("layer").order_by("position")]
    assert [r.blob_digest for r in rows] == [sha256_digest(b) for b in blobs]
    assert [r.media_type for r in rows] == [
        imagestore.MEDIA_GZIP,
        imagestore.MEDIA_TAR,
        imagestore.MEDIA_ZSTD,
    ]
    top, middle, bottom = imagestore.layer_paths(image)
    assert (bottom / "one.txt").read_bytes() == b"1\n"
    assert (middle / "two.txt").read_bytes() == b"2\n"
    assert (top / "three.txt").read_bytes() == b"3\n"
    assert all(imagestore.blob_store().verify(r.blob_digest) for r in rows)


def test_a_layer_that_does_not_match_its_digest_loads_nothing(engine: Path, tmp_path: Path) -> None:
    plain = tar_bytes({"good.txt": b"good content\n"})
    archive_of(tmp_path / "good.tar", [plain], [plain], [formats.OCI_LAYER], "bad:1")
    # Same size, different bytes, under the good blob's name: only the digest check can notice.
    bad = tmp_path / "bad.tar"
    with tarfile.open(tmp_path / "good.tar") as src, tarfile.open(bad, "w", format=tarfile.PAX_FORMAT) as dst:
        for info in src:
            data = src.extractfile(info).read() if info.isfile() else None  # type: ignore[union-attr]
            if data == plain:
                data = plain.replace(b"good content", b"evil content")
            dst.addfile(info, io.BytesIO(data) if data is not None else None)

    with pytest.raises(InvalidArgument, match="digest mismatch"):
        imagetransfer.load(bad)

    assert not Image.objects.exists() and not Layer.objects.exists()
    assert store_is_empty(engine)
    assert not leftovers(engine)


# -- skopeo reads what we save -------------------------------------------------------------------


def test_skopeo_inspects_a_saved_image_as_a_docker_archive(engine: Path, tmp_path: Path) -> None:
    image = system.seed()
    archive = save_to(tmp_path / "busybox.tar", "busybox")
    info = json.loads(skopeo(tmp_path, "inspect", f"docker-archive:{archive}"))
    assert info["Layers"] == [Layer.objects.get().blob_digest]
    assert info["Env"] == image.config["config"]["Env"]
    assert info["Architecture"] == image.architecture and info["Os"] == "linux"


def test_skopeo_inspects_a_saved_image_as_an_oci_archive(engine: Path, tmp_path: Path) -> None:
    image = system.seed()
    archive = save_to(tmp_path / "busybox.tar", "busybox")
    config = json.loads(skopeo(tmp_path, "inspect", "--config", f"oci-archive:{archive}"))
    # skopeo re-serialises the config, so compare what it says rather than its bytes.
    assert config["rootfs"]["diff_ids"] == images.inspect(image.id)["RootFS"]["Layers"]
    info = json.loads(skopeo(tmp_path, "inspect", f"oci-archive:{archive}"))
    assert info["Layers"] == [Layer.objects.get().blob_digest]


def test_skopeo_copies_a_saved_image_into_an_oci_directory(engine: Path, tmp_path: Path) -> None:
    image = system.seed()
    archive = save_to(tmp_path / "busybox.tar", "busybox")
    target = tmp_path / "oci-dir"
    skopeo(tmp_path, "copy", f"docker-archive:{archive}", f"oci:{target}:copied")
    index = json.loads((target / "index.json").read_text())
    (entry,) = index["manifests"]
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == "copied"
    manifest = json.loads(_blob(target, entry["digest"]))
    # Converting docker's manifest to OCI makes skopeo re-serialise the config (so the ID may change),
    # but what it describes must be the same: the layers by content, the container config.
    config = json.loads(_blob(target, manifest["config"]["digest"]))
    assert config["rootfs"]["diff_ids"] == images.inspect(image.id)["RootFS"]["Layers"]
    assert config["config"] == image.config["config"]
    (layer,) = manifest["layers"]
    data = _blob(target, layer["digest"])
    # skopeo compresses our plain tar layer for an OCI destination; its content must be unchanged.
    if layer["mediaType"].endswith("+gzip"):
        data = gzip.decompress(data)
    assert sha256_digest(data) == Layer.objects.get().diff_id


def _blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()


def test_an_oci_archive_written_by_skopeo_loads(engine: Path, tmp_path: Path) -> None:
    image = system.seed()
    diff_ids = images.inspect(image.id)["RootFS"]["Layers"]
    ours = save_to(tmp_path / "ours.tar", "busybox")
    theirs = tmp_path / "theirs.tar"
    skopeo(tmp_path, "copy", f"docker-archive:{ours}", f"oci-archive:{theirs}:foo:1")
    their_manifest = json.loads(skopeo(tmp_path, "inspect", "--raw", f"oci-archive:{theirs}"))
    images.remove(image.id, force=True)  # start from an empty store so everything comes from theirs
    assert store_is_empty(engine)

    ((loaded, tags),) = imagetransfer.load(theirs)

    assert loaded.id == their_manifest["config"]["digest"]  # the image ID is their config's digest
    assert tags == ["foo:1"]
    assert images.resolve("docker.io/library/foo:1").id == loaded.id
    assert images.inspect("foo:1")["RootFS"]["Layers"] == diff_ids
    (layer,) = imagestore.layer_paths(loaded)
    assert (layer / "bin" / "sh").is_file()


# -- a load killed half-way ----------------------------------------------------------------------


def big_archive(tmp_path: Path, size: int = 128 << 20) -> Path:
    """An archive with one large plain layer of incompressible data (so loading takes a while)."""
    layer = tmp_path / "big-layer.tar"
    with layer.open("wb") as f, tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("big.bin")
        info.size = size
        chunk = os.urandom(1 << 20)
        tar.addfile(info, _Repeat(chunk, size))
    digest = hashlib.sha256()
    with layer.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    diff_id = "sha256:" + digest.hexdigest()
    config = formats.image_config(
        architecture=imagetransfer.host_architecture(),
        os="linux",
        config={},
        diff_ids=[diff_id],
        history=[{"created_by": "big"}],
        created="2024-01-01T00:00:00Z",
    )
    saved = SaveImage(
        sha256_digest(config),
        config,
        [SaveLayer(diff_id, layer.stat().st_size, formats.OCI_LAYER)],
        ["big:1"],
    )
    path = tmp_path / "big.tar"
    with path.open("wb") as out:
        write_archive(out, [saved], open_blob=lambda _d: layer.open("rb"))
    layer.unlink()
    return path


class _Repeat:
    """`size` bytes made of `chunk` repeated (with a counter mixed in, so no two MiB are equal)."""

    def __init__(self, chunk: bytes, size: int) -> None:
        self._chunk, self._left, self._n = chunk, size, 0

    def read(self, n: int = -1) -> bytes:
        n = self._left if n < 0 else min(n, self._left)
        out = bytearray()
        while len(out) < n:
            self._n += 1
            out += self._n.to_bytes(8, "little") + self._chunk[8:]
        self._left -= n
        return bytes(out[:n])


def image_rows(root: Path) -> int:
    with sqlite3.connect(root / "berth.sqlite3") as db:
        return db.execute("SELECT COUNT(*) FROM engine_image").fetchone()[0]


def test_a_load_killed_half_way_leaves_no_half_blob_and_no_image(
    tmp_path: Path, spare_dirs: tuple[Path, Path]
) -> None:
    root, run = spare_dirs
    env = manage_env(root, run)
    manage(env, "migrate", "--verbosity", "0")
    archive = big_archive(tmp_path)
    blobs = root / "blobs" / "sha256"

    proc = subprocess.Popen(
        [sys.executable, "manage.py", "berth", "load", "-q", "-i", str(archive)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if blobs.is_dir() and any(n.startswith(".tmp-") for n in os.listdir(blobs)):
                time.sleep(0.1)  # let the writer get part of the way
                break
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        returncode = proc.wait(timeout=30)
        archive.unlink()  # 128 MB: not worth keeping in pytest's retained temp dirs
    assert returncode == -signal.SIGKILL, "the load finished before it was killed; make the layer bigger"

    assert leftovers(root), "the kill should have caught a writer mid-way"
    for name in os.listdir(blobs):
        if not name.startswith("."):
            with (blobs / name).open("rb") as f:
                assert hashlib.file_digest(f, "sha256").hexdigest() == name, f"half blob under {name}"
    assert image_rows(root) == 0

    # Start-up (setup runs collect_garbage) removes what the dead writer left.
    manage(env, "setup")
    assert not list(blobs.glob(".tmp-*"))
    assert not list((root / "layers").glob(".tmp-*"))
    assert image_rows(root) == 1  # only the seeded busybox
