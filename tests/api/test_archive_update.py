"""Files in and out (archive, export) and live limits (update) through the real docker CLI."""

from __future__ import annotations

import base64
import io
import json
import tarfile
import tempfile
from pathlib import Path

from tests.api.conftest import ApiServer

CGROUP = Path("/sys/fs/cgroup")


def memory_limit(container_id: str) -> int:
    for path in (
        CGROUP / "berth" / container_id / "memory.max",
        CGROUP / "memory" / "berth" / container_id / "memory.limit_in_bytes",
    ):
        if path.exists():
            return int(path.read_text().strip())
    raise AssertionError(f"no memory cgroup for {container_id}")


def _run(api: ApiServer, name: str) -> str:
    return api.docker(
        "run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "300"
    ).stdout.strip()


def test_docker_update_memory_changes_the_live_limit(api: ApiServer) -> None:
    cid = _run(api, "apiupd")
    api.docker("update", "--memory", "48m", "--pids-limit", "60", "--restart", "on-failure:2", "apiupd")
    assert memory_limit(cid) == 48 << 20
    host = json.loads(api.docker("inspect", "apiupd").stdout)[0]["HostConfig"]
    assert (host["Memory"], host["PidsLimit"]) == (48 << 20, 60)
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}


def test_update_with_a_bad_value_is_a_400_not_a_500(api: ApiServer) -> None:
    _run(api, "apiupdbad")
    status, _, body = api.request("POST", "/v1.44/containers/apiupdbad/update", {"Memory": 1024})
    assert status == 400 and "6MB" in json.loads(body)["message"]
    status, _, body = api.request("POST", "/v1.44/containers/nosuch/update", {"Memory": 64 << 20})
    assert status == 404
    result = api.docker("update", "--memory", "1m", "apiupdbad", check=False)
    assert result.returncode != 0 and "6MB" in result.stderr


def test_docker_cp_both_ways(api: ApiServer) -> None:
    _run(api, "apicp")
    api.docker("exec", "apicp", "sh", "-c", "mkdir -p /d/sub && echo a > /d/a && echo b > /d/sub/b")
    with tempfile.TemporaryDirectory(prefix="berth-apicp-") as tmp:
        here = Path(tmp)
        api.docker("cp", "apicp:/d", str(here / "copy"))
        assert (here / "copy" / "sub" / "b").read_text() == "b\n"
        api.docker("cp", "apicp:/d/.", str(here / "copy"))  # contents into an existing directory
        assert (here / "copy" / "a").read_text() == "a\n"
        (here / "up.txt").write_text("up\n")
        api.docker("cp", str(here / "up.txt"), "apicp:/d/sub/")
        api.docker("cp", str(here / "up.txt"), "apicp:/renamed.txt")
    assert api.docker("exec", "apicp", "cat", "/d/sub/up.txt", "/renamed.txt").stdout == "up\nup\n"
    missing = api.docker("cp", "apicp:/no/such", "/tmp/x", check=False)
    assert missing.returncode != 0 and "Could not find the file" in missing.stderr


def test_docker_cp_dash_streams_tars(api: ApiServer) -> None:
    _run(api, "apicptar")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("t.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"tar"))
    api.docker("cp", "-", "apicptar:/tmp", input=buffer.getvalue())
    out = api.docker("cp", "apicptar:/tmp/t.txt", "-", input=b"")
    with tarfile.open(fileobj=io.BytesIO(out.stdout)) as tar:
        member = tar.extractfile("t.txt")
        assert member is not None and member.read() == b"tar"


def test_archive_stat_header_resolves_links_inside_the_container(api: ApiServer) -> None:
    _run(api, "apistat")
    api.docker("exec", "apistat", "ln", "-s", "../../../etc/hostname", "/tmp/hn")
    status, headers, _ = api.request("HEAD", "/v1.44/containers/apistat/archive?path=/tmp/hn")
    assert status == 200
    stat = json.loads(base64.b64decode(headers["x-docker-container-path-stat"]))
    assert stat["name"] == "hn" and stat["linkTarget"] == "/etc/hostname"
    assert stat["mode"] & (1 << 27)  # Go's os.ModeSymlink, which the docker CLI tests
    status, _, _ = api.request("HEAD", "/v1.44/containers/apistat/archive?path=/no/such")
    assert status == 404
    status, headers, body = api.request("GET", "/v1.44/containers/apistat/archive?path=/etc")
    assert status == 200 and headers["content-type"] == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert "etc/passwd" in tar.getnames()


def test_archive_put_refuses_writing_through_a_planted_symlink(api: ApiServer) -> None:
    _run(api, "apiput")
    with tempfile.TemporaryDirectory(prefix="berth-apiput-") as tmp:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            link = tarfile.TarInfo("esc")
            link.type, link.linkname = tarfile.SYMTYPE, tmp
            tar.addfile(link)
            info = tarfile.TarInfo("esc/pwned")
            info.size = 3
            tar.addfile(info, io.BytesIO(b"bad"))
        status, _, body = api.request(
            "PUT",
            "/v1.44/containers/apiput/archive?path=/tmp",
            buffer.getvalue(),
            {"Content-Type": "application/x-tar"},
        )
        assert status == 400 and "symlink" in json.loads(body)["message"]
        assert not (Path(tmp) / "pwned").exists()
    status, _, _ = api.request("PUT", "/v1.44/containers/apiput/archive?path=/no/such", b"", {})
    assert status == 404


def test_docker_export_contains_busybox(api: ApiServer) -> None:
    _run(api, "apiexp")
    api.docker("exec", "apiexp", "sh", "-c", "echo here > /exported")
    api.docker("stop", "-t", "0", "apiexp")
    out = api.docker("export", "apiexp", input=b"")
    with tarfile.open(fileobj=io.BytesIO(out.stdout)) as tar:
        names = set(tar.getnames())
    assert {"bin/busybox", "exported"} <= names
