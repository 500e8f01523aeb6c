"""Image endpoints driven by the real docker CLI (DOCKER_BUILDKIT=0) and raw HTTP: list, inspect,
history, tag, rmi, prune, save/load, build, pull/push and login against a real local registry.

The server is shared by the session and keeps its images, so each test removes the names it made;
busybox:latest (seeded) must be present again when a test ends.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import socket
import subprocess
import tarfile
import tempfile
import urllib.parse
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import ApiServer
from tests.conftest import TMP_PREFIX
from tests.polling import wait_until
from tests.registry import RunningRegistry, free_port, start_registry


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def quoted(value: object) -> str:
    return urllib.parse.quote(json.dumps(value))


def json_lines(body: bytes) -> list[dict]:
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def image_ids(api: ApiServer) -> set[str]:
    return set(api.docker("images", "-a", "-q", "--no-trunc").stdout.split())


def build(api: ApiServer, context: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return api.docker("build", *args, str(context), check=check, timeout=300)


@pytest.fixture
def context_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=TMP_PREFIX + "ctx-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def label_image(api: ApiServer, directory: Path, tag: str, label: str) -> str:
    """Build a one-step image (busybox plus a label) and return its ID."""
    directory.mkdir(exist_ok=True)
    (directory / "Dockerfile").write_text(f"FROM busybox\nLABEL berth.test={label}\n")
    build(api, directory, "-q", "-t", tag)
    return api.docker("image", "inspect", "-f", "{{.Id}}", tag).stdout.strip()


# -- list, inspect, history ------------------------------------------------------------------------


def test_images_lists_busybox_in_docker_shape(api: ApiServer) -> None:
    out = api.docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout
    assert any(line.startswith("busybox:latest ") for line in out.splitlines()), out
    entry = next(i for i in api.get_json("/v1.44/images/json") if "busybox:latest" in i["RepoTags"])
    assert entry["Id"].startswith("sha256:") and len(entry["Id"]) == 71
    assert isinstance(entry["Created"], int) and entry["Created"] > 0
    assert entry["SharedSize"] == -1 and entry["Containers"] == -1
    assert "VirtualSize" not in entry  # dropped in API 1.44, still sent to older clients
    assert "VirtualSize" in api.get_json("/v1.41/images/json")[0]


def test_images_filters_by_reference_and_dangling(api: ApiServer) -> None:
    listed = api.get_json("/images/json?filters=" + quoted({"reference": ["busy*"]}))
    assert [i["RepoTags"] for i in listed] == [["busybox:latest"]]
    dangling = api.get_json("/images/json?filters=" + quoted({"dangling": {"true": True}}))
    assert all(i["RepoTags"] == [] for i in dangling)
    status, _, body = api.request("GET", "/images/json?filters=" + quoted({"colour": ["red"]}))
    assert status == 400 and "colour" in json.loads(body)["message"]


def test_image_inspect_format_and_unknown_image(api: ApiServer) -> None:
    out = api.docker("image", "inspect", "-f", "{{.Os}} {{index .RepoTags 0}}", "busybox").stdout
    assert out.strip() == "linux busybox:latest"
    missing = api.docker("image", "inspect", "no-such-image-xyz", check=False)
    assert missing.returncode != 0 and "no such image" in missing.stderr.lower()
    status, _, body = api.request("GET", "/images/no-such-image-xyz/json")
    assert status == 404 and set(json.loads(body)) == {"message"}


def test_history_shows_the_seed_step(api: ApiServer) -> None:
    out = api.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Size}}", "busybox").stdout
    assert "berth seed" in out, out
    # The CLI decodes Created as a unix integer; a string would fail before anything is printed.
    entries = api.get_json("/images/busybox/history")
    assert isinstance(entries[0]["Created"], int) and entries[0]["Id"].startswith("sha256:")


# -- tag, rmi, prune -------------------------------------------------------------------------------


def test_tag_then_rmi_untags_without_deleting(api: ApiServer) -> None:
    name = unique("tagged")
    api.docker("tag", "busybox", f"{name}:v1")
    listed = api.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert f"{name}:v1" in listed
    out = api.docker("rmi", f"{name}:v1").stdout
    assert out.strip() == f"Untagged: {name}:v1"
    assert api.docker("image", "inspect", "-f", "{{.Id}}", "busybox").returncode == 0


def test_tag_with_a_bad_repository_is_400(api: ApiServer) -> None:
    status, _, body = api.request("POST", "/images/busybox/tag?repo=Not_Lower&tag=x")
    assert status == 400 and "lowercase" in json.loads(body)["message"]
    status, _, body = api.request("POST", "/images/busybox/tag?repo=ok&tag=bad%20tag")
    assert status == 400 and "tag" in json.loads(body)["message"]
    status, _, _ = api.request("POST", "/images/no-such-image-xyz/tag?repo=ok&tag=1")
    assert status == 404


def test_rmi_of_an_image_a_container_uses_is_a_conflict(api: ApiServer, context_dir: Path) -> None:
    name = unique("inuse")
    image_id = label_image(api, context_dir, f"{name}:1", name)
    container = unique("c")
    api.berth("create", "--name", container, f"{name}:1", "true")
    refused = api.docker("rmi", f"{name}:1", check=False)
    assert refused.returncode != 0
    # The wording docker users know, including the "(must force)" advice.
    assert "conflict: unable to remove repository reference" in refused.stderr, refused.stderr
    assert "must force" in refused.stderr
    api.berth("rm", container)
    out = api.docker("rmi", f"{name}:1").stdout
    assert f"Untagged: {name}:1" in out and f"Deleted: {image_id}" in out


def test_image_prune_removes_dangling_images_only(api: ApiServer, context_dir: Path) -> None:
    name = unique("prune")
    old = label_image(api, context_dir / "a", f"{name}:1", "one")
    new = label_image(api, context_dir / "b", f"{name}:1", "two")  # takes the name; `old` dangles
    assert old != new
    out = api.docker("image", "prune", "-f").stdout
    assert f"deleted: {old}" in out, out  # prune prints lower case, rmi does not
    ids = image_ids(api)
    assert old not in ids and new in ids
    api.docker("rmi", f"{name}:1")


def test_image_prune_all_spares_images_in_use(api: ApiServer, context_dir: Path) -> None:
    name = unique("pruneall")
    unused = label_image(api, context_dir, f"{name}:1", "unused")
    keeper = unique("keep")
    api.berth("create", "--name", keeper, "busybox", "true")  # keeps busybox for the other tests
    out = api.docker("image", "prune", "-a", "-f").stdout
    assert f"deleted: {unused}" in out and f"untagged: {name}:1" in out, out
    assert "Total reclaimed space" in out
    assert api.docker("image", "inspect", "busybox", check=False).returncode == 0
    status, _, body = api.request("POST", "/images/prune?filters=" + quoted({"until": ["1h"]}))
    assert status == 400 and "until" in json.loads(body)["message"]


# -- save and load ---------------------------------------------------------------------------------


def test_save_rmi_load_round_trip(api: ApiServer, context_dir: Path) -> None:
    archive = context_dir / "busybox.tar"
    original = api.docker("image", "inspect", "-f", "{{.Id}}", "busybox").stdout.strip()
    api.docker("save", "-o", str(archive), "busybox")
    with tarfile.open(archive) as tar:
        assert "manifest.json" in tar.getnames()
    try:
        api.docker("rmi", "busybox")
        assert api.docker("image", "inspect", "busybox", check=False).returncode != 0
        out = api.docker("load", "-i", str(archive)).stdout
        assert "Loaded image: busybox:latest" in out, out
        assert api.docker("image", "inspect", "-f", "{{.Id}}", "busybox").stdout.strip() == original
    finally:
        if api.docker("image", "inspect", "busybox", check=False).returncode != 0:
            api.berth("load", "-i", str(archive), check=False)


def test_get_streams_a_tar_of_named_images(api: ApiServer) -> None:
    status, headers, body = api.request("GET", "/images/get?names=busybox", timeout=120)
    assert status == 200 and headers["content-type"] == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == ["busybox:latest"]
    status, _, body = api.request("GET", "/images/get?names=no-such-image-xyz")
    assert status == 404 and "message" in json.loads(body)


def test_load_of_garbage_is_400_in_docker_shape(api: ApiServer) -> None:
    status, headers, body = api.request(
        "POST", "/images/load?quiet=1", body=b"this is not a tar archive" * 100,
        headers={"Content-Type": "application/x-tar"},
    )  # fmt: skip
    assert status == 400, body
    assert headers["content-type"] == "application/json"
    message = json.loads(body)["message"]
    assert message and "/tmp" not in message and "load-" not in message


def test_import_makes_a_one_layer_image(api: ApiServer, context_dir: Path) -> None:
    rootfs = context_dir / "rootfs.tar"
    with tarfile.open(rootfs, "w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"hello\n"))
    name = unique("imported")
    api.docker("import", "-c", 'CMD ["/hello"]', str(rootfs), f"{name}:1")
    fmt = "{{len .RootFS.Layers}} {{index .Config.Cmd 0}}"
    assert api.docker("image", "inspect", "-f", fmt, f"{name}:1").stdout.strip() == "1 /hello"
    api.docker("rmi", f"{name}:1")
    status, _, body = api.request("POST", "/images/create?fromSrc=http://example.invalid/x.tar")
    assert status == 400 and "URL" in json.loads(body)["message"]


# -- build -----------------------------------------------------------------------------------------


def test_build_applies_dockerignore_and_rebuilds_from_cache(api: ApiServer, context_dir: Path) -> None:
    name = unique("built")
    (context_dir / "Dockerfile").write_text('FROM busybox\nCOPY . /ctx/\nRUN ls /ctx\nCMD ["sh"]\n')
    (context_dir / ".dockerignore").write_text("secret.txt\n")
    (context_dir / "keep.txt").write_text("kept\n")
    (context_dir / "secret.txt").write_text("do not send\n")
    first = build(api, context_dir, "-t", name)
    assert "Step 1/4 : FROM busybox" in first.stdout, first.stdout
    assert "keep.txt" in first.stdout and "secret.txt" not in first.stdout  # the RUN step's `ls /ctx`
    assert f"Successfully tagged {name}:latest" in first.stdout
    built = api.docker("image", "inspect", "-f", "{{.Id}}", name).stdout.strip()
    assert f"Successfully built {built[7:19]}" in first.stdout
    listing = api.berth("run", "--rm", name, "ls", "/ctx").stdout.split()
    assert "keep.txt" in listing and "secret.txt" not in listing
    second = build(api, context_dir, "-t", name)
    assert "Using cache" in second.stdout, second.stdout
    assert api.docker("image", "inspect", "-f", "{{.Id}}", name).stdout.strip() == built
    api.docker("rmi", name)


def test_build_with_labels_args_and_quiet(api: ApiServer, context_dir: Path) -> None:
    name = unique("labelled")
    (context_dir / "Dockerfile").write_text("FROM busybox\nARG GREETING=hi\nENV G=$GREETING\n")
    out = build(api, context_dir, "-q", "-t", name, "--label", "team=core", "--build-arg", "GREETING=yo")
    image_id = out.stdout.strip()
    assert image_id.startswith("sha256:")
    fmt = '{{index .Config.Labels "team"}} {{range .Config.Env}}{{.}} {{end}}'
    inspected = api.docker("image", "inspect", "-f", fmt, name).stdout
    assert inspected.startswith("core ") and "G=yo" in inspected
    api.docker("rmi", name)


def test_failing_run_step_fails_the_build_with_its_error(api: ApiServer, context_dir: Path) -> None:
    (context_dir / "Dockerfile").write_text("FROM busybox\nRUN echo about-to-fail && exit 3\n")
    result = build(api, context_dir, "-t", unique("broken"), check=False)
    assert result.returncode != 0
    assert "about-to-fail" in result.stdout  # the output streamed before the error line
    assert "3" in result.stderr and result.stderr.strip(), result.stderr


def test_bad_dockerfile_is_an_error_before_any_step(api: ApiServer, context_dir: Path) -> None:
    (context_dir / "Dockerfile").write_text("FROM busybox\nFROBNICATE now\n")
    result = build(api, context_dir, check=False)
    assert result.returncode != 0
    assert "FROBNICATE" in result.stderr.upper() and "line 2" in result.stderr, result.stderr


def test_build_refuses_buildkit_and_malformed_contexts(api: ApiServer) -> None:
    status, _, body = api.request("POST", "/build?version=2", body=b"")
    assert status == 400
    assert json.loads(body)["message"] == "BuildKit is not supported: set DOCKER_BUILDKIT=0"
    status, _, body = api.request("POST", "/build?t=x", body=b"\x01\x02 not a tar" * 300)
    assert status == 400 and "tar" in json.loads(body)["message"]
    status, _, body = api.request("POST", "/build?buildargs=%5B1%5D", body=b"")
    assert status == 400 and "buildargs" in json.loads(body)["message"]


def test_build_context_cut_short_is_400(api: ApiServer) -> None:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        payload = b"FROM busybox\n" + b"#" * 20000
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    truncated = data.getvalue()[:5000]  # the Dockerfile's body is cut in the middle
    status, _, body = api.request(
        "POST", "/build", body=truncated, headers={"Content-Type": "application/x-tar"}
    )
    assert status == 400, body
    assert json.loads(body)["message"]


# -- registry: pull, push, login --------------------------------------------------------------------


def stop_registry(registry: RunningRegistry) -> None:
    registry.stop()


@pytest.fixture
def local_registry(context_dir: Path) -> Iterator[RunningRegistry]:
    running = start_registry(context_dir)
    yield running
    stop_registry(running)


def test_push_then_pull_through_a_local_registry(api: ApiServer, local_registry: RunningRegistry) -> None:
    remote = f"{local_registry.netloc}/team/bb:1"
    api.docker("tag", "busybox", remote)
    pushed = api.docker("push", remote).stdout
    assert f"The push refers to repository [{local_registry.netloc}/team/bb]" in pushed, pushed
    assert "1: digest: sha256:" in pushed
    api.docker("rmi", remote)
    pulled = api.docker("pull", remote).stdout
    assert "Digest: sha256:" in pulled and f"Status: Downloaded newer image for {remote}" in pulled, pulled
    same = api.docker("image", "inspect", "-f", "{{.Id}}", remote, "busybox").stdout.split()
    assert same[0] == same[1]  # the registry round trip kept the image ID
    again = api.docker("pull", remote).stdout
    assert f"Status: Image is up to date for {remote}" in again
    api.docker("rmi", remote)


def test_pull_progress_is_docker_json_lines(api: ApiServer, local_registry: RunningRegistry) -> None:
    remote = f"{local_registry.netloc}/raw/bb"
    api.docker("tag", "busybox", f"{remote}:2")
    api.docker("push", f"{remote}:2")
    api.docker("rmi", f"{remote}:2")
    status, headers, body = api.request("POST", f"/images/create?fromImage={remote}&tag=2", timeout=120)
    assert status == 200 and headers["content-type"] == "application/json"
    messages = json_lines(body)
    assert messages[0] == {"status": "Pulling from raw/bb", "id": "2"}
    assert any(m.get("status") in ("Pull complete", "Already exists") and m.get("id") for m in messages)
    assert messages[-1]["status"].startswith("Status: Downloaded newer image for")
    api.docker("rmi", f"{remote}:2")


def test_pull_and_push_errors_reach_the_cli(api: ApiServer, local_registry: RunningRegistry) -> None:
    missing = api.docker("pull", f"{local_registry.netloc}/nothing/here:1", check=False)
    assert missing.returncode != 0 and missing.stderr.strip()
    unknown = api.docker("push", f"{local_registry.netloc}/not/tagged:1", check=False)
    assert unknown.returncode != 0 and "does not exist locally" in unknown.stderr, unknown.stderr
    status, _, body = api.request("POST", "/images/create?fromImage=Bad_Name")
    assert status == 400 and "lowercase" in json.loads(body)["message"]
    # A registry that is not there: the error comes as Docker's errorDetail line after the 200 head.
    port = free_port()
    api.docker("tag", "busybox", f"127.0.0.1:{port}/gone:1")
    try:
        status, _, body = api.request("POST", f"/images/127.0.0.1:{port}/gone/push?tag=1", timeout=120)
        assert status == 200
        last = json_lines(body)[-1]
        assert last["error"] and last["errorDetail"]["message"] == last["error"]
    finally:
        api.docker("rmi", f"127.0.0.1:{port}/gone:1")


def test_login_and_registry_auth_header_with_htpasswd(api: ApiServer, context_dir: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # the one stdlib way to bcrypt a password for the registry's htpasswd
    htpasswd = context_dir / "htpasswd"
    htpasswd.write_text(f"tester:{crypt.crypt('right-pw', crypt.mksalt(crypt.METHOD_BLOWFISH))}\n")
    running = start_registry(context_dir, htpasswd=htpasswd)
    remote = f"{running.netloc}/private/bb"
    api.docker("tag", "busybox", f"{remote}:1")
    try:
        path = f"/images/{remote}/push?tag=1"
        status, _, body = api.request("POST", path, timeout=120)
        assert status == 200 and "error" in json_lines(body)[-1]  # no credentials yet
        auth = {"username": "tester", "password": "right-pw", "serveraddress": running.netloc}
        header = base64.urlsafe_b64encode(json.dumps(auth).encode()).decode()
        status, _, body = api.request("POST", path, headers={"X-Registry-Auth": header}, timeout=120)
        assert status == 200 and json_lines(body)[-1]["aux"]["Tag"] == "1", body
        wrong = api.docker(
            "login", running.netloc, "-u", "tester", "--password-stdin", input="wrong\n", check=False
        )
        assert wrong.returncode != 0 and wrong.stderr.strip()
        status, _, body = api.request("POST", "/auth", body={**auth, "password": "wrong"})
        assert status == 401 and json.loads(body)["message"]
        ok = api.docker("login", running.netloc, "-u", "tester", "--password-stdin", input="right-pw\n")
        assert "Login Succeeded" in ok.stdout
        api.docker("push", f"{remote}:1")  # with the credentials `docker login` stored
    finally:
        api.docker("rmi", f"{remote}:1", check=False)
        stop_registry(running)
    status, _, body = api.request("POST", "/auth", body=b"[1]", headers={"Content-Type": "application/json"})
    assert status == 400 and json.loads(body)["message"]


def test_build_is_cancelled_when_the_client_hangs_up(api: ApiServer) -> None:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        dockerfile = b"FROM busybox\nRUN echo step-started && sleep 120\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    body = data.getvalue()
    head = (
        f"POST /v1.44/build?t={unique('cancel')} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    received = b""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(60)
        sock.connect(str(api.socket))
        sock.sendall(head.encode() + body)
        while b"step-started" not in received:
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
        assert api.berth("ps", "-a", "-q").stdout.split()  # the RUN step's container is there
    # Hanging up cancels the build: its RUN container is killed and removed, well before `sleep` ends.
    wait_until(
        lambda: not api.berth("ps", "-a", "-q").stdout.split(),
        timeout=30,
        interval=0.2,
        what="the build container to go with its client",
    )
