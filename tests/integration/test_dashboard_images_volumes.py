"""The image, volume, event and overview pages over Django's test client, against a real engine root.

Covers every view and action, the permission refusals per role, the engine's conflict message shown
as it words it, an upload that becomes a load job which succeeds, escaping of attacker-controlled
text, and the volume file browser's refusal to follow symlinks or `..` out of the volume.

Over 400 lines because it covers four pages' views and each role's refusals in one place.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from engine import conf
from engine.errors import InvalidArgument
from engine.models import Event, Image, JobState, Volume
from engine.services import containers, images, imagetransfer, jobs, system, volumes
from engine.services import options as opts
from tests.conftest import require_root
from tests.polling import wait_until

XSS = "<img src=x onerror=alert(1)>"
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def as_role(users: dict[str, Any]) -> Any:
    """`as_role("viewer")` → a test client signed in with that role."""

    def make(role: str) -> Client:
        client = Client()
        client.force_login(users[role])
        return client

    return make


@pytest.fixture
def busybox(engine: Path) -> Image:
    require_root()
    return system.seed()


def uploads_left() -> list[str]:
    tmp = conf.tmp_dir()
    return sorted(p.name for p in tmp.glob("upload-*")) if tmp.exists() else []


def toast(response: Any) -> str:
    return json.loads(response["HX-Trigger"])["toast"]["message"]


def make_container(name: str, *, image: str = "busybox", volume: str | None = None) -> Any:
    mounts = (opts.parse_volume(f"{volume}:/data"),) if volume else ()
    return containers.create(opts.ContainerOptions(image=image, name=name, mounts=mounts))


# ---------- anonymous and overview ----------


@pytest.mark.parametrize(
    "url",
    [
        "/",
        "/images/",
        "/images/import/",
        "/images/load/",
        "/volumes/",
        "/volumes/_create/",
        "/events/",
        "/events/recent/",
        "/engine/status/",
    ],
)
def test_every_page_sends_anonymous_users_to_the_login_page(engine: Path, client: Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_overview_shows_counts_disk_chart_versions_and_admin_links(busybox: Image, as_role: Any) -> None:
    make_container("idle")
    response = as_role("admin").get("/")
    body = response.content.decode()
    assert response.status_code == 200
    assert 'class="disk-bar"' in body and "disk-bar__seg--images" in body  # images hold bytes: drawn
    assert "runc version" in body and "conmon version" in body
    assert os.uname().release in body
    assert "/admin/engine/event/" in body
    counts = as_role("viewer").get("/?part=counts", **HTMX).content.decode()
    assert 'id="overview-counts"' in counts and "Stopped" in counts


def test_overview_hides_admin_links_from_viewers(busybox: Image, as_role: Any) -> None:
    assert "/admin/engine/event/" not in as_role("viewer").get("/").content.decode()


def test_engine_status_reports_runtime_cgroup_mode_and_free_disk(engine: Path, as_role: Any) -> None:
    require_root()
    body = as_role("viewer").get("/engine/status/").content.decode()
    assert "runc" in body and "cgroups" in body and "free" in body


def test_disk_usage_counts_container_upper_dirs_and_volumes(busybox: Image) -> None:
    container = make_container("writer")
    (conf.containers_dir() / container.id / "upper" / "blob").write_bytes(b"x" * 200_000)
    volume = volumes.create("bulk")
    Path(volumes.mountpoint(volume), "data").write_bytes(b"y" * 300_000)
    usage = system.disk_usage(max_age=0)
    assert usage["containers"] >= 200_000 and usage["volumes"] >= 300_000 and usage["images"] > 0


# ---------- images ----------


def test_images_page_lists_busybox_with_id_size_and_users(busybox: Image, as_role: Any) -> None:
    make_container("one")
    body = as_role("viewer").get("/images/").content.decode()
    assert "busybox" in body and "latest" in body and busybox.short_id in body
    assert "1 container" in body


def test_images_search_returns_only_matching_rows_as_a_partial(busybox: Image, as_role: Any) -> None:
    body = as_role("viewer").get("/images/?q=nothing-like-this", **HTMX).content.decode()
    assert 'id="image-table"' in body and "<html" not in body
    assert busybox.short_id not in body


def test_image_detail_shows_layers_config_and_containers(busybox: Image, as_role: Any) -> None:
    make_container("user1")
    response = as_role("viewer").get(f"/images/{busybox.id[7:]}/")
    body = response.content.decode()
    assert response.status_code == 200
    assert 'class="layer__fill"' in body and "berth seed: host busybox-static" in body
    assert "user1" in body and "Entrypoint" in body


def test_viewer_cannot_remove_import_or_load_images(busybox: Image, as_role: Any) -> None:
    viewer = as_role("viewer")
    assert viewer.post("/images/remove/", {"ref": "busybox"}).status_code == 403
    archive = SimpleUploadedFile("a.tar", b"x" * 1000)
    assert viewer.post("/images/load/", {"archive": archive}).status_code == 403
    archive = SimpleUploadedFile("a.tar", b"x" * 1000)
    assert viewer.post("/images/import/", {"archive": archive}).status_code == 403
    assert viewer.get("/images/load/").status_code == 403
    assert images.exists("busybox")
    assert uploads_left() == []  # refused before the body was parsed into the engine's tmp dir


def test_operator_cannot_remove_or_prune_images(busybox: Image, as_role: Any) -> None:
    operator = as_role("operator")
    response = operator.post("/images/remove/", {"ref": "busybox"}, **HTMX)
    assert response.status_code == 403 and "admin" in toast(response)
    assert operator.post("/images/prune/", {"all": "1"}).status_code == 403
    assert images.exists("busybox")


def test_removing_an_image_in_use_shows_the_engines_conflict(busybox: Image, as_role: Any) -> None:
    make_container("holder")
    admin = as_role("admin")
    by_id = admin.post("/images/remove/", {"ref": busybox.id, "next": "list"}, **HTMX)
    assert by_id.status_code == 409
    assert "image is being used by stopped container holder" in toast(by_id)
    by_name = admin.post("/images/remove/", {"ref": "busybox:latest", "next": "list"}, **HTMX)
    assert by_name.status_code == 409 and "container holder is using its referenced image" in toast(by_name)
    assert images.exists("busybox")


def test_admin_removes_an_unused_tag_and_the_list_is_told_to_refresh(busybox: Image, as_role: Any) -> None:
    images.tag("busybox", "spare:1")
    response = as_role("admin").post("/images/remove/", {"ref": "spare:1", "next": "list"}, **HTMX)
    assert response.status_code == 204
    trigger = json.loads(response["HX-Trigger"])
    assert "images-changed" in trigger and "spare:1" in trigger["toast"]["message"]
    assert not images.exists("spare:1") and images.exists("busybox")


def test_tag_form_adds_a_name_as_the_user(busybox: Image, as_role: Any) -> None:
    response = as_role("operator").post(f"/images/{busybox.id[7:]}/tag/", {"target": "web:2"})
    assert response.status_code == 302
    assert images.resolve("web:2").id == busybox.id
    assert Event.objects.filter(action="tag", actor="operator").exists()


def test_tag_form_shows_a_bad_name_next_to_the_field(busybox: Image, as_role: Any) -> None:
    response = as_role("operator").post(f"/images/{busybox.id[7:]}/tag/", {"target": "Bad Name!"})
    assert response.status_code == 400
    assert 'id="target-error"' in response.content.decode()


def test_prune_is_for_admins_and_reports_what_it_freed(busybox: Image, as_role: Any) -> None:
    response = as_role("admin").post("/images/prune/", {}, **HTMX)
    assert response.status_code == 204 and "Pruned images" in toast(response)
    assert images.exists("busybox")  # tagged: only `all` would take it


def test_image_label_with_html_renders_as_text(engine: Path, as_role: Any) -> None:
    require_root()
    rootfs = io.BytesIO()
    with tarfile.open(fileobj=rootfs, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    rootfs.seek(0)
    image = imagetransfer.import_tarball(rootfs, "xss:1", changes_=[f'LABEL evil="{XSS}"'])
    body = as_role("viewer").get(f"/images/{image.id[7:]}/").content.decode()
    assert XSS not in body
    assert "&lt;img src=x onerror=alert(1)&gt;" in body


def wait_for_job(job_id: str, timeout: float = 60) -> Any:
    """The job once it has succeeded or failed."""
    return wait_until(
        lambda: (job := jobs.get(job_id)).state in (JobState.SUCCEEDED, JobState.FAILED) and job,
        timeout=timeout,
        what=f"job {job_id} to finish",
    )


def test_loading_a_saved_archive_through_the_upload_view_runs_a_job_that_succeeds(
    engine_tx: Path, users: dict[str, Any], tmp_path: Path
) -> None:
    require_root()
    system.seed()
    images.tag("busybox", "shipped:1")
    archive = tmp_path / "shipped.tar"
    with open(archive, "wb") as out:
        imagetransfer.save(["shipped:1"], out)
    images.remove("shipped:1")  # busybox:latest keeps the image; the name must come back from the archive
    client = Client()
    client.force_login(users["operator"])
    with open(archive, "rb") as f:
        response = client.post("/images/load/", {"archive": f}, HTTP_ACCEPT="application/json")
    assert response.status_code == 200, response.content
    job = wait_for_job(response.json()["job"])
    assert job.state == JobState.SUCCEEDED, job.error
    assert job.created_by == "operator"
    assert images.exists("shipped:1")
    assert job.result["images"][0]["tags"] == ["shipped:1"]
    assert uploads_left() == []  # the job's clean-up removed the uploaded file
    page = client.get(response.json()["redirect"]).content.decode()
    assert "succeeded" in page and job.result["images"][0]["url"] in page


def test_import_upload_with_a_bad_reference_is_refused_before_any_job(busybox: Image, as_role: Any) -> None:
    archive = SimpleUploadedFile("rootfs.tar", b"x" * 100)
    response = as_role("operator").post(
        "/images/import/", {"archive": archive, "reference": "UPPER:case"}, HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 400 and "reference" in response.json()["errors"]
    assert uploads_left() == []


def test_upload_without_a_csrf_token_is_refused(busybox: Image, users: dict[str, Any]) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(users["admin"])
    response = client.post("/images/load/", {"archive": SimpleUploadedFile("a.tar", b"x")})
    assert response.status_code == 403
    assert uploads_left() == []


# ---------- volumes ----------


def test_volumes_page_lists_volumes_with_users_and_lazy_sizes(busybox: Image, as_role: Any) -> None:
    volumes.create("data")
    make_container("db", volume="data")
    viewer = as_role("viewer")
    body = viewer.get("/volumes/").content.decode()
    assert "data" in body and "db" in body and "/volumes/data/size/" in body
    Path(volumes.mountpoint(volumes.get("data")), "f").write_bytes(b"z" * 50_000)
    size = viewer.get("/volumes/data/size/", **HTMX).content.decode()
    assert "KB" in size


def test_operator_creates_a_volume_with_labels_and_options(engine: Path, as_role: Any) -> None:
    response = as_role("operator").post(
        "/volumes/_create/", {"name": "cache", "labels": "team=web\ntier = db\n", "options": ""}
    )
    assert response.status_code == 302 and response["Location"] == "/volumes/cache/"
    volume = volumes.get("cache")
    assert volume.labels == {"team": "web", "tier": "db"} and volume.created_by == "operator"


def test_create_form_shows_errors_next_to_the_field(engine: Path, as_role: Any) -> None:
    operator = as_role("operator")
    bad_name = operator.post("/volumes/_create/", {"name": "-bad", "labels": "", "options": ""})
    assert bad_name.status_code == 400 and "is not a valid volume name" in bad_name.content.decode()
    assert "absolute path" not in bad_name.content.decode()  # the CLI's -v hint means nothing in this form
    bad_label = operator.post("/volumes/_create/", {"name": "ok1", "labels": "novalue", "options": ""})
    assert bad_label.status_code == 400 and "line 1" in bad_label.content.decode()
    bad_option = operator.post("/volumes/_create/", {"name": "ok2", "labels": "", "options": "evil=1"})
    assert bad_option.status_code == 400 and "unknown volume option" in bad_option.content.decode()
    assert not Volume.objects.exists()


def test_viewer_cannot_create_and_operator_cannot_remove_or_prune_volumes(engine: Path, as_role: Any) -> None:
    volumes.create("keep")
    assert as_role("viewer").post("/volumes/_create/", {"name": "x1"}).status_code == 403
    assert as_role("viewer").post("/volumes/keep/remove/").status_code == 403
    assert as_role("operator").post("/volumes/keep/remove/").status_code == 403
    assert as_role("operator").post("/volumes/_prune/", {"all": "1"}).status_code == 403
    assert volumes.get("keep")


def test_removing_a_volume_in_use_shows_the_conflict(busybox: Image, as_role: Any) -> None:
    volumes.create("busy")
    make_container("app", volume="busy")
    response = as_role("admin").post("/volumes/busy/remove/", {"next": "list"}, **HTMX)
    assert response.status_code == 409 and "in use by container(s): app" in toast(response)


def test_admin_removes_a_volume(engine: Path, as_role: Any) -> None:
    volumes.create("gone")
    response = as_role("admin").post("/volumes/gone/remove/")
    assert response.status_code == 302 and not Volume.objects.filter(name="gone").exists()


def test_prune_removes_anonymous_volumes_and_named_ones_only_when_asked(engine: Path, as_role: Any) -> None:
    anonymous = volumes.create()
    volumes.create("named")
    admin = as_role("admin")
    page = admin.get("/volumes/").content.decode()
    assert "(1 now)" in page and "named" in page  # the prune panel says what would go
    assert admin.post("/volumes/_prune/", {}, **HTMX).status_code == 204
    assert not Volume.objects.filter(name=anonymous.name).exists() and volumes.get("named")
    admin.post("/volumes/_prune/", {"all": "1"})
    assert not Volume.objects.exists()


def test_volume_detail_shows_labels_escaped_and_the_containers_using_it(busybox: Image, as_role: Any) -> None:
    volumes.create("tagged", labels={"note": XSS})
    make_container("reader", volume="tagged")
    body = as_role("viewer").get("/volumes/tagged/").content.decode()
    assert XSS not in body and "note=&lt;img src=x onerror=alert(1)&gt;" in body
    assert "reader" in body and "/data" in body


@pytest.fixture
def planted(engine: Path) -> Volume:
    """A volume holding a file, a directory, a symlink to /etc and a file named with HTML."""
    volume = volumes.create("planted")
    data = Path(volumes.mountpoint(volume))
    (data / "notes.txt").write_text(f"hello {XSS}\n")
    (data / "sub").mkdir()
    (data / "sub" / "inner.txt").write_text("inside")
    (data / "etc-link").symlink_to("/etc")
    (data / XSS).write_text("x")
    return volume


def test_browse_lists_entries_and_shows_a_symlink_without_following_it(planted: Volume) -> None:
    entries = {e.name: e for e in volumes.browse("planted", "")}
    assert entries["sub"].kind == "dir" and entries["notes.txt"].kind == "file"
    link = entries["etc-link"]
    assert link.kind == "symlink" and link.target == "/etc" and link.mode.startswith("l")


def test_browse_refuses_to_walk_through_a_symlink_out_of_the_volume(planted: Volume) -> None:
    with pytest.raises(InvalidArgument, match="symbolic link"):
        volumes.browse("planted", "etc-link")
    with pytest.raises(InvalidArgument, match="symbolic link"):
        volumes.read_file("planted", "etc-link/passwd", 1024)
    with pytest.raises(InvalidArgument, match="symbolic link"):
        volumes.read_file("planted", "etc-link", 1024)


def test_browse_refuses_dotdot(planted: Volume) -> None:
    for path in ("..", "sub/../..", "sub/../../../etc"):
        with pytest.raises(InvalidArgument, match=r"'\.\.' is not allowed"):
            volumes.browse("planted", path)
    with pytest.raises(InvalidArgument):
        volumes.read_file("planted", "../../../../etc/passwd", 1024)


def test_files_page_lists_escaped_names_and_refuses_symlinks_and_dotdot(
    planted: Volume, as_role: Any
) -> None:
    viewer = as_role("viewer")
    body = viewer.get("/volumes/planted/files/").content.decode()
    assert XSS not in body and "&lt;img src=x onerror=alert(1)&gt;" in body
    assert "symlink, not followed" in body and "/etc" in body
    inner = viewer.get("/volumes/planted/files/", {"path": "sub"}, **HTMX).content.decode()
    assert "inner.txt" in inner and "<html" not in inner
    assert viewer.get("/volumes/planted/files/", {"path": "etc-link"}).status_code == 400
    assert viewer.get("/volumes/planted/files/", {"path": "../.."}).status_code == 400
    assert viewer.get("/volumes/planted/files/view/", {"path": "etc-link/passwd"}).status_code == 400


def test_file_view_shows_text_escaped(planted: Volume, as_role: Any) -> None:
    body = as_role("viewer").get("/volumes/planted/files/view/", {"path": "notes.txt"}).content.decode()
    assert "hello &lt;img src=x onerror=alert(1)&gt;" in body and XSS not in body


def test_file_view_stops_at_64_kib(planted: Volume, as_role: Any) -> None:
    Path(volumes.mountpoint(planted), "big.txt").write_text("a" * 100_000)
    body = as_role("viewer").get("/volumes/planted/files/view/", {"path": "big.txt"}).content.decode()
    assert "Only the first" in body and "a" * 65536 in body and "a" * 65537 not in body


# ---------- events ----------


def test_events_page_lists_and_filters_the_audit_log(busybox: Image, as_role: Any) -> None:
    from engine import events

    with events.acting_as("alice"):
        volumes.create("alpha")
    with events.acting_as("bob"):
        volumes.create("beta")
    viewer = as_role("viewer")
    body = viewer.get("/events/").content.decode()
    assert "alice" in body and "bob" in body and "beta" in body
    only_alice = viewer.get("/events/", {"user": "alice"}, **HTMX).content.decode()
    assert "alpha" in only_alice and "beta" not in only_alice and "<html" not in only_alice
    by_object = viewer.get("/events/", {"type": "volume", "object": "bet"}, **HTMX).content.decode()
    assert "beta" in by_object and "alpha" not in by_object
    by_action = viewer.get("/events/", {"action": "seed"}, **HTMX).content.decode()
    assert "busybox" in by_action and "alpha" not in by_action


def test_events_are_paginated_and_escaped(engine: Path, as_role: Any) -> None:
    from engine import events

    for n in range(60):
        events.record("volume", "create", object_id=f"v{n}", object_name=f"{XSS}{n}")
    viewer = as_role("viewer")
    first = viewer.get("/events/").content.decode()
    assert "Page 1 of 2" in first and XSS not in first
    second = viewer.get("/events/", {"page": "2"}).content.decode()
    assert "Page 2 of 2" in second
    recent = viewer.get("/events/recent/").content.decode()
    assert recent.count("event-list__item") == 15


def test_create_form_refuses_a_name_that_exists_instead_of_saying_created(engine: Path, as_role: Any) -> None:
    operator = as_role("operator")
    first = operator.post("/volumes/_create/", {"name": "taken", "labels": "", "options": ""})
    assert first.status_code == 302
    again = operator.post("/volumes/_create/", {"name": "taken", "labels": "a=b", "options": ""})
    assert again.status_code == 400 and "a volume named taken already exists" in again.content.decode()
    assert volumes.get("taken").labels == {}  # the existing volume is left as it was
