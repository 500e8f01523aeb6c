"""A container's Files tab through the dashboard client, against real containers (issue 11 items 3 and 5).

The container plants hostile symlinks (absolute to /etc/passwd, relative `../../..`, a symlinked
parent directory); the tab must show them and, when they are opened, give the container's files or
an error — never the host's. Uploads are atomic (a new inode renamed in, no temp file left),
capped, and for operators only.
"""

from __future__ import annotations

import html
import io
import os
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from engine.errors import InvalidArgument
from engine.models import Container, Event
from engine.services import bundle, containers, filebrowser, lifecycle
from engine.services.options import ContainerOptions
from tests.integration.test_dashboard_containers import HX, client_for, collect, seeded  # noqa: F401 — a fixture
from tests.polling import wait_until

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("seeded")]

MARKER = "containerpw:x:4242:4242:only in the container:/:/bin/sh"
PLANT = (
    f"echo '{MARKER}' >> /etc/passwd; echo hello > /etc/added.txt; echo staff:x:50: >> /etc/group; "
    "ln -s /etc/passwd /tmp/abs; ln -s ../../../../../../etc/passwd /tmp/rel; "
    "ln -s ../../../../../.. /tmp/up; ln -s /etc /tmp/etcdir; echo old > /tmp/replace.txt; "
    "touch /tmp/ready"
)


def start(name: str, *, then: str = "sleep 300", **options: Any) -> Container:
    container = containers.create(
        ContainerOptions(image="busybox", name=name, command=("sh", "-c", f"{PLANT}; {then}"), **options)
    )
    lifecycle.start(container.id)
    container.refresh_from_db()
    return container


def wait_ready(container: Container, *, exited: bool = False) -> Container:
    """Poll until the planting command has run (and, for `exited`, the container has stopped)."""

    def ready() -> bool:
        container.refresh_from_db()
        lifecycle.reconcile(container)
        if exited:
            return container.state == "exited"
        return bool(container.pid and os.path.exists(f"/proc/{container.pid}/root/tmp/ready"))

    wait_until(ready, timeout=30, what=f"container {container.name} to be ready")
    return container


def row_for(body: str, name: str) -> str:
    """The table row whose name cell shows `name`."""
    for row in re.findall(r"<tr class=\"file[^\"]*\">.*?</tr>", body, re.S):
        if re.search(rf">\s*(<span[^>]*></span>)?{re.escape(name)}/?</(a|span)>", row):
            return row
    raise AssertionError(f"no row for {name}")


def names(body: str) -> set[str]:
    """The names the listing shows (the text of each name cell up to a symlink's arrow)."""
    cells = re.findall(r'<td class="name" data-label="Name">(.*?)</td>', body, re.S)
    texts = [re.sub(r"<[^>]+>", "", cell).replace("▸", "").split("→")[0].strip() for cell in cells]
    return {text for text in texts if text} - {"../"}


def files_url(container: Container, what: str = "") -> str:
    return f"/containers/{container.name}/files/{what + '/' if what else ''}"


# -- listing and marks ---------------------------------------------------------------------------


def test_listing_marks_added_and_changed_files(users: dict[str, Any]) -> None:
    container = wait_ready(start("fmark"))
    body = client_for(users["viewer"]).get(f"/containers/{container.name}/", {"tab": "files", "path": "/etc"})
    assert body.status_code == 200
    text = body.content.decode()
    # added.txt is new in the container's layer; group exists in the image and was changed.
    assert "change--A" in row_for(text, "added.txt")
    assert "change--C" in row_for(text, "group")
    assert "change--" not in row_for(text, "passwd") or "change--C" in row_for(text, "passwd")
    # The engine's own /etc files (hosts, resolv.conf) are mounts, not changes by the container.
    assert "change--" not in row_for(text, "hosts")


def test_listing_of_a_stopped_container_reads_its_layer_and_leaves_no_mount(users: dict[str, Any]) -> None:
    container = wait_ready(start("fstop", then="true"), exited=True)
    response = client_for(users["viewer"]).get(files_url(container), {"path": "/etc"}, **HX)
    assert response.status_code == 200
    assert "change--A" in row_for(response.content.decode(), "added.txt")
    # The overlay mounted for the listing is gone again (the leak guard checks every mount too).
    assert not os.path.ismount(bundle.paths(container.id).rootfs)


def test_htmx_navigation_gets_only_the_listing(users: dict[str, Any]) -> None:
    container = wait_ready(start("fnav"))
    body = client_for(users["viewer"]).get(files_url(container), {"path": "/tmp"}, **HX).content.decode()
    assert 'id="container-files"' in body and "<html" not in body


# -- symlinks never lead out of the root ----------------------------------------------------------


