"""Volume backup and restore: byte-for-byte round trips, hostile archives refused with nothing left
behind, the non-empty and in-use rules, the CLI, and the dashboard's backup and restore jobs."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from engine import conf
from engine.errors import InUse, InvalidArgument, VolumeNotFound
from engine.models import Event, JobState, Volume
from engine.services import volumebackup, volumes
from tests.conftest import require_root
from tests.integration.test_dashboard_images_volumes import wait_for_job
from tests.polling import settle

pytestmark = pytest.mark.root

MTIME_NS = 1_600_000_000_123_456_000


def data_dir(name: str) -> Path:
    return conf.volumes_dir() / name / "_data"


def populate(root: Path, host_dir: Path) -> None:
    """Every kind of entry a volume holds, with owners, modes, times, a user xattr and hard links."""
    (root / "dir" / "deep").mkdir(parents=True)
    (root / "dir" / "deep" / "file.txt").write_bytes(b"deep content\n")
    (root / "big.bin").write_bytes(os.urandom(3 << 20))
    (root / "empty").write_bytes(b"")
    (root / "owned").write_text("owned by 1234:5678\n")
    os.chown(root / "owned", 1234, 5678)
    os.chmod(root / "owned", 0o640)
    (root / "setuid").write_text("#!/bin/sh\n")
    os.chmod(root / "setuid", 0o4755)
    os.mkdir(root / "sticky", 0o1777)
    os.chmod(root / "sticky", 0o1777)
    os.setxattr(root / "owned", "user.backup", b"\x00binary\xffvalue")
    os.setxattr(root / "dir", "user.note", b"on a directory")
    os.link(root / "owned", root / "dir" / "hardlink")
    (root / "abs-link").symlink_to("/etc/passwd")  # means the container's /etc/passwd: stored as is
    (root / "host-link").symlink_to(host_dir)  # a host directory: stored as a link, never entered
    os.lchown(root / "host-link", 42, 43)
    (root / "rel-link").symlink_to("dir/deep/file.txt")
    os.mkfifo(root / "fifo", 0o600)
    os.chmod(root, 0o750)
    os.chown(root, 1000, 1000)
    for path in [*root.rglob("*"), root]:
        os.utime(path, ns=(MTIME_NS, MTIME_NS), follow_symlinks=False)


def snapshot(root: Path) -> dict[str, Any]:
    """Everything a backup must keep, per path: kind, mode, owner, mtime, content, link, xattrs,
    and which paths share an inode (hard links)."""
    inodes: dict[int, str] = {}
    result: dict[str, Any] = {}
    for path in sorted([root, *root.rglob("*")]):
        rel = str(path.relative_to(root))
        st = os.lstat(path)
        entry: dict[str, Any] = {
            "mode": st.st_mode,
            "owner": (st.st_uid, st.st_gid),
            "mtime_s": st.st_mtime_ns // 1_000_000_000,  # whole seconds, as tar and Docker keep them
        }
        if stat.S_ISREG(st.st_mode):
            entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
            entry["same_inode_as"] = inodes.setdefault(st.st_ino, rel)
        if stat.S_ISLNK(st.st_mode):
            entry["target"] = os.readlink(path)
        else:
            entry["xattrs"] = {n: os.getxattr(path, n) for n in os.listxattr(path) if n.startswith("user.")}
        if stat.S_ISDIR(st.st_mode) and path == root:
            entry.pop("mtime_s")  # the restored root is renamed into place after its time was set
        result[rel] = entry
    return result


def leftovers(name: str) -> list[str]:
    """Anything in the volume's own directory besides _data (a staging directory would show here)."""
    directory = conf.volumes_dir() / name
    return sorted(p.name for p in directory.iterdir() if p.name != "_data") if directory.exists() else []


@pytest.fixture
def host_dir(tmp_path: Path) -> Path:
    target = tmp_path / "host"
    target.mkdir()
    (target / "secret").write_text("host file\n")
    return target


@pytest.fixture
def source(engine: Path, host_dir: Path) -> Volume:
    require_root()
    volume = volumes.create("srcvol")
    populate(data_dir("srcvol"), host_dir)
    return volume


# -- round trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_a_volume_round_trips_byte_for_byte_with_owners_modes_xattrs_and_hard_links(
    source: Volume, compression: str, tmp_path: Path
) -> None:
    backup = tmp_path / "backup"
    with open(backup, "wb") as out:
        exported = volumebackup.export("srcvol", out, compression=compression)
    magic = backup.read_bytes()[:4]
    expected_magic = {"gzip": b"\x1f\x8b", "zstd": b"\x28\xb5\x2f\xfd"}.get(compression)
    if expected_magic:
        assert magic.startswith(expected_magic)
    assert exported.written == backup.stat().st_size
    with open(backup, "rb") as src:
        imported = volumebackup.import_("dstvol", src)
    assert imported.created and imported.entries > 10
    assert snapshot(data_dir("dstvol")) == snapshot(data_dir("srcvol"))
    assert leftovers("dstvol") == []


