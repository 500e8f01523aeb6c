"""Image archives: round trips through write_archive/read_archive, and hostile archives refused."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.errors import InvalidArgument, RuntimeFailure, UnsafeArchive
from engine.image import formats
from engine.image.archive import ArchiveContents, read_archive
from engine.image.archivewriter import SaveImage, SaveLayer, write_archive
from engine.store.digests import sha256_digest


def layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class Store:
    """A dict of blobs standing in for the blob store."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.opened: list[str] = []

    def add(self, data: bytes) -> str:
        digest = sha256_digest(data)
        self.blobs[digest] = data
        return digest

    def open_blob(self, digest: str) -> io.BytesIO:
        self.opened.append(digest)
        return io.BytesIO(self.blobs[digest])

    def image(self, layers: list[bytes], tags: list[str], *, cmd: str = "sh") -> SaveImage:
        """Build a SaveImage from plain layer tars, storing each gzip'ed."""
        save_layers = []
        for plain in layers:
            blob = gzip.compress(plain, mtime=0)
            save_layers.append(SaveLayer(self.add(blob), len(blob), formats.OCI_LAYER_GZIP))
        config = formats.image_config(
            architecture="amd64",
            os="linux",
            config={"Cmd": [cmd]},
            diff_ids=[sha256_digest(p) for p in layers],
            history=[{"created_by": "test"} for _ in layers],
            created="2024-01-01T00:00:00Z",
        )
        return SaveImage(sha256_digest(config), config, save_layers, tags)


def write(path: Path, store: Store, images: list[SaveImage], **kwargs: object) -> Path:
    with open(path, "wb") as out:
        write_archive(out, images, open_blob=store.open_blob, **kwargs)  # type: ignore[arg-type]
    return path


def read_layer(contents: ArchiveContents, name: str) -> bytes:
    with contents.open_member(name) as stream:
        return stream.read()


BASE = layer_tar({"bin/sh": b"#!shell", "etc/passwd": b"root:x:0:0::/root:/bin/sh\n"})
APP = layer_tar({"app/run": b"run"})


def test_one_image_round_trips(tmp_path: Path) -> None:
    store = Store()
    image = store.image([BASE, APP], ["busybox:latest", "localhost:5000/x/y:1"])
    path = write(tmp_path / "out.tar", store, [image])
    with read_archive(path) as contents:
        # manifest.json is preferred because it carries RepoTags as docker prints them
        assert contents.format == "docker"
        (got,) = contents.images
        assert got.config_digest == image.config_digest
        assert got.config == image.config
        assert got.repo_tags == ("busybox:latest", "localhost:5000/x/y:1")
        assert [(ly.digest, ly.size, ly.media_type) for ly in got.layers] == [
            (ly.digest, ly.size, formats.OCI_LAYER_GZIP) for ly in image.layers
        ]
        for layer in got.layers:
            assert sha256_digest(read_layer(contents, layer.member_name)) == layer.digest


def test_the_oci_layout_half_carries_full_names_and_tags(tmp_path: Path) -> None:
    store = Store()
    image = store.image([BASE], ["busybox:latest", "busybox:1.36"])
    path = write(tmp_path / "out.tar", store, [image])
    with tarfile.open(path) as tar:
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
    annotations = [d["annotations"] for d in index["manifests"]]
    assert annotations == [
        {
            "io.containerd.image.name": "docker.io/library/busybox:latest",
            "org.opencontainers.image.ref.name": "latest",
        },
        {
            "io.containerd.image.name": "docker.io/library/busybox:1.36",
            "org.opencontainers.image.ref.name": "1.36",
        },
    ]
    # with manifest.json gone the reader falls back to the OCI layout and still finds both names
    stripped = tmp_path / "oci-only.tar"
    with tarfile.open(path) as src, tarfile.open(stripped, "w") as dst:
        for info in src:
            if info.name != "manifest.json":
                dst.addfile(info, src.extractfile(info) if info.isreg() else None)
    with read_archive(stripped) as contents:
        assert contents.format == "oci"
        (got,) = contents.images
        assert got.repo_tags == ("docker.io/library/busybox:latest", "docker.io/library/busybox:1.36")
        assert got.config_digest == image.config_digest
        assert [ly.digest for ly in got.layers] == [ly.digest for ly in image.layers]