@pytest.mark.parametrize("running", [True, False], ids=["running", "stopped"])
def test_symlinks_out_of_the_root_give_the_containers_files(users: dict[str, Any], running: bool) -> None:
    container = wait_ready(
        start(f"flink{int(running)}", then="sleep 300" if running else "true"), exited=not running
    )
    client = client_for(users["viewer"])
    # The container's own /etc/passwd (changed by it, so in its layer); the host's is different.
    theirs = (bundle.paths(container.id).upper / "etc/passwd").read_text()
    assert theirs != Path("/etc/passwd").read_text()
    listing = client.get(files_url(container), {"path": "/tmp"}, **HX).content.decode()
    # The listing shows each link with its text; it does not follow it.
    assert "/etc/passwd" in row_for(listing, "abs")
    assert "../../../../../../etc/passwd" in row_for(listing, "rel")
    for path in (
        "/tmp/abs",
        "/tmp/rel",
        "/tmp/etcdir/passwd",
        "/tmp/up/etc/passwd",
        "/tmp/up/tmp/up/etc/passwd",
    ):
        response = client.get(files_url(container, "view"), {"path": path})
        assert response.status_code == 200, (path, response.status_code)
        shown = response.content.decode()
        assert f'<pre class="file-view" tabindex="0">{html.escape(theirs)}</pre>' in shown, path
    # A parent that is a link to `../../..` lists the container's root, not the host's.
    root = names(client.get(files_url(container), {"path": "/"}, **HX).content.decode())
    through_link = names(client.get(files_url(container), {"path": "/tmp/up"}, **HX).content.decode())
    assert through_link == root and "bin/" in root
    assert {n.rstrip("/") for n in root} != set(os.listdir("/"))  # the host's root would differ


def test_download_through_a_symlinked_parent_is_the_containers_file(users: dict[str, Any]) -> None:
    container = wait_ready(start("fdl"))
    response = client_for(users["operator"]).get(
        files_url(container, "download"), {"path": "/tmp/etcdir/passwd"}
    )
    assert response.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(collect(response))) as tar:
        data = tar.extractfile("passwd").read().decode()  # type: ignore[union-attr]
    assert MARKER in data


# -- downloads -----------------------------------------------------------------------------------


@pytest.mark.parametrize("running", [True, False], ids=["running", "stopped"])
def test_download_of_a_folder_is_a_valid_tar(users: dict[str, Any], running: bool) -> None:
    name = f"ftar{int(running)}"
    container = wait_ready(start(name, then="sleep 300" if running else "true"), exited=not running)
    response = client_for(users["operator"]).get(files_url(container, "download"), {"path": "/etc"})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-tar"
    assert f'filename="{name}-etc.tar"' in response["Content-Disposition"]
    with tarfile.open(fileobj=io.BytesIO(collect(response))) as tar:
        names = tar.getnames()
        assert "etc/added.txt" in names and "etc/passwd" in names
        assert tar.extractfile("etc/added.txt").read() == b"hello\n"  # type: ignore[union-attr]
    assert Event.objects.filter(action="archive-path", actor="operator", object_name=name).exists()
    # A stopped container's overlay was mounted for the stream only (the leak guard checks too).
    assert not os.path.ismount(bundle.paths(container.id).rootfs) or running


def test_viewers_may_browse_and_read_but_not_download(users: dict[str, Any]) -> None:
    container = wait_ready(start("fview"))
    client = client_for(users["viewer"])
    assert client.get(files_url(container, "view"), {"path": "/etc/added.txt"}).status_code == 200
    assert client.get(files_url(container, "download"), {"path": "/etc"}).status_code == 403


def test_a_live_containers_proc_is_not_browsed(users: dict[str, Any]) -> None:
    container = wait_ready(start("fproc"))
    client = client_for(users["admin"])
    response = client.get(files_url(container, "view"), {"path": "/proc/1/environ"})
    assert response.status_code == 400 and "kernel view" in response.content.decode()
    assert client.get(files_url(container), {"path": "/proc"}, **HX).status_code == 400


# -- uploads -------------------------------------------------------------------------------------


def upload(client: Any, container: Container, path: str, *files: tuple[str, bytes]) -> Any:
    data = {"path": path, "files": [SimpleUploadedFile(name, content) for name, content in files]}
    return client.post(files_url(container, "upload"), data, **HX)


def test_upload_replaces_a_file_atomically(users: dict[str, Any]) -> None:
    container = wait_ready(start("fup"))
    target = Path(f"/proc/{container.pid}/root/tmp")
    before = (target / "replace.txt").stat().st_ino
    response = upload(
        client_for(users["operator"]), container, "/tmp", ("replace.txt", b"new\n"), ("fresh.txt", b"x")
    )
    assert response.status_code == 200, response.content
    assert (target / "replace.txt").read_bytes() == b"new\n"
    # A new inode renamed over the old one: a reader saw the old file or the whole new one.
    assert (target / "replace.txt").stat().st_ino != before
    assert oct((target / "fresh.txt").stat().st_mode & 0o777) == "0o644"
    assert not [n for n in os.listdir(target) if n.startswith(".berth-upload-")]
    assert "fresh.txt" in response.content.decode()  # the refreshed listing
    assert Event.objects.filter(action="upload", actor="operator", object_name="fup").exists()