def test_export_stores_symlinks_as_links_and_never_enters_them(source: Volume, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    volumebackup.export("srcvol", buffer, compression="none")
    with tarfile.open(fileobj=io.BytesIO(buffer.getvalue())) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["./host-link"].issym() and members["./host-link"].linkname == str(tmp_path / "host")
    assert not any("secret" in name for name in members)  # the host directory was not walked
    assert members["./dir/hardlink"].islnk() or members["./owned"].islnk()


def test_export_leaves_out_device_nodes_and_reports_them(engine: Path) -> None:
    require_root()
    volumes.create("devvol")
    os.mknod(data_dir("devvol") / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    (data_dir("devvol") / "kept").write_text("x")
    buffer = io.BytesIO()
    result = volumebackup.export("devvol", buffer, compression="none")
    assert result.skipped == ("null",) and result.skipped_count == 1
    with tarfile.open(fileobj=io.BytesIO(buffer.getvalue())) as tar:
        assert sorted(tar.getnames()) == [".", "./kept"]


def test_backup_and_restore_are_events_with_the_user(source: Volume) -> None:
    from engine import events

    buffer = io.BytesIO()
    with events.acting_as("alice"):
        volumebackup.export("srcvol", buffer, compression="gzip")
        buffer.seek(0)
        volumebackup.import_("copyvol", buffer)
    actions = set(Event.objects.filter(actor="alice").values_list("object_name", "action"))
    assert {("srcvol", "backup"), ("copyvol", "restore")} <= actions


# -- hostile archives -----------------------------------------------------------------------------


def tar_of(*members: tuple[tarfile.TarInfo, bytes | None], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def member(name: str, data: bytes = b"pwned\n", **fields: Any) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    for key, value in fields.items():
        setattr(info, key, value)
    info.size = len(data) if info.isreg() else 0
    return info, (data if info.isreg() else None)


def size_lie() -> bytes:
    """A member whose header claims 10 MiB, followed by 1 KiB and the end of the stream."""
    info = tarfile.TarInfo("./liar")
    info.size = 10 << 20
    return info.tobuf(tarfile.PAX_FORMAT) + b"x" * 1024


def sparse_member() -> bytes:
    """A GNU sparse member claiming a terabyte (the kind that made the engine write 286 MiB)."""
    info = tarfile.TarInfo("./sparse")
    info.type = tarfile.GNUTYPE_SPARSE
    info.size = 0
    header = bytearray(info.tobuf(tarfile.GNU_FORMAT))
    # realsize field of the old GNU header (offset 483, 12 bytes): 1 TiB as octal.
    header[483:495] = b"%011o\0" % (1 << 40)
    header[148:156] = b"        "
    header[148:155] = b"%06o\0" % sum(header)
    return bytes(header) + b"\0" * 1024


def hostile_cases(host: Path) -> dict[str, bytes]:
    return {
        "dotdot": tar_of(member("../escaped")),
        "absolute": tar_of(member(str(host / "written-by-restore"))),
        "symlink-then-write": tar_of(
            member("./link", type=tarfile.SYMTYPE, linkname=str(host)), member("./link/written-by-restore")
        ),
        "hardlink-out": tar_of(member("./hard", type=tarfile.LNKTYPE, linkname="../../../etc/passwd")),
        "device": tar_of(member("./null", type=tarfile.CHRTYPE, devmajor=1, devminor=3)),
        "whiteout": tar_of(member("./.wh.something")),
        "size-lie": size_lie(),
        "sparse": sparse_member(),
        "not-a-tar": b"this is not a backup at all, just text" * 20,
    }


HOSTILE = [
    "dotdot",
    "absolute",
    "symlink-then-write",
    "hardlink-out",
    "device",
    "whiteout",
    "size-lie",
    "sparse",
    "not-a-tar",
]


@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_backup_is_refused_and_leaves_the_empty_target_empty(
    engine: Path, host_dir: Path, case: str
) -> None:
    require_root()
    volumes.create("target")
    archive = hostile_cases(host_dir)[case]
    with pytest.raises(InvalidArgument):
        volumebackup.import_("target", io.BytesIO(archive))
    assert list(data_dir("target").iterdir()) == []
    assert leftovers("target") == []  # no staging directory
    assert sorted(p.name for p in host_dir.iterdir()) == ["secret"]  # nothing written on the host
    assert not (conf.volumes_dir() / "escaped").exists()


def test_a_hostile_backup_into_a_missing_volume_leaves_no_volume(engine: Path, host_dir: Path) -> None:
    require_root()
    with pytest.raises(InvalidArgument):
        volumebackup.import_("fresh", io.BytesIO(hostile_cases(host_dir)["symlink-then-write"]))
    assert not Volume.objects.filter(name="fresh").exists()
    assert not (conf.volumes_dir() / "fresh").exists()
    assert Event.objects.filter(object_name="fresh", action="restore", result="error").exists()


def test_a_hostile_backup_with_force_leaves_the_old_contents_in_place(engine: Path, host_dir: Path) -> None:
    require_root()
    volumes.create("kept")
    (data_dir("kept") / "precious").write_text("still here\n")
    with pytest.raises(InvalidArgument):
        volumebackup.import_("kept", io.BytesIO(hostile_cases(host_dir)["size-lie"]), force=True)
    assert (data_dir("kept") / "precious").read_text() == "still here\n"
    assert leftovers("kept") == []


# -- non-empty and unknown targets ----------------------------------------------------------------


def test_import_into_a_non_empty_volume_is_refused_without_force_and_replaces_with_it(engine: Path) -> None:
    require_root()
    volumes.create("busy")
    (data_dir("busy") / "old").write_text("old\n")
    archive = tar_of(member("./new", b"new\n"))
    with pytest.raises(InUse, match="not empty.*--force"):
        volumebackup.import_("busy", io.BytesIO(archive))
    assert sorted(p.name for p in data_dir("busy").iterdir()) == ["old"]
    result = volumebackup.import_("busy", io.BytesIO(archive), force=True)
    assert result.replaced and not result.created
    assert sorted(p.name for p in data_dir("busy").iterdir()) == ["new"]  # replaced, not merged
    assert leftovers("busy") == []


def test_export_of_an_unknown_volume_or_format_is_a_clear_error(engine: Path) -> None:
    with pytest.raises(VolumeNotFound, match="no such volume: ghost"):
        volumebackup.export("ghost", io.BytesIO())
    volumes.create("real")
    with pytest.raises(InvalidArgument, match="unknown compression"):
        volumebackup.export("real", io.BytesIO(), compression="rar")
    with pytest.raises(InvalidArgument, match=r"\.tar\.zst"):
        volumebackup.compression_for("backup.zip")


# -- the CLI --------------------------------------------------------------------------------------


def run_binary(cli: Any, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run([*cli.argv, *args], env=cli.env, input=data, capture_output=True, timeout=120)
    assert b"Traceback" not in proc.stderr, proc.stderr
    return proc


def test_cli_round_trip_through_files_and_pipes(berth_cli: Any, tmp_path: Path) -> None:
    berth_cli.ok("volume", "create", "clisrc")
    berth_cli.ok(
        "run", "--rm", "--network", "none", "-v", "clisrc:/d", "busybox",
        "sh", "-c", "echo hello > /d/f && ln /d/f /d/g && chown 123:45 /d/f && mkdir /d/sub && chmod 700 /d/sub",
    )  # fmt: skip
    for suffix in (".tar", ".tar.gz", ".tar.zst"):
        backup = tmp_path / f"b{suffix}"
        berth_cli.ok("volume", "export", "clisrc", "-o", str(backup))
        target = "cli" + suffix.replace(".", "")
        berth_cli.ok("volume", "import", target, str(backup))
        out = berth_cli.ok(
            "run", "--rm", "--network", "none", "-v", f"{target}:/d", "busybox",
            "sh", "-c", "cat /d/g; stat -c '%u:%g %h' /d/f; stat -c '%a' /d/sub",
        )  # fmt: skip
        assert out == "hello\n123:45 2\n700\n", suffix
    piped = run_binary(berth_cli, "volume", "export", "clisrc", "-o", "-", "--compression", "zstd")
    assert piped.returncode == 0 and piped.stdout[:4] == b"\x28\xb5\x2f\xfd"
    assert run_binary(berth_cli, "volume", "import", "clipipe", "-", data=piped.stdout).returncode == 0
    error = berth_cli.fail("volume", "import", "clipipe", str(tmp_path / "b.tar"))
    assert "not empty" in error and "--force" in error
    berth_cli.ok("volume", "import", "--force", "clipipe", str(tmp_path / "b.tar"))
    assert "cannot tell the format" in berth_cli.fail(
        "volume", "export", "clisrc", "-o", str(tmp_path / "x.zip")
    )
    assert not list(tmp_path.glob("*.tmp-*"))


def test_cli_export_of_a_volume_in_use_warns_or_pauses_and_import_is_refused(
    berth_cli: Any, tmp_path: Path
) -> None:
    berth_cli.ok(
        "run", "-d", "--name", "user1", "--network", "none", "-v", "live:/d", "busybox", "sleep", "300"
    )
    backup = tmp_path / "live.tar.zst"
    warned = berth_cli("volume", "export", "live", "-o", str(backup))
    assert warned.returncode == 0 and "user1" in warned.stderr and "WARNING" in warned.stderr
    paused = berth_cli("volume", "export", "live", "-o", str(backup), "--pause")
    assert paused.returncode == 0 and "WARNING" not in paused.stderr
    assert berth_cli.inspect("user1")["State"]["Status"] == "running"  # unpaused after the copy
    error = berth_cli.fail("volume", "import", "--force", "live", str(backup))
    assert "running container" in error and "user1" in error


# -- the dashboard --------------------------------------------------------------------------------


def uploads_left(timeout: float = 10) -> list[str]:
    """The uploads still on disk, once the job's clean-up (which runs just after its end) had its chance."""
    tmp = conf.tmp_dir()
    left: list[str] = []

    def cleaned() -> bool:
        left[:] = sorted(p.name for p in tmp.glob("upload-*")) if tmp.exists() else []
        return not left

    settle(cleaned, timeout=timeout)
    return left


def test_viewers_can_neither_download_nor_restore(engine: Path, users: dict[str, Any]) -> None:
    volumes.create("vview")
    client = Client()
    client.force_login(users["viewer"])
    assert client.post("/volumes/vview/backup/", {"format": "zstd"}).status_code == 403
    assert client.get("/volumes/vview/backup/panel/").status_code == 403
    refused = client.post(
        "/volumes/vview/restore/",
        {"archive": SimpleUploadedFile("b.tar", b"x"), "target": "vview"},
        HTTP_ACCEPT="application/json",
    )
    assert refused.status_code == 403 and uploads_left() == []
    page = client.get("/volumes/vview/").content.decode()
    assert "backup/panel" not in page


def test_operator_downloads_a_backup_and_restores_it_into_a_new_volume(
    engine_tx: Path, users: dict[str, Any], host_dir: Path
) -> None:
    require_root()
    volumes.create("webvol")
    populate(data_dir("webvol"), host_dir)
    client = Client()
    client.force_login(users["operator"])
    assert "Download backup" in client.get("/volumes/webvol/backup/panel/").content.decode()
    started = client.post("/volumes/webvol/backup/", {"format": "gzip"})
    assert started.status_code == 302
    job = wait_for_job(started["Location"].rstrip("/").split("/")[-1])
    assert job.state == JobState.SUCCEEDED, job.error
    page = client.get(started["Location"]).content.decode()
    assert "Download webvol-" in page
    download = client.get(started["Location"] + "download/")
    assert download.status_code == 200 and "attachment" in download["Content-Disposition"]
    archive = b"".join(download.streaming_content)  # type: ignore[arg-type]
    download.close()
    assert archive[:2] == b"\x1f\x8b"

    response = client.post(
        "/volumes/webvol/restore/",
        {"archive": SimpleUploadedFile("webvol.tar.gz", archive), "target": "webcopy"},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 200, response.content
    restored = wait_for_job(response.json()["job"])
    assert restored.state == JobState.SUCCEEDED, restored.error
    assert restored.created_by == "operator"
    assert snapshot(data_dir("webcopy")) == snapshot(data_dir("webvol"))
    assert uploads_left() == []
    assert Event.objects.filter(actor="operator", object_name="webcopy", action="restore").exists()
    admin = Client()
    admin.force_login(users["admin"])
    assert admin.get(started["Location"] + "download/").status_code == 200  # admins see every job
    other = Client()
    other.force_login(users["viewer"])
    assert other.get(started["Location"] + "download/").status_code == 403


def test_a_hostile_upload_fails_its_job_and_leaves_nothing(
    engine_tx: Path, users: dict[str, Any], host_dir: Path
) -> None:
    require_root()
    client = Client()
    client.force_login(users["operator"])
    volumes.create("upvol")
    archive = hostile_cases(host_dir)["symlink-then-write"]
    response = client.post(
        "/volumes/upvol/restore/",
        {"archive": SimpleUploadedFile("evil.tar", archive), "target": "evilvol"},
        HTTP_ACCEPT="application/json",
    )
    job = wait_for_job(response.json()["job"])
    assert job.state == JobState.FAILED and "symlink" in job.error
    assert not Volume.objects.filter(name="evilvol").exists()
    assert sorted(p.name for p in host_dir.iterdir()) == ["secret"]
    assert uploads_left() == []


def test_restore_into_a_non_empty_volume_without_replace_is_refused_before_any_job(
    engine: Path, users: dict[str, Any]
) -> None:
    require_root()
    volumes.create("full")
    (data_dir("full") / "f").write_text("x")
    client = Client()
    client.force_login(users["operator"])
    response = client.post(
        "/volumes/full/restore/",
        {"archive": SimpleUploadedFile("b.tar", tar_of(member("./g"))), "target": "full"},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 400 and "not empty" in response.json()["errors"]["force"][0]
    assert uploads_left() == []