def test_two_images_sharing_a_layer_write_it_once(tmp_path: Path) -> None:
    store = Store()
    first = store.image([BASE], ["first:1"])
    second = store.image([BASE, APP], ["second:1"], cmd="run")
    path = write(tmp_path / "out.tar", store, [first, second])
    shared = "blobs/sha256/" + first.layers[0].digest.removeprefix("sha256:")
    with tarfile.open(path) as tar:
        names = tar.getnames()
    assert names.count(shared) == 1
    assert store.opened.count(first.layers[0].digest) == 1
    with read_archive(path) as contents:
        assert [i.repo_tags for i in contents.images] == [("first:1",), ("second:1",)]
        assert [i.config_digest for i in contents.images] == [first.config_digest, second.config_digest]
        assert contents.images[1].layers[0].member_name == shared


def test_untagged_images_round_trip_without_names(tmp_path: Path) -> None:
    store = Store()
    image = store.image([BASE], [])
    with read_archive(write(tmp_path / "out.tar", store, [image])) as contents:
        assert contents.images[0].repo_tags == ()


def test_output_is_deterministic_and_reports_progress(tmp_path: Path) -> None:
    store = Store()
    images = [store.image([BASE, APP], ["a:1"])]
    seen: list[tuple[int, int]] = []
    one = write(tmp_path / "1.tar", store, images, progress=lambda d, t: seen.append((d, t))).read_bytes()
    two = write(tmp_path / "2.tar", store, images).read_bytes()
    assert one == two
    assert seen[-1][0] == seen[-1][1]
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:], strict=False))
    with tarfile.open(tmp_path / "1.tar") as tar:
        assert {(i.mtime, i.uid, i.gid, i.uname) for i in tar} == {(0, 0, 0, "")}


def test_write_refuses_a_config_that_does_not_match_its_digest(tmp_path: Path) -> None:
    store = Store()
    image = store.image([BASE], ["a:1"])
    bad = SaveImage("sha256:" + "0" * 64, image.config, image.layers, image.repo_tags)
    out = io.BytesIO()
    with pytest.raises(InvalidArgument):
        write_archive(out, [bad], open_blob=store.open_blob)
    assert out.getvalue() == b""  # validated before anything was written


def test_write_refuses_a_bad_tag_before_writing() -> None:
    store = Store()
    out = io.BytesIO()
    with pytest.raises(InvalidArgument):
        write_archive(out, [store.image([BASE], ["Upper:1"])], open_blob=store.open_blob)
    assert out.getvalue() == b""


def test_write_refuses_one_name_for_two_images_and_an_empty_list() -> None:
    store = Store()
    one, two = store.image([BASE], ["a:1"]), store.image([APP], ["docker.io/library/a:1"])
    with pytest.raises(InvalidArgument, match="two different images"):
        write_archive(io.BytesIO(), [one, two], open_blob=store.open_blob)
    with pytest.raises(InvalidArgument):
        write_archive(io.BytesIO(), [], open_blob=store.open_blob)


def test_the_same_image_given_twice_is_merged(tmp_path: Path) -> None:
    store = Store()
    image = store.image([BASE], ["a:1"])
    again = SaveImage(image.config_digest, image.config, image.layers, ["a:2"])
    with read_archive(write(tmp_path / "o.tar", store, [image, again])) as contents:
        (got,) = contents.images
        assert got.repo_tags == ("a:1", "a:2")


def test_write_fails_on_a_damaged_blob() -> None:
    store = Store()
    image = store.image([BASE], ["a:1"])
    digest = image.layers[0].digest
    store.blobs[digest] = store.blobs[digest][:-1] + b"X"
    with pytest.raises(RuntimeFailure, match="does not match"):
        write_archive(io.BytesIO(), [image], open_blob=store.open_blob)
    store.blobs[digest] = store.blobs[digest][:10]
    with pytest.raises(RuntimeFailure, match="shorter"):
        write_archive(io.BytesIO(), [image], open_blob=store.open_blob)


def test_a_gzip_compressed_archive_is_read(tmp_path: Path) -> None:
    store = Store()
    image = store.image([BASE], ["a:1"])
    plain = write(tmp_path / "out.tar", store, [image])
    packed = tmp_path / "out.tar.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    with read_archive(packed, tmpdir=tmp_path) as contents:
        layer = contents.images[0].layers[0]
        assert sha256_digest(read_layer(contents, layer.member_name)) == layer.digest


