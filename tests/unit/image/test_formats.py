"""OCI / Docker JSON documents: canonical building and strict parsing."""

from __future__ import annotations

import json

import pytest

from engine.errors import InvalidArgument
from engine.image import formats
from engine.store.digests import sha256_digest

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64


def _config(**overrides: object) -> bytes:
    doc: dict[str, object] = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"], "Labels": {"a": "b"}, "ExposedPorts": {"80/tcp": {}}},
        "rootfs": {"type": "layers", "diff_ids": [D1]},
        "history": [{"created_by": "x"}],
    }
    doc.update(overrides)
    return json.dumps(doc).encode()


def _manifest(**overrides: object) -> bytes:
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": formats.DOCKER_MANIFEST,
        "config": {"mediaType": formats.DOCKER_CONFIG, "digest": D1, "size": 10},
        "layers": [{"mediaType": formats.DOCKER_LAYER_GZIP, "digest": D2, "size": 20}],
    }
    doc.update(overrides)
    return json.dumps(doc).encode()


def test_image_config_is_canonical_and_deterministic() -> None:
    kwargs = dict(architecture="amd64", os="linux", config={"Cmd": ["sh"], "Env": []}, diff_ids=[D1])
    a = formats.image_config(**kwargs, history=[], created="2024-01-01T00:00:00Z")  # type: ignore[arg-type]
    b = formats.image_config(**kwargs, history=[], created="2024-01-01T00:00:00Z")  # type: ignore[arg-type]
    assert a == b
    # no whitespace and sorted keys: the bytes, hence the image ID, depend only on the content
    assert b" " not in a
    assert a == json.dumps(json.loads(a), sort_keys=True, separators=(",", ":")).encode()
    parsed = formats.parse_config(a)
    assert parsed.diff_ids == (D1,)
    assert parsed.config == {"Cmd": ["sh"], "Env": []}


def test_image_config_refuses_a_bad_diff_id() -> None:
    with pytest.raises(InvalidArgument):
        formats.image_config(
            architecture="amd64", os="linux", config={}, diff_ids=["sha256:ABC"], history=[], created="x"
        )


def test_parse_config_reads_the_runtime_defaults() -> None:
    cfg = formats.parse_config(_config())
    assert (cfg.architecture, cfg.os, cfg.created) == ("amd64", "linux", "2024-01-01T00:00:00Z")
    assert cfg.config["Cmd"] == ["sh"]
    assert cfg.history == ({"created_by": "x"},)


def test_parse_config_treats_null_config_as_empty() -> None:
    assert formats.parse_config(_config(config=None)).config == {}


@pytest.mark.parametrize(
    "overrides",
    [
        {"rootfs": {"type": "layers", "diff_ids": ["sha256:" + "A" * 64]}},
        {"rootfs": {"type": "layers", "diff_ids": ["sha256:" + "a" * 63]}},
        {"rootfs": {"type": "layers", "diff_ids": ["../../etc/passwd"]}},
        {"rootfs": {"type": "layers", "diff_ids": [7]}},
        {"rootfs": {"type": "squash", "diff_ids": []}},
        {"rootfs": None},
        {"architecture": 5},
        {"os": ""},
        {"config": {"Cmd": "sh -c true"}},
        {"config": {"Env": [1]}},
        {"config": {"Labels": {"a": 1}}},
        {"config": {"WorkingDir": ["/"]}},
        {"config": {"ExposedPorts": ["80/tcp"]}},
        {"config": []},
        {"history": [{"empty_layer": "yes"}]},
        {"history": ["x"]},
    ],
)
def test_parse_config_refuses_malformed_documents(overrides: dict[str, object]) -> None:
    with pytest.raises(InvalidArgument):
        formats.parse_config(_config(**overrides))


@pytest.mark.parametrize("data", [b"", b"not json", b"[]", b"\xff\xfe", b"null"])
def test_parse_config_refuses_non_objects(data: bytes) -> None:
    with pytest.raises(InvalidArgument):
        formats.parse_config(data)


def test_documents_over_the_size_cap_are_refused_before_parsing() -> None:
    huge = b'{"pad":"' + b"x" * formats.MAX_DOCUMENT_SIZE + b'"}'
    with pytest.raises(InvalidArgument, match="limit"):
        formats.parse_manifest(huge)
    with pytest.raises(InvalidArgument, match="limit"):
        formats.parse_index(huge)
    with pytest.raises(InvalidArgument, match="limit"):
        formats.parse_config(b'{"pad":"' + b"x" * formats.MAX_CONFIG_SIZE + b'"}')


