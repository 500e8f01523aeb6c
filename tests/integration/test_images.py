"""The image services against a real content store: seeding, import, shared layers, rmi, prune, names.

Each test gets its own BERTH_ROOT (the `engine` fixture). Where a test needs a second, truly fresh
engine it runs `manage.py` in a subprocess with another BERTH_ROOT, since one root is one whole engine.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.errors import ImageNotFound, InUse, InvalidArgument, UnsafeArchive
from engine.image import formats
from engine.image.archivewriter import SaveImage, SaveLayer, write_archive
from engine.models import Container, Image, ImageTag, Layer, RepoDigest
from engine.services import images, imagestore, imagetransfer, system
from engine.store.digests import chain_id, digest_hex, sha256_digest
from tests.conftest import TMP_PREFIX

REPO = Path(__file__).resolve().parents[2]


# -- helpers -------------------------------------------------------------------------------------


def tar_bytes(files: dict[str, bytes], *, dirs: dict[str, int] | None = None) -> bytes:
    """A plain, deterministic tar of `files` (and directories with modes)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, mode in sorted((dirs or {}).items()):
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = mode
            tar.addfile(info)
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def import_image(ref: str | None, files: dict[str, bytes], **kwargs: object) -> Image:
    return imagetransfer.import_tarball(io.BytesIO(tar_bytes(files)), ref, **kwargs)  # type: ignore[arg-type]


def temp_names(root: Path) -> list[Path]:
    """Everything under `root` that a writer names as temporary."""
    return [p for p in root.rglob("*") if p.name.startswith(".tmp-")]


def blob_files(root: Path) -> set[str]:
    directory = root / "blobs" / "sha256"
    return {p.name for p in directory.iterdir()} if directory.is_dir() else set()


def layer_dirs(root: Path) -> set[str]:
    directory = root / "layers"
    return {p.name for p in directory.iterdir()} if directory.is_dir() else set()


@pytest.fixture
def fresh_root() -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    """A second, separate engine: run `manage.py ARGS…` against its own migrated BERTH_ROOT."""
    root = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir="/tmp"))
    run = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir="/tmp"))
    env = {**os.environ, "BERTH_ROOT": str(root), "BERTH_RUN": str(run), "BERTH_ADMIN_PASSWORD": "test-pw"}
    env.pop("DATABASE_URL", None)  # the engine's own sqlite under its root, never a shared database

    def manage(*args: str) -> subprocess.CompletedProcess[str]:
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

    manage("migrate", "--verbosity", "0")
    yield manage
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(run, ignore_errors=True)


def two_images_sharing_a_base(tmp_path: Path) -> Path:
    """An archive with a:1 = [base, a] and b:1 = [base, b], gzip layers."""
    plain = {
        "base": tar_bytes({"etc/base-release": b"base\n"}, dirs={"etc": 0o755}),
        "a": tar_bytes({"a.txt": b"only in a\n"}),
        "b": tar_bytes({"b.txt": b"only in b\n"}),
    }
    blobs = {name: gzip.compress(data, mtime=0) for name, data in plain.items()}
    store = {sha256_digest(b): b for b in blobs.values()}
    save = []
    for tag, top in (("a:1", "a"), ("b:1", "b")):
        config = formats.image_config(
            architecture=imagetransfer.host_architecture(),
            os="linux",
            config={"Cmd": ["sh"]},
            diff_ids=[sha256_digest(plain["base"]), sha256_digest(plain[top])],
            history=[{"created_by": "base"}, {"created_by": top}],
            created="2024-01-01T00:00:00Z",
        )
        layers = [
            SaveLayer(sha256_digest(blobs[n]), len(blobs[n]), formats.OCI_LAYER_GZIP) for n in ("base", top)
        ]
        save.append(SaveImage(sha256_digest(config), config, layers, [tag]))
    path = tmp_path / "shared.tar"
    with path.open("wb") as out:
        write_archive(out, save, open_blob=lambda d: io.BytesIO(store[d]))
    return path


# -- seeding -------------------------------------------------------------------------------------


def test_seed_gives_busybox_latest(engine: Path) -> None:
    image = system.seed()
    assert images.resolve("busybox:latest").id == image.id
    assert images.inspect("busybox")["RepoTags"] == ["busybox:latest"]


def test_seed_twice_keeps_one_image(engine: Path) -> None:
    first = system.seed()
    second = system.seed()
    assert first.id == second.id
    assert Image.objects.count() == 1