# --- hand-made archives ------------------------------------------------------------------------------


def make_tar(
    path: Path, members: list[tuple[str, bytes | None, Callable[[tarfile.TarInfo], None] | None]]
) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, tweak in members:
            info = tarfile.TarInfo(name)
            info.size = len(data or b"")
            if tweak:
                tweak(info)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def legacy_archive(layer: bytes) -> list[tuple[str, bytes | None, Callable[[tarfile.TarInfo], None] | None]]:
    """A pre-25 `docker save` layout: <hex>.json config, <id>/layer.tar layers."""
    config = formats.image_config(
        architecture="amd64", os="linux", config={}, diff_ids=[sha256_digest(layer)], history=[], created="x"
    )
    hexd = sha256_digest(config).removeprefix("sha256:")
    manifest = [{"Config": f"{hexd}.json", "RepoTags": ["old:1"], "Layers": ["abc/layer.tar"]}]
    return [
        ("manifest.json", json.dumps(manifest).encode(), None),
        (f"{hexd}.json", config, None),
        ("abc/layer.tar", layer, None),
    ]


def symlink(target: str) -> Callable[[tarfile.TarInfo], None]:
    def tweak(info: tarfile.TarInfo) -> None:
        info.type = tarfile.SYMTYPE
        info.linkname = target
        info.size = 0

    return tweak


def test_the_legacy_docker_save_layout_is_read(tmp_path: Path) -> None:
    path = make_tar(tmp_path / "a.tar", legacy_archive(BASE))
    with read_archive(path) as contents:
        (image,) = contents.images
        assert image.repo_tags == ("old:1",)
        assert image.layers[0].digest is None  # not known from a manifest
        assert image.layers[0].media_type == formats.OCI_LAYER  # sniffed: a plain tar
        assert read_layer(contents, image.layers[0].member_name) == BASE


def test_a_symlinked_layer_inside_the_archive_is_followed(tmp_path: Path) -> None:
    members = legacy_archive(BASE)
    members[2] = ("real/layer.tar", BASE, None)
    members.append(("abc/layer.tar", None, symlink("../real/layer.tar")))
    with read_archive(make_tar(tmp_path / "a.tar", members)) as contents:
        layer = contents.images[0].layers[0]
        assert layer.member_name == "real/layer.tar"
        assert read_layer(contents, "abc/layer.tar") == BASE


def test_a_legacy_config_that_does_not_match_its_name_is_refused(tmp_path: Path) -> None:
    members = legacy_archive(BASE)
    name, config, _ = members[1]
    members[1] = (name, config.replace(b"amd64", b"arm64"), None)
    with pytest.raises(InvalidArgument, match="does not match"):
        read_archive(make_tar(tmp_path / "a.tar", members))


@pytest.mark.parametrize(
    "extra",
    [
        ("../x", b"evil", None),
        ("/etc/cron.d/x", b"evil", None),
        ("a/../../x", b"evil", None),
        ("escape", None, symlink("../../etc/passwd")),
        ("abs-link", None, symlink("/etc/passwd")),
        ("blobs/sha256/" + "a" * 64, None, symlink("manifest.json")),
        ("manifest.json", b"[]", None),  # a second manifest.json that would shadow the first
    ],
)
def test_hostile_members_are_refused(tmp_path: Path, extra: tuple) -> None:  # type: ignore[type-arg]
    path = make_tar(tmp_path / "a.tar", [*legacy_archive(BASE), extra])
    with pytest.raises(UnsafeArchive):
        read_archive(path)


def _with_manifest(tmp_path: Path, manifest: object) -> Path:
    members = legacy_archive(BASE)
    members[0] = ("manifest.json", json.dumps(manifest).encode(), None)
    return make_tar(tmp_path / "a.tar", members)


@pytest.mark.parametrize(
    "manifest",
    [
        [{"Config": "../../etc/passwd", "RepoTags": [], "Layers": []}],
        [{"Config": "/etc/passwd", "RepoTags": [], "Layers": []}],
    ],
)
def test_manifest_paths_outside_the_archive_are_refused(tmp_path: Path, manifest: object) -> None:
    with pytest.raises(UnsafeArchive):
        read_archive(_with_manifest(tmp_path, manifest))


