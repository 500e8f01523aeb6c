"""Pull and push against a real registry (Debian's docker-registry on 127.0.0.1) and a hostile fake one.

A module-wide registry is filled by skopeo from an archive `berth save` wrote, so what we pull was put
there by another implementation of the protocol; what we push is read back by skopeo and by a fresh
engine. All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from engine import conf
from engine.errors import BadReference, ImageNotFound, RegistryAuthError, RegistryError
from engine.image import formats
from engine.models import Event, Image, Layer, RepoDigest
from engine.progress import LayerProgress, OutputLine, ProgressEvent
from engine.services import images, imagestore, registry, system
from tests.conftest import TMP_PREFIX, require
from tests.registry import RunningRegistry, start_registry

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # deprecated, but the one stdlib way to bcrypt a password for the registry's htpasswd

REPO = Path(__file__).resolve().parents[2]
SKOPEO = "/usr/bin/skopeo"
PASSWORD = "s3cret-pw-for-test"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- a real registry --------------------------------------------------------------------------------


def skopeo(*args: str) -> str:
    require(os.access(SKOPEO, os.X_OK), f"{SKOPEO} is not installed (apt-get install skopeo)")
    with tempfile.TemporaryDirectory(prefix=TMP_PREFIX + "skopeo-") as tmp:
        proc = subprocess.run(
            [SKOPEO, "--insecure-policy", "--tmpdir", tmp, *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert proc.returncode == 0, f"skopeo {' '.join(args)} failed: {proc.stderr}"
    return proc.stdout


class Berth:
    """`manage.py berth …` in a subprocess against its own engine root (and its own database)."""

    def __init__(self, root: Path) -> None:
        self.env = {**os.environ, "BERTH_ROOT": str(root), "BERTH_RUN": str(root / "run")}
        self.env.pop("DATABASE_URL", None)
        self.env["BERTH_ADMIN_PASSWORD"] = "pw"

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    def ok(self, *args: str) -> str:
        proc = self.run(*args)
        assert proc.returncode == 0, f"manage.py {' '.join(args)} exited {proc.returncode}: {proc.stderr}"
        return proc.stdout


@dataclass(frozen=True)
class Published:
    netloc: str
    ref: str  # 127.0.0.1:PORT/test/busybox:1
    image_id: str  # the ID of the image skopeo copied there
    manifest_digest: str


@pytest.fixture(scope="module")
def real_registry() -> Iterator[RunningRegistry]:
    directory = Path(tempfile.mkdtemp(prefix=TMP_PREFIX + "reg-", dir="/tmp"))
    running = start_registry(directory)
    yield running
    running.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def published(real_registry: RunningRegistry) -> Iterator[Published]:
    """busybox seeded and saved by berth in a scratch root, copied into the registry by skopeo."""
    scratch = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir="/tmp"))
    try:
        berth = Berth(scratch)
        berth.ok("setup")
        image_id = berth.ok("berth", "images", "-q", "--no-trunc", "busybox").split()[0]
        berth.ok("berth", "save", "busybox", "-o", str(scratch / "busybox.tar"))
        ref = f"{real_registry.netloc}/test/busybox:1"
        skopeo(
            "copy", "--dest-tls-verify=false", f"docker-archive:{scratch / 'busybox.tar'}", f"docker://{ref}"
        )
        info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{ref}"))
        yield Published(real_registry.netloc, ref, image_id, info["Digest"])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class Recorder:
    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []

    def __call__(self, event: ProgressEvent) -> None:
        self.events.append(event)

    @property
    def lines(self) -> list[str]:
        return [e.text for e in self.events if isinstance(e, OutputLine)]

    @property
    def statuses(self) -> set[str]:
        return {e.status for e in self.events if isinstance(e, LayerProgress)}


# -- pull -------------------------------------------------------------------------------------------


def test_pull_by_tag_stores_the_same_image_as_the_original(engine: Path, published: Published) -> None:
    out = Recorder()
    image = registry.pull(published.ref, progress=out)
    # Same config bytes → same ID: nothing was lost or re-encoded on the way through skopeo and the registry.
    assert image.id == published.image_id
    (row,) = images.list_images()
    assert (row.repository, row.tag) == (f"{published.netloc}/test/busybox", "1")
    assert row.digest == published.manifest_digest
    assert list(image.repo_digests.values_list("name", flat=True)) == [
        f"{published.netloc}/test/busybox@{published.manifest_digest}"
    ]
    assert "Pull complete" in out.statuses
    assert out.lines[-2:] == [
        f"Digest: {published.manifest_digest}",
        f"Status: Downloaded newer image for {published.ref}",
    ]
    assert Event.objects.filter(action="pull", object_id=image.id, result="ok").exists()


def test_pulling_again_is_up_to_date_and_stores_no_new_blobs(engine: Path, published: Published) -> None:
    registry.pull(published.ref)
    blobs = imagestore.blob_store().digests()
    out = Recorder()
    registry.pull(published.ref, progress=out)
    assert imagestore.blob_store().digests() == blobs
    assert out.statuses == {"Already exists"}
    assert out.lines[-1] == f"Status: Image is up to date for {published.ref}"


def test_pull_by_digest_names_the_image_by_digest_only(engine: Path, published: Published) -> None:
    by_digest = f"{published.netloc}/test/busybox@{published.manifest_digest}"
    image = registry.pull(by_digest)
    assert image.id == published.image_id
    assert not image.tags.exists()
    assert images.resolve(by_digest).id == image.id


def test_pull_of_an_unknown_tag_is_image_not_found_and_stores_nothing(
    engine: Path, published: Published
) -> None:
    with pytest.raises(ImageNotFound, match="manifest unknown"):
        registry.pull(f"{published.netloc}/test/busybox:no-such-tag")
    assert not Image.objects.exists()
    assert Event.objects.filter(action="pull", result="error").exists()


def test_pull_of_a_bad_reference_fails_before_any_traffic(engine: Path) -> None:
    with pytest.raises(BadReference):
        registry.pull("127.0.0.1:1/UPPER/case")


# -- push -------------------------------------------------------------------------------------------


def test_a_pushed_image_pulls_into_a_fresh_engine_with_the_same_id(
    engine: Path, real_registry: RunningRegistry
) -> None:
    seeded = system.seed()
    target = f"{real_registry.netloc}/test/pushed:2"
    images.tag("busybox", target)
    out = Recorder()
    result = registry.push(target, progress=out)
    assert "Pushed" in out.statuses
    assert out.lines[-1] == f"2: digest: {result.digest} size: {result.size}"
    assert RepoDigest.objects.filter(name=f"{real_registry.netloc}/test/pushed@{result.digest}").exists()
    assert Event.objects.filter(action="push", object_id=seeded.id, result="ok").exists()

    fresh = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir="/tmp"))
    try:
        berth = Berth(fresh)
        berth.ok("migrate", "-v0")
        output = berth.ok("berth", "pull", target).splitlines()
        assert output[-3:] == [
            f"Digest: {result.digest}",
            f"Status: Downloaded newer image for {target}",
            target,
        ]
        assert berth.ok("berth", "images", "-q", "--no-trunc").split() == [seeded.id]
    finally:
        shutil.rmtree(fresh, ignore_errors=True)


def test_skopeo_reads_what_we_pushed(engine: Path, real_registry: RunningRegistry) -> None:
    seeded = system.seed()
    target = f"{real_registry.netloc}/test/forskopeo:1"
    images.tag("busybox", target)
    result = registry.push(target)
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{target}"))
    assert info["Digest"] == result.digest
    assert info["Layers"] == [row.layer.blob_digest for row in seeded.image_layers.select_related("layer")]
    config = json.loads(skopeo("inspect", "--config", "--tls-verify=false", f"docker://{target}"))
    assert config["rootfs"]["diff_ids"] == [
        row.layer.diff_id for row in seeded.image_layers.select_related("layer")
    ]


def test_pushing_again_skips_blobs_the_registry_has(engine: Path, real_registry: RunningRegistry) -> None:
    system.seed()
    target = f"{real_registry.netloc}/test/twice:1"
    images.tag("busybox", target)
    registry.push(target)
    out = Recorder()
    registry.push(target, progress=out)
    assert out.statuses == {"Layer already exists"}


def test_push_of_a_name_with_no_local_image_is_image_not_found(engine: Path) -> None:
    with pytest.raises(ImageNotFound, match="does not exist locally"):
        registry.push("127.0.0.1:1/nothing/here:1")


# -- authentication against a real registry ---------------------------------------------------------


@pytest.fixture(scope="module")
def secured_registry() -> Iterator[RunningRegistry]:
    directory = Path(tempfile.mkdtemp(prefix=TMP_PREFIX + "reg-", dir="/tmp"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        hashed = crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
    require(hashed.startswith("$2"), "libc crypt() has no bcrypt, needed for the registry's htpasswd file")
    (directory / "htpasswd").write_text(f"alice:{hashed}\n")
    running = start_registry(directory, htpasswd=directory / "htpasswd")
    yield running
    running.stop()
    shutil.rmtree(directory, ignore_errors=True)


def test_a_registry_requiring_auth_says_to_log_in(engine: Path, secured_registry: RunningRegistry) -> None:
    with pytest.raises(
        RegistryAuthError, match=f"authentication required: run berth login {secured_registry.netloc}"
    ):
        registry.pull(f"{secured_registry.netloc}/sec/busybox:1")


def test_login_with_a_wrong_password_stores_nothing(engine: Path, secured_registry: RunningRegistry) -> None:
    with pytest.raises(RegistryAuthError, match="unauthorized"):
        registry.login(secured_registry.netloc, "alice", "wrong")
    assert not (conf.root() / "auth.json").exists()


def test_login_lets_push_and_pull_through_and_keeps_the_password_secret(
    engine: Path, secured_registry: RunningRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    seeded = system.seed()
    target = f"{secured_registry.netloc}/sec/busybox:1"
    images.tag("busybox", target)
    registry.login(secured_registry.netloc, "alice", PASSWORD)
    auth_file = conf.root() / "auth.json"
    assert stat.S_IMODE(auth_file.stat().st_mode) == 0o600
    registry.push(target)
    images.remove(seeded.id, force=True)
    assert registry.pull(target).id == seeded.id
    assert PASSWORD not in caplog.text
    assert not any(PASSWORD in str(e.attributes) + e.message for e in Event.objects.all())
    assert registry.logout(secured_registry.netloc) is True
    with pytest.raises(RegistryAuthError):
        registry.pull(target)


def test_cli_login_reads_the_password_from_stdin_and_never_prints_it(
    secured_registry: RunningRegistry,
) -> None:
    root = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir="/tmp"))
    try:
        berth = Berth(root)
        berth.ok("migrate", "-v0")
        proc = berth.run(
            "berth", "login", "-u", "alice", "--password-stdin", secured_registry.netloc, stdin=PASSWORD
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == "Login Succeeded\n"
        assert PASSWORD not in proc.stderr
        bad = berth.run(
            "berth", "login", "-u", "alice", "--password-stdin", secured_registry.netloc, stdin="nope"
        )
        assert bad.returncode != 0
        assert bad.stderr.startswith("Error: ") and len(bad.stderr.strip().splitlines()) == 1
        assert berth.ok("berth", "logout", secured_registry.netloc).startswith("Removing login credentials")
    finally:
        shutil.rmtree(root, ignore_errors=True)


# -- a hostile registry -----------------------------------------------------------------------------


def layer_tar(content: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = len(content)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


class FakeRegistry:
    """Serves fixed bytes per path; records every request. Whatever the test puts there, it serves."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[str, bytes]] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                media_type, body = fake.files.get(self.path, ("application/json", b'{"errors":[]}'))
                self.send_response(200 if self.path in fake.files else 404)
                self.send_header("Content-Type", media_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02})
        self.thread.start()

    @property
    def netloc(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def put_image(self, repo: str, layer: bytes, *, served_layer: bytes | None = None) -> tuple[bytes, str]:
        """Publish a one-layer image; `served_layer` replaces the layer's bytes on the wire."""
        config = formats.image_config(
            architecture=formats.host_platform().architecture,
            os="linux",
            config={"Cmd": ["/hello.txt"]},
            diff_ids=[digest(layer)],
            history=[{"created_by": "test"}],
            created="2024-01-01T00:00:00Z",
        )
        manifest = formats.oci_manifest(
            digest(config), len(config), [(formats.OCI_LAYER, digest(layer), len(layer))]
        )
        self.files[f"/v2/{repo}/blobs/{digest(config)}"] = ("application/octet-stream", config)
        self.files[f"/v2/{repo}/blobs/{digest(layer)}"] = ("application/octet-stream", served_layer or layer)
        self.files[f"/v2/{repo}/manifests/{digest(manifest)}"] = (formats.OCI_MANIFEST, manifest)
        return manifest, digest(config)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def fake_registry() -> Iterator[FakeRegistry]:
    fake = FakeRegistry()
    yield fake
    fake.stop()


def store_is_empty() -> bool:
    leftovers = [p for p in conf.layers_dir().iterdir()] if conf.layers_dir().exists() else []
    return not leftovers and not imagestore.blob_store().digests() and not Layer.objects.exists()


def test_a_layer_that_does_not_match_its_digest_leaves_nothing(
    engine: Path, fake_registry: FakeRegistry
) -> None:
    honest = layer_tar(b"the real content")
    forged = layer_tar(b"evil content!!!!")
    assert len(honest) == len(forged)  # same size, so only the digest check can catch it
    manifest, _ = fake_registry.put_image("bad/app", honest, served_layer=forged)
    fake_registry.files["/v2/bad/app/manifests/1"] = (formats.OCI_MANIFEST, manifest)
    with pytest.raises(RegistryError, match="digest mismatch"):
        registry.pull(f"{fake_registry.netloc}/bad/app:1")
    assert not Image.objects.exists()
    assert store_is_empty()
    temp = (
        [p for p in (conf.blobs_dir() / "sha256").iterdir()] if (conf.blobs_dir() / "sha256").exists() else []
    )
    assert temp == []  # no half-written blob under any name


def test_an_index_pulls_the_host_platform_and_records_the_index_digest(
    engine: Path, fake_registry: FakeRegistry
) -> None:
    manifest, config_digest = fake_registry.put_image("multi/app", layer_tar(b"hi"))
    host = formats.host_platform()
    index = formats.oci_index(
        [
            formats.Descriptor(
                formats.OCI_MANIFEST, digest(b"not served"), 10, platform=formats.Platform("linux", "s390x")
            ),
            formats.Descriptor(formats.OCI_MANIFEST, digest(manifest), len(manifest), platform=host),
        ]
    )
    fake_registry.files["/v2/multi/app/manifests/latest"] = (formats.OCI_INDEX, index)
    image = registry.pull(f"{fake_registry.netloc}/multi/app")
    assert image.id == config_digest
    assert RepoDigest.objects.get(image=image).name == f"{fake_registry.netloc}/multi/app@{digest(index)}"
    with pytest.raises(ImageNotFound, match="no matching manifest for linux/riscv64"):
        registry.pull(f"{fake_registry.netloc}/multi/app", platform="linux/riscv64")


def test_a_manifest_served_under_a_digest_it_does_not_have_is_refused(
    engine: Path, fake_registry: FakeRegistry
) -> None:
    manifest, _ = fake_registry.put_image("swap/app", layer_tar(b"hi"))
    other = digest(b"some other manifest")
    fake_registry.files[f"/v2/swap/app/manifests/{other}"] = (formats.OCI_MANIFEST, manifest)
    with pytest.raises(RegistryError, match="digest mismatch"):
        registry.pull(f"{fake_registry.netloc}/swap/app@{other}")
    assert not Image.objects.exists()
