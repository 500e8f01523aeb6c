"""Our image archives against skopeo (containers/image): each side reads what the other writes."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from engine.image import formats
from engine.image.archive import read_archive
from engine.image.archivewriter import SaveImage, SaveLayer, write_archive
from engine.store.digests import sha256_digest
from tests.conftest import require

SKOPEO = "/usr/bin/skopeo"


def _layer(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


PLAIN_LAYERS = [_layer({"bin/hello": b"#!/bin/sh\necho hello\n"}), _layer({"etc/motd": b"welcome\n"})]
DIFF_IDS = [sha256_digest(p) for p in PLAIN_LAYERS]


@pytest.fixture
def ours(tmp_path: Path) -> tuple[Path, SaveImage, dict[str, bytes]]:
    """An archive written by write_archive holding one two-layer image tagged foo:1."""
    require(os.access(SKOPEO, os.X_OK), f"{SKOPEO} is not installed (apt-get install skopeo)")
    blobs: dict[str, bytes] = {}
    layers = []
    for plain in PLAIN_LAYERS:
        blob = gzip.compress(plain, mtime=0)
        blobs[sha256_digest(blob)] = blob
        layers.append(SaveLayer(sha256_digest(blob), len(blob), formats.OCI_LAYER_GZIP))
    config = formats.image_config(
        architecture="amd64",
        os="linux",
        config={"Cmd": ["/bin/hello"], "Env": ["PATH=/bin"]},
        diff_ids=DIFF_IDS,
        history=[{"created_by": "test"}, {"created_by": "test"}],
        created="2024-01-01T00:00:00Z",
    )
    image = SaveImage(sha256_digest(config), config, layers, ["foo:1"])
    path = tmp_path / "ours.tar"
    with open(path, "wb") as out:
        write_archive(out, [image], open_blob=lambda d: io.BytesIO(blobs[d]))
    return path, image, blobs


def skopeo(tmp_path: Path, *args: str) -> str:
    tmp = tmp_path / "skopeo-tmp"
    tmp.mkdir(exist_ok=True)
    proc = subprocess.run(
        [SKOPEO, "--insecure-policy", "--tmpdir", str(tmp), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"skopeo {' '.join(args)} failed: {proc.stderr}"
    return proc.stdout


def oci_dir_image(directory: Path) -> tuple[dict, dict, str]:  # type: ignore[type-arg]
    """(manifest, config, manifest digest) of the single image in an OCI layout directory."""
    index = json.loads((directory / "index.json").read_text())
    (desc,) = index["manifests"]
    blob = lambda d: (directory / "blobs/sha256" / d.removeprefix("sha256:")).read_bytes()  # noqa: E731
    manifest = json.loads(blob(desc["digest"]))
    return manifest, json.loads(blob(manifest["config"]["digest"])), desc["digest"]


def test_skopeo_inspects_our_archive_as_a_docker_archive(tmp_path: Path, ours) -> None:  # type: ignore[no-untyped-def]
    path, image, _ = ours
    info = json.loads(skopeo(tmp_path, "inspect", f"docker-archive:{path}"))
    assert (info["Architecture"], info["Os"]) == ("amd64", "linux")
    # a docker-archive source presents layers by their uncompressed digests
    assert info["Layers"] == DIFF_IDS


def test_skopeo_inspects_our_archive_as_an_oci_archive(tmp_path: Path, ours) -> None:  # type: ignore[no-untyped-def]
    path, image, _ = ours
    info = json.loads(skopeo(tmp_path, "inspect", f"oci-archive:{path}"))
    assert info["Layers"] == [ly.digest for ly in image.layers]
    config = json.loads(skopeo(tmp_path, "inspect", "--config", f"oci-archive:{path}"))
    assert config["rootfs"]["diff_ids"] == DIFF_IDS


def test_skopeo_copies_our_docker_archive_into_an_oci_directory(tmp_path: Path, ours) -> None:  # type: ignore[no-untyped-def]
    path, _, _ = ours
    skopeo(tmp_path, "copy", f"docker-archive:{path}", f"oci:{tmp_path / 'dir'}:tag")
    manifest, config, _ = oci_dir_image(tmp_path / "dir")
    assert config["rootfs"]["diff_ids"] == DIFF_IDS
    # skopeo may recompress, so compare each copied layer's uncompressed bytes with ours
    for desc, plain in zip(manifest["layers"], PLAIN_LAYERS, strict=True):
        blob = (tmp_path / "dir/blobs/sha256" / desc["digest"].removeprefix("sha256:")).read_bytes()
        assert hashlib.sha256(blob).hexdigest() == desc["digest"].removeprefix("sha256:")
        assert sha256_digest(gzip.decompress(blob)) == sha256_digest(plain)


def test_skopeo_copies_our_oci_archive_byte_for_byte(tmp_path: Path, ours) -> None:  # type: ignore[no-untyped-def]
    path, image, _ = ours
    skopeo(tmp_path, "copy", f"oci-archive:{path}", f"oci:{tmp_path / 'dir'}:tag")
    manifest, _, _ = oci_dir_image(tmp_path / "dir")
    # no conversion on this path: config and layer blobs keep our digests
    assert manifest["config"]["digest"] == image.config_digest
    assert [d["digest"] for d in manifest["layers"]] == [ly.digest for ly in image.layers]


def test_we_read_an_oci_archive_written_by_skopeo(tmp_path: Path, ours) -> None:  # type: ignore[no-untyped-def]
    path, _, _ = ours
    theirs = tmp_path / "theirs.tar"
    skopeo(tmp_path, "copy", f"docker-archive:{path}", f"oci-archive:{theirs}:foo:1")
    expected = json.loads(skopeo(tmp_path, "inspect", "--raw", f"oci-archive:{theirs}"))
    with read_archive(theirs) as contents:
        assert contents.format == "oci"
        (image,) = contents.images
        assert image.repo_tags == ("foo:1",)
        assert image.config_digest == expected["config"]["digest"]
        assert json.loads(image.config)["rootfs"]["diff_ids"] == DIFF_IDS
        assert [ly.digest for ly in image.layers] == [d["digest"] for d in expected["layers"]]
        for layer, plain in zip(image.layers, PLAIN_LAYERS, strict=True):
            with contents.open_member(layer.member_name) as stream:
                blob = stream.read()
            assert sha256_digest(blob) == layer.digest
            assert gzip.decompress(blob) == plain


def test_we_read_a_docker_archive_written_by_skopeo(tmp_path: Path, ours) -> None:  # type: ignore[no-untyped-def]
    path, image, _ = ours
    theirs = tmp_path / "theirs2.tar"
    skopeo(tmp_path, "copy", f"docker-archive:{path}", f"docker-archive:{theirs}:foo:1")
    with read_archive(theirs) as contents:
        assert contents.format == "docker"
        (got,) = contents.images
        assert got.repo_tags == ("docker.io/library/foo:1",)
        # docker-archive to docker-archive keeps the config untouched, so the image ID survives
        assert got.config_digest == image.config_digest
        for layer, diff_id in zip(got.layers, DIFF_IDS, strict=True):
            with contents.open_member(layer.member_name) as stream:
                assert sha256_digest(stream.read()) == diff_id