def test_two_fresh_roots_seed_the_same_image_id(engine: Path, fresh_root, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    here = system.seed().id
    # The other root is a separate process with its own database and store: nothing is shared.
    fresh_root("setup")
    there = fresh_root("berth", "images", "-q", "--no-trunc").stdout.split()
    assert there == [here]


def test_the_seed_layer_has_a_shell_passwd_and_a_sticky_tmp(engine: Path) -> None:
    image = system.seed()
    (layer,) = imagestore.layer_paths(image)
    sh = os.lstat(layer / "bin" / "sh")
    assert stat.S_ISREG(sh.st_mode) and sh.st_mode & 0o111, "bin/sh must be an executable file"
    assert os.path.samefile(layer / "bin" / "sh", layer / "bin" / "busybox")  # an applet hard link
    assert (layer / "etc" / "passwd").read_text().startswith("root:x:0:0:")
    assert stat.S_IMODE(os.lstat(layer / "tmp").st_mode) == 0o1777


# -- import --------------------------------------------------------------------------------------


def test_import_of_a_plain_tarball_makes_a_one_layer_image(engine: Path) -> None:
    data = tar_bytes({"hello.txt": b"hello\n"})
    image = imagetransfer.import_tarball(io.BytesIO(data), "imported:1")
    assert images.resolve("imported:1").id == image.id
    # The diff ID is the digest of the tar itself; the layer is unpacked under it.
    assert images.inspect("imported:1")["RootFS"]["Layers"] == [sha256_digest(data)]
    (layer,) = imagestore.layer_paths(image)
    assert (layer / "hello.txt").read_bytes() == b"hello\n"


def test_import_of_a_gzip_tarball_makes_a_one_layer_image(engine: Path) -> None:
    data = tar_bytes({"hello.txt": b"hello\n"})
    blob = gzip.compress(data, mtime=0)
    image = imagetransfer.import_tarball(io.BytesIO(blob), "imported:gz")
    row = Layer.objects.get()
    # The diff ID names the uncompressed tar; the stored blob is the gzip stream as given.
    assert images.inspect(image.id)["RootFS"]["Layers"] == [sha256_digest(data)]
    assert row.blob_digest == sha256_digest(blob)
    assert row.media_type == imagestore.MEDIA_GZIP
    assert imagestore.blob_store().verify(row.blob_digest)
    (layer,) = imagestore.layer_paths(image)
    assert (layer / "hello.txt").read_bytes() == b"hello\n"


@pytest.mark.parametrize(
    ("change", "key", "value"),
    [
        ('CMD ["sh"]', "Cmd", ["sh"]),
        ("CMD echo hi", "Cmd", ["/bin/sh", "-c", "echo hi"]),
        ("ENV FOO=bar", "Env", ["FOO=bar"]),
        ("WORKDIR /srv", "WorkingDir", "/srv"),
        ('ENTRYPOINT ["/bin/busybox"]', "Entrypoint", ["/bin/busybox"]),
    ],
)
def test_import_change_lands_in_the_config(engine: Path, change: str, key: str, value: object) -> None:
    image = import_image("changed:1", {"f": b"x"}, changes_=[change])
    assert images.inspect(image.id)["Config"][key] == value


def test_import_with_a_bad_change_is_refused_before_any_work(engine: Path) -> None:
    with pytest.raises(InvalidArgument, match="FROB"):
        import_image("bad:1", {"f": b"x"}, changes_=["FROB yes"])
    assert not Image.objects.exists()
    assert not blob_files(engine) and not layer_dirs(engine)


def test_import_of_a_hostile_tar_fails_and_leaves_nothing(engine: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../x")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    with pytest.raises(UnsafeArchive):
        imagetransfer.import_tarball(io.BytesIO(buf.getvalue()), "hostile:1")
    assert not Image.objects.exists() and not Layer.objects.exists()
    assert not layer_dirs(engine), "no layer directory (final or temporary) may remain"
    assert not blob_files(engine), "no blob (final or temporary) may remain"
    assert not temp_names(engine)
    assert not list(engine.rglob("x")), "the entry must not have been written anywhere"


# -- shared layers -------------------------------------------------------------------------------


def test_two_images_sharing_a_base_layer_store_it_once(engine: Path, tmp_path: Path) -> None:
    imagetransfer.load(two_images_sharing_a_base(tmp_path))
    a, b = images.resolve("a:1"), images.resolve("b:1")
    base_chain = images.inspect("a:1")["RootFS"]["Layers"][0]
    assert imagestore.layer_paths(a)[-1] == imagestore.layer_paths(b)[-1]
    assert Layer.objects.filter(chain_id=base_chain).count() == 1
    # base + a's top + b's top: three directories, not four.
    assert layer_dirs(engine) == {digest_hex(c) for c in Layer.objects.values_list("chain_id", flat=True)}
    assert len(layer_dirs(engine)) == 3


def test_removing_one_of_two_images_sharing_a_base_leaves_the_other_whole(
    engine: Path,
    tmp_path: Path,
    fresh_root,  # type: ignore[no-untyped-def]
) -> None:
    imagetransfer.load(two_images_sharing_a_base(tmp_path))
    b = images.resolve("b:1")
    b_layers = list(Layer.objects.filter(image_layers__image=b))
    a_top = chain_id(images.inspect("a:1")["RootFS"]["Layers"])

    result = images.remove("a:1")

    assert {"Deleted": a_top} in result
    for path in imagestore.layer_paths(b):
        assert path.is_dir(), f"{path} of b:1 went with a:1"
    for row in b_layers:
        assert imagestore.blob_store().verify(row.blob_digest)
    assert not (engine / "layers" / digest_hex(a_top)).exists()
    # The proof that b:1 is whole: it saves, and another engine loads it.
    archive = tmp_path / "b.tar"
    with archive.open("wb") as out:
        imagetransfer.save(["b:1"], out)
    fresh_root("berth", "load", "-q", "-i", str(archive))
    assert fresh_root("berth", "images", "-q", "--no-trunc").stdout.split() == [b.id]


# -- rmi -----------------------------------------------------------------------------------------


def test_rmi_of_one_of_several_tags_only_untags(engine: Path) -> None:
    image = system.seed()
    images.tag("busybox", "other:1")
    assert images.remove("other:1") == [{"Untagged": "other:1"}]
    assert images.resolve("busybox").id == image.id


def test_rmi_of_the_last_tag_deletes_the_image_with_its_layers_and_blobs(engine: Path) -> None:
    image = import_image("solo:1", {"solo.txt": b"solo\n"})
    layer = Layer.objects.get()
    before = set(blob_files(engine))
    assert {digest_hex(image.id), digest_hex(layer.blob_digest)} <= before

    result = images.remove("solo:1")

    assert result == [{"Untagged": "solo:1"}, {"Deleted": image.id}, {"Deleted": layer.chain_id}]
    assert not Image.objects.exists() and not Layer.objects.exists()
    assert not layer_dirs(engine)
    assert not blob_files(engine), "the config and layer blobs must go with the image"


def test_rmi_by_id_of_an_image_in_several_repositories_needs_force(engine: Path) -> None:
    image = system.seed()
    images.tag("busybox", "other:1")
    with pytest.raises(InUse, match="must be forced"):
        images.remove(image.short_id)
    assert ImageTag.objects.count() == 2  # nothing was untagged by the refused call
    result = images.remove(image.short_id, force=True)
    assert {"Untagged": "busybox:latest"} in result and {"Untagged": "other:1"} in result
    assert {"Deleted": image.id} in result
    assert not Image.objects.exists()


def test_rmi_of_a_digest_reference_leaves_the_tags_alone(engine: Path) -> None:
    image = system.seed()
    manifest = "sha256:" + "ab" * 32
    # Pulls record repo digests; none exists yet here, so the row is made directly.
    RepoDigest.objects.create(name=f"docker.io/library/busybox@{manifest}", image=image)
    assert images.resolve(f"busybox@{manifest}").id == image.id

    assert images.remove(f"busybox@{manifest}") == [{"Untagged": f"busybox@{manifest}"}]

    assert not RepoDigest.objects.exists()
    assert images.inspect("busybox")["RepoTags"] == ["busybox:latest"]


def test_prune_removes_only_dangling_images(engine: Path) -> None:
    busybox = system.seed()
    old = import_image("app:1", {"v": b"1"})
    new = import_image("app:1", {"v": b"2"})  # takes the tag: the old image is now dangling
    assert [row.image.id for row in images.list_images(filters={"dangling": ["true"]})] == [old.id]

    result = images.prune()

    assert {"Deleted": old.id} in result.deleted
    assert set(Image.objects.values_list("id", flat=True)) == {busybox.id, new.id}
    assert result.reclaimed > 0


def test_prune_all_removes_every_image_no_container_uses(engine: Path) -> None:
    busybox = system.seed()
    import_image("app:1", {"v": b"1"})
    # No container service yet: a stopped container's record is enough to mark the image as used.
    Container.objects.create(id="c" * 64, name="user", image=busybox, image_ref="busybox", state="exited")

    images.prune(all=True)

    assert list(Image.objects.values_list("id", flat=True)) == [busybox.id]


def test_rmi_of_an_unknown_image_says_no_such_image(engine: Path) -> None:
    with pytest.raises(ImageNotFound, match="no such image"):
        images.remove("nothere:1")


# -- references ----------------------------------------------------------------------------------


def test_a_tag_with_a_registry_port_resolves_by_its_familiar_and_full_names(engine: Path) -> None:
    image = system.seed()
    images.tag("busybox", "localhost:5000/foo/bar:1")
    assert images.resolve("localhost:5000/foo/bar:1").id == image.id
    assert ImageTag.objects.filter(name="localhost:5000/foo/bar:1").exists()
    # Docker Hub names resolve whichever way they are spelt.
    for name in ("busybox", "busybox:latest", "library/busybox", "docker.io/library/busybox:latest"):
        assert images.resolve(name).id == image.id, name


def test_images_lists_a_registry_port_tag_under_its_repository(engine: Path) -> None:
    system.seed()
    images.tag("busybox", "localhost:5000/foo/bar:1")
    rows = {(row.repository, row.tag) for row in images.list_images()}
    assert rows == {("busybox", "latest"), ("localhost:5000/foo/bar", "1")}


def test_an_image_resolves_by_a_unique_id_prefix(engine: Path) -> None:
    image = system.seed()
    assert images.resolve(image.short_id).id == image.id
    assert images.resolve(image.id).id == image.id