def test_a_layer_path_outside_the_archive_is_refused(tmp_path: Path) -> None:
    members = legacy_archive(BASE)
    manifest = json.loads(members[0][1])  # type: ignore[arg-type]
    manifest[0]["Layers"] = ["../../etc/passwd"]
    with pytest.raises(UnsafeArchive):
        read_archive(_with_manifest(tmp_path, manifest))


@pytest.mark.parametrize("config_path", ["blobs/sha256/xyz", "blobs/sha256/" + "A" * 64, "blobs/md5/abc"])
def test_a_config_path_with_an_invalid_digest_is_refused(tmp_path: Path, config_path: str) -> None:
    members = legacy_archive(BASE)
    members.append((config_path, members[1][1], None))
    manifest = [{"Config": config_path, "RepoTags": [], "Layers": ["abc/layer.tar"]}]
    members[0] = ("manifest.json", json.dumps(manifest).encode(), None)
    with pytest.raises(InvalidArgument):
        read_archive(make_tar(tmp_path / "a.tar", members))


@pytest.mark.parametrize(
    "manifest",
    [
        {"not": "a list"},
        [{"Config": 5}],
        [{"Config": "missing.json", "Layers": []}],
        [{"Config": "x.json", "Layers": "abc/layer.tar"}],
    ],
)
def test_malformed_manifest_json_is_refused(tmp_path: Path, manifest: object) -> None:
    with pytest.raises(InvalidArgument):
        read_archive(_with_manifest(tmp_path, manifest))


def test_a_layer_count_that_disagrees_with_the_config_is_refused(tmp_path: Path) -> None:
    members = legacy_archive(BASE)
    manifest = json.loads(members[0][1])  # type: ignore[arg-type]
    manifest[0]["Layers"] = ["abc/layer.tar", "abc/layer.tar"]
    with pytest.raises(InvalidArgument, match="number of layers"):
        read_archive(_with_manifest(tmp_path, manifest))


def test_a_huge_manifest_is_refused_without_reading_it(tmp_path: Path) -> None:
    huge = b"[" + b" " * (formats.MAX_DOCUMENT_SIZE + 1) + b"]"
    members = legacy_archive(BASE)
    members[0] = ("manifest.json", huge, None)
    with pytest.raises(UnsafeArchive, match="limit"):
        read_archive(make_tar(tmp_path / "a.tar", members))


def test_an_oci_index_with_an_invalid_digest_is_refused(tmp_path: Path) -> None:
    index = {
        "schemaVersion": 2,
        "manifests": [{"mediaType": formats.OCI_MANIFEST, "digest": "sha256:zzz", "size": 1}],
    }
    path = make_tar(
        tmp_path / "a.tar",
        [
            ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}', None),
            ("index.json", json.dumps(index).encode(), None),
        ],
    )
    with pytest.raises(InvalidArgument):
        read_archive(path)


def test_an_oci_blob_that_does_not_match_its_digest_is_refused(tmp_path: Path) -> None:
    store = Store()
    path = write(tmp_path / "out.tar", store, [store.image([BASE], ["a:1"])])
    tampered = tmp_path / "tampered.tar"
    with tarfile.open(path) as src, tarfile.open(tampered, "w") as dst:
        for info in src:
            if info.name == "manifest.json":
                continue
            data = src.extractfile(info).read() if info.isreg() else None  # type: ignore[union-attr]
            if data is not None and data.startswith(b'{"architecture"'):
                data = data.replace(b"amd64", b"arm64")
            dst.addfile(info, io.BytesIO(data) if data is not None else None)
    with pytest.raises(InvalidArgument, match="does not match"):
        read_archive(tampered)