def test_oci_manifest_round_trips_through_parse_manifest() -> None:
    data = formats.oci_manifest(D1, 10, [(formats.OCI_LAYER_GZIP, D2, 20)], annotations={"k": "v"})
    m = formats.parse_manifest(data)
    assert m.media_type == formats.OCI_MANIFEST
    assert (m.config.media_type, m.config.digest, m.config.size) == (formats.OCI_CONFIG, D1, 10)
    assert [(ly.media_type, ly.digest, ly.size) for ly in m.layers] == [(formats.OCI_LAYER_GZIP, D2, 20)]
    assert m.annotations == {"k": "v"}
    assert data == formats.oci_manifest(D1, 10, [(formats.OCI_LAYER_GZIP, D2, 20)], annotations={"k": "v"})


def test_parse_manifest_accepts_docker_schema2() -> None:
    m = formats.parse_manifest(_manifest())
    assert m.media_type == formats.DOCKER_MANIFEST
    assert m.layers[0].media_type == formats.DOCKER_LAYER_GZIP


def test_parse_manifest_accepts_an_oci_manifest_without_media_type() -> None:
    doc = json.loads(formats.oci_manifest(D1, 1, []))
    del doc["mediaType"]
    assert formats.parse_manifest(json.dumps(doc).encode()).layers == ()


@pytest.mark.parametrize(
    "overrides",
    [
        {"schemaVersion": 1},
        {"mediaType": "application/vnd.docker.distribution.manifest.v1+prettyjws"},
        {"mediaType": formats.OCI_INDEX},
        {"mediaType": "text/plain"},
        {"config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": D1, "size": 1}},
        {"config": {"mediaType": formats.DOCKER_CONFIG, "digest": "sha256:zzz", "size": 1}},
        {"config": {"mediaType": formats.DOCKER_CONFIG, "digest": D1, "size": -1}},
        {"config": {"mediaType": formats.DOCKER_CONFIG, "digest": D1, "size": True}},
        {"config": {"mediaType": formats.DOCKER_CONFIG, "digest": D1}},
        {"layers": [{"mediaType": "application/x-evil", "digest": D2, "size": 1}]},
        {"layers": [{"mediaType": formats.OCI_LAYER, "digest": "sha512:" + "a" * 128, "size": 1}]},
        {"layers": {"0": {}}},
        {"annotations": {"a": 1}},
    ],
)
def test_parse_manifest_refuses_what_is_not_an_image_manifest(overrides: dict[str, object]) -> None:
    with pytest.raises(InvalidArgument):
        formats.parse_manifest(_manifest(**overrides))


def test_parse_index_reads_platforms_and_select_manifest_picks_one() -> None:
    entries = [
        formats.Descriptor(formats.OCI_MANIFEST, D1, 1, platform=formats.Platform("linux", "arm64", "v8")),
        formats.Descriptor(formats.OCI_MANIFEST, D2, 2, platform=formats.Platform("linux", "amd64")),
        formats.Descriptor(formats.OCI_MANIFEST, D3, 3, platform=formats.Platform("unknown", "unknown")),
    ]
    index = formats.parse_index(formats.oci_index(entries))
    assert index.manifests == tuple(entries)
    assert formats.select_manifest(index.manifests, formats.Platform("linux", "amd64")).digest == D2
    # arm64 with no variant means v8
    assert formats.select_manifest(index.manifests, formats.Platform("linux", "arm64")).digest == D1
    assert formats.select_manifest(index.manifests, formats.Platform("linux", "s390x")) is None


def test_parse_index_accepts_a_docker_manifest_list() -> None:
    doc = {
        "schemaVersion": 2,
        "mediaType": formats.DOCKER_MANIFEST_LIST,
        "manifests": [
            {
                "mediaType": formats.DOCKER_MANIFEST,
                "digest": D1,
                "size": 5,
                "platform": {"os": "linux", "architecture": "amd64"},
            }
        ],
    }
    index = formats.parse_index(json.dumps(doc).encode())
    assert index.media_type == formats.DOCKER_MANIFEST_LIST
    assert index.manifests[0].platform == formats.Platform("linux", "amd64")


def test_parse_index_refuses_a_manifest() -> None:
    with pytest.raises(InvalidArgument):
        formats.parse_index(_manifest())


def test_docker_layer_types_map_to_their_oci_twins() -> None:
    assert formats.oci_layer_media_type(formats.DOCKER_LAYER_GZIP) == formats.OCI_LAYER_GZIP
    assert formats.oci_layer_media_type(formats.OCI_LAYER) == formats.OCI_LAYER


def test_canonical_json_digest_is_stable() -> None:
    assert sha256_digest(formats.canonical_json({"b": 1, "a": [1, 2]})) == sha256_digest(b'{"a":[1,2],"b":1}')


def test_host_platform_is_linux() -> None:
    assert formats.host_platform().os == "linux"