def test_upload_over_the_cap_is_refused_and_leaves_nothing(users: dict[str, Any], settings: Any) -> None:
    settings.BERTH_FILES_UPLOAD_MAX_SIZE = 1000
    container = wait_ready(start("fcap"))
    response = upload(client_for(users["operator"]), container, "/tmp", ("big.bin", b"x" * 5000))
    assert response.status_code == 400 and "too large" in response["HX-Trigger"]
    target = Path(f"/proc/{container.pid}/root/tmp")
    assert not (target / "big.bin").exists()
    assert not [n for n in os.listdir(target) if n.startswith(".berth-upload-")]


def test_upload_refuses_to_write_through_a_symlink(users: dict[str, Any]) -> None:
    container = wait_ready(start("fsym"))
    host_before = Path("/etc/passwd").read_bytes()
    response = upload(client_for(users["operator"]), container, "/tmp", ("abs", b"pwned\n"))
    assert response.status_code == 400 and "symbolic link" in response["HX-Trigger"]
    assert Path("/etc/passwd").read_bytes() == host_before
    assert os.readlink(f"/proc/{container.pid}/root/tmp/abs") == "/etc/passwd"  # not replaced either


def test_upload_into_a_symlinked_folder_lands_inside_the_root(users: dict[str, Any]) -> None:
    container = wait_ready(start("fupl"))
    response = upload(client_for(users["operator"]), container, "/tmp/up/tmp", ("inside.txt", b"in\n"))
    assert response.status_code == 200, response.content
    assert Path(f"/proc/{container.pid}/root/tmp/inside.txt").read_bytes() == b"in\n"
    assert not Path("/tmp/inside.txt").exists()


def test_upload_errors_are_clear(users: dict[str, Any]) -> None:
    container = wait_ready(start("ferr"))
    client = client_for(users["operator"])
    not_dir = upload(client, container, "/etc/passwd", ("a", b"a"))
    assert not_dir.status_code == 400 and "not a directory" in not_dir["HX-Trigger"]
    missing = upload(client, container, "/nowhere", ("a", b"a"))
    assert missing.status_code == 404
    is_dir = upload(client, container, "/", ("etc", b"a"))
    assert is_dir.status_code == 400 and "is a directory" in is_dir["HX-Trigger"]


def test_upload_into_a_read_only_rootfs_is_refused(users: dict[str, Any]) -> None:
    container = containers.create(
        ContainerOptions(image="busybox", name="fro", command=("true",), read_only=True)
    )
    response = upload(client_for(users["operator"]), container, "/tmp", ("a.txt", b"a"))
    assert response.status_code == 400 and "read-only" in response["HX-Trigger"]


def test_viewers_cannot_upload(users: dict[str, Any]) -> None:
    container = wait_ready(start("fvup"))
    response = upload(client_for(users["viewer"]), container, "/tmp", ("v.txt", b"v"))
    assert response.status_code == 403
    assert not Path(f"/proc/{container.pid}/root/tmp/v.txt").exists()
    # The refusal is an event with the user (SECURITY.md web checklist 4).
    assert Event.objects.filter(result="denied", actor="viewer").exists()


def test_the_service_caps_an_upload_while_writing_and_removes_its_temp_file(settings: Any) -> None:
    # The view refuses early; the service must hold the cap on its own for any other caller.
    settings.BERTH_FILES_UPLOAD_MAX_SIZE = 1000
    container = wait_ready(start("fsvc"))
    with pytest.raises(InvalidArgument, match="too large"):
        filebrowser.upload(
            container, "/tmp", [("ok.txt", io.BytesIO(b"a" * 600)), ("big", io.BytesIO(b"b" * 600))]
        )
    target = Path(f"/proc/{container.pid}/root/tmp")
    # The first file fit and landed whole; the second crossed the cap and left nothing behind.
    assert (target / "ok.txt").read_bytes() == b"a" * 600
    assert not (target / "big").exists()
    assert not [n for n in os.listdir(target) if n.startswith(".berth-upload-")]


def test_a_big_folder_is_paged(users: dict[str, Any]) -> None:
    container = wait_ready(start("fpage", then="mkdir /many && cd /many && touch $(seq 1 300) && sleep 300"))
    wait_until(
        lambda: len(os.listdir(f"/proc/{container.pid}/root/many")) >= 300, timeout=30, what="the 300 files"
    )
    client = client_for(users["viewer"])
    first = client.get(files_url(container), {"path": "/many"}, **HX).content.decode()
    # Rendering thousands of rows is what is slow: a page holds PAGE_SIZE of them.
    assert "1–250 of 300" in first and first.count('<tr class="file') == 250
    second = client.get(files_url(container), {"path": "/many", "page": "2"}, **HX).content.decode()
    assert "251–300 of 300" in second and second.count('<tr class="file') == 50