def test_a_multi_platform_index_picks_this_hosts_image(tmp_path: Path) -> None:
    store = Store()
    amd = store.image([BASE], [])
    arm_config = amd.config.replace(b'"amd64"', b'"arm64"')
    arm = SaveImage(sha256_digest(arm_config), arm_config, amd.layers, [])
    blobs: dict[str, bytes] = {amd.config_digest: amd.config, arm.config_digest: arm.config}
    descs = []
    for img, arch in ((arm, "arm64"), (amd, "amd64")):
        manifest = formats.oci_manifest(
            img.config_digest,
            len(img.config),
            [(formats.OCI_LAYER_GZIP, amd.layers[0].digest, amd.layers[0].size)],
        )
        blobs[sha256_digest(manifest)] = manifest
        descs.append(
            formats.Descriptor(
                formats.OCI_MANIFEST,
                sha256_digest(manifest),
                len(manifest),
                platform=formats.Platform("linux", arch),
            )
        )
    nested = formats.oci_index(descs)
    blobs[sha256_digest(nested)] = nested
    blobs[amd.layers[0].digest] = store.blobs[amd.layers[0].digest]
    top = formats.oci_index(
        [
            formats.Descriptor(
                formats.OCI_INDEX,
                sha256_digest(nested),
                len(nested),
                {"io.containerd.image.name": "docker.io/library/multi:1"},
            )
        ]
    )
    members = [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}', None), ("index.json", top, None)]
    members += [("blobs/sha256/" + d.removeprefix("sha256:"), data, None) for d, data in blobs.items()]
    with read_archive(make_tar(tmp_path / "multi.tar", members)) as contents:
        (image,) = contents.images
        want = formats.host_platform().architecture
        assert json.loads(image.config)["architecture"] == (want if want in ("amd64", "arm64") else "amd64")
        assert image.repo_tags == ("docker.io/library/multi:1",)


def test_a_file_that_is_not_an_archive_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"hello")
    with pytest.raises(InvalidArgument):
        read_archive(tmp_path / "x")
    with pytest.raises(InvalidArgument):
        read_archive(tmp_path / "missing")
    with pytest.raises(InvalidArgument, match="neither"):
        read_archive(make_tar(tmp_path / "empty.tar", [("readme", b"hi", None)]))


def test_open_member_refuses_unsafe_names(tmp_path: Path) -> None:
    with read_archive(make_tar(tmp_path / "a.tar", legacy_archive(BASE))) as contents:
        with pytest.raises(UnsafeArchive):
            contents.open_member("../abc/layer.tar")
        with pytest.raises(InvalidArgument):
            contents.open_member("nope")


class Trickle(io.BytesIO):
    """A stream that returns at most 1000 bytes per read, like a pipe or a socket."""

    def read(self, n: int | None = -1) -> bytes:
        return super().read(1000 if n is None or n < 0 else min(n, 1000))


def test_a_layer_larger_than_a_chunk_streams_through_intact_from_a_slow_source(tmp_path: Path) -> None:
    import random

    big = layer_tar({"data": random.Random(0).randbytes(2 * 1024 * 1024 + 12345)})
    store = Store()
    image = store.image([big], ["big:1"])
    path = tmp_path / "big.tar"
    with open(path, "wb") as out:
        write_archive(out, [image], open_blob=lambda d: Trickle(store.blobs[d]))
    with read_archive(path) as contents:
        layer = contents.images[0].layers[0]
        assert layer.size > 2 * 1024 * 1024
        assert sha256_digest(read_layer(contents, layer.member_name)) == layer.digest


def test_a_compressed_archive_may_not_expand_past_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.image import archive

    monkeypatch.setattr(archive, "MAX_EXPANDED_SIZE", 64 * 1024)
    bomb = tmp_path / "bomb.tar.gz"
    bomb.write_bytes(gzip.compress(b"\0" * (1024 * 1024)))
    with pytest.raises(UnsafeArchive, match="expands"):
        read_archive(bomb, tmpdir=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["bomb.tar.gz"]  # no temp file left behind


def test_an_oversized_tar_header_record_is_refused(tmp_path: Path) -> None:
    # tarfile would read a PAX record of whatever size its header claims into memory
    path = tmp_path / "pax.tar"
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("manifest.json")
        info.pax_headers = {"comment": "x" * (2 * 1024 * 1024)}
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(UnsafeArchive, match="header"):
        read_archive(path)


def test_a_layer_truncated_while_being_read_raises_invalid_argument(tmp_path: Path) -> None:
    import os
    import random

    big = random.Random(1).randbytes(512 * 1024)
    path = make_tar(tmp_path / "a.tar", legacy_archive(big))
    with read_archive(path) as contents:
        # the file shrinks under us (a damaged disk, a concurrent writer): not a raw OSError/TarError
        os.truncate(path, path.read_bytes().index(big[:4096]) + 100_000)
        with pytest.raises(InvalidArgument, match="cannot be read"):
            read_layer(contents, contents.images[0].layers[0].member_name)
