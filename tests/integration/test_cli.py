"""The `berth` CLI as a user runs it: `manage.py berth …` in a subprocess against a seeded engine root.

One root is set up (migrated and seeded) for the whole module; tests that change it use their own names.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TMP_PREFIX

REPO = Path(__file__).resolve().parents[2]
SHORT_ID = re.compile(r"^[0-9a-f]{12}$")


class Berth:
    """Runs `manage.py ARGS…` with BERTH_ROOT/BERTH_RUN pointing at one engine."""

    def __init__(self, root: Path, run: Path) -> None:
        self.root = root
        self.env = {
            **os.environ,
            "BERTH_ROOT": str(root),
            "BERTH_RUN": str(run),
            "BERTH_ADMIN_PASSWORD": "pw",
        }
        self.env.pop("DATABASE_URL", None)  # the engine's own sqlite under its root

    def manage(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env=self.env,
            input=stdin.decode("latin-1") if stdin is not None else None,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return proc

    def __call__(self, *args: str) -> str:
        """Run `berth ARGS…`, insist on success, return stdout."""
        proc = self.manage("berth", *args)
        assert proc.returncode == 0, f"berth {' '.join(args)} exited {proc.returncode}: {proc.stderr}"
        assert "Traceback" not in proc.stderr
        return proc.stdout

    def fails(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.manage("berth", *args)


@pytest.fixture(scope="module")
def berth() -> Iterator[Berth]:
    root = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir="/tmp"))
    run = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir="/tmp"))
    engine = Berth(root, run)
    proc = engine.manage("setup")
    assert proc.returncode == 0, proc.stderr
    yield engine
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(run, ignore_errors=True)


def columns(line: str) -> list[str]:
    """Split a table line on the 2+ space gaps Docker's tabwriter leaves between columns."""
    return re.split(r"\s{2,}", line.strip())


def rootfs(tmp_path: Path, files: dict[str, bytes]) -> Path:
    path = tmp_path / "rootfs.tar"
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


# -- images --------------------------------------------------------------------------------------


def test_images_prints_dockers_header_and_12_character_ids(berth: Berth) -> None:
    lines = berth("images").splitlines()
    assert columns(lines[0]) == ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    (row,) = [columns(line) for line in lines[1:] if line.startswith("busybox ")]
    assert row[:2] == ["busybox", "latest"]
    assert SHORT_ID.match(row[2])
    assert row[3].endswith(" ago") and re.fullmatch(r"[\d.]+[kMG]?B", row[4])


def test_images_quiet_prints_only_ids(berth: Berth) -> None:
    lines = berth("images", "-q").splitlines()
    assert lines and all(SHORT_ID.match(line) for line in lines)


def test_images_format_json_prints_one_object_per_line(berth: Berth) -> None:
    rows = [json.loads(line) for line in berth("images", "--format", "json").splitlines()]
    (busybox,) = [r for r in rows if r["Repository"] == "busybox"]
    assert busybox["Tag"] == "latest"
    assert SHORT_ID.match(busybox["ID"])


def test_image_inspect_prints_a_json_list_in_dockers_shape(berth: Berth) -> None:
    (info,) = json.loads(berth("image", "inspect", "busybox"))
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", info["Id"])
    assert info["RepoTags"] == ["busybox:latest"]
    assert len(info["RootFS"]["Layers"]) == 1
    assert isinstance(info["Size"], int) and info["Size"] > 0


def test_history_prints_dockers_header(berth: Berth) -> None:
    lines = berth("history", "busybox").splitlines()
    assert columns(lines[0]) == ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
    assert SHORT_ID.match(columns(lines[1])[0])


def test_a_tag_with_a_registry_port_is_listed_under_its_repository(berth: Berth) -> None:
    berth("tag", "busybox", "localhost:5000/foo/bar:1")
    assert re.search(r"^localhost:5000/foo/bar {3,}1 {3,}[0-9a-f]{12} ", berth("images"), re.M)
    (info,) = json.loads(berth("image", "inspect", "localhost:5000/foo/bar:1"))
    assert "localhost:5000/foo/bar:1" in info["RepoTags"]


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("image", "inspect", "nothere:1"),
        ("rmi", "nothere:1"),
        ("history", "nothere:1"),
        ("tag", "nothere:1", "other:1"),
        ("save", "-o", "/tmp/never-written.tar", "nothere:1"),
        ("load", "-i", "/nonexistent/archive.tar"),
        ("import", "/nonexistent/rootfs.tar", "x:1"),
        ("volume", "inspect", "nothere"),
        ("volume", "create", "bad$name"),
        ("images", "--filter", "color=blue"),
    ],
    ids=lambda a: " ".join(a),
)
def test_a_user_error_prints_one_error_line_and_exits_non_zero(berth: Berth, args: tuple[str, ...]) -> None:
    proc = berth.fails(*args)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr


def test_an_unknown_image_error_says_no_such_image(berth: Berth) -> None:
    proc = berth.fails("image", "inspect", "nothere:1")
    assert "no such image" in proc.stderr


def test_a_usage_error_ends_with_an_error_line_and_exits_2(berth: Berth) -> None:
    proc = berth.fails("images", "--no-such-flag")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("Error: ")


# -- rmi, import, save, load ---------------------------------------------------------------------


def test_rmi_of_an_extra_tag_prints_untagged(berth: Berth) -> None:
    berth("tag", "busybox", "cli-extra:1")
    assert berth("rmi", "cli-extra:1").splitlines() == ["Untagged: cli-extra:1"]


def test_rmi_of_the_last_tag_prints_untagged_then_deleted(berth: Berth, tmp_path: Path) -> None:
    image_id = berth("import", str(rootfs(tmp_path, {"f": b"x"})), "cli-solo:1").strip()
    lines = berth("rmi", "cli-solo:1").splitlines()
    assert lines[:2] == ["Untagged: cli-solo:1", f"Deleted: {image_id}"]
    assert all(line.startswith("Deleted: sha256:") for line in lines[1:])


def test_import_applies_changes_and_prints_the_image_id(berth: Berth, tmp_path: Path) -> None:
    out = berth(
        "import",
        "-c",
        'CMD ["/bin/app"]',
        "-c",
        "ENV A=1",
        str(rootfs(tmp_path, {"bin/app": b"x"})),
        "cli-imp:1",
    )
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", out)
    (info,) = json.loads(berth("image", "inspect", "cli-imp:1"))
    assert info["Id"] == out.strip()
    assert info["Config"]["Cmd"] == ["/bin/app"] and info["Config"]["Env"] == ["A=1"]


def test_save_then_load_from_stdin_reports_the_loaded_tag(berth: Berth, tmp_path: Path) -> None:
    archive = tmp_path / "busybox.tar"
    berth("save", "-o", str(archive), "busybox")
    assert not list(tmp_path.glob(".*.tmp-*")), "save must not leave its temp file"
    proc = berth.manage("berth", "load", stdin=archive.read_bytes())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["Loaded image: busybox:latest"]


# -- volumes -------------------------------------------------------------------------------------


def test_volume_create_prints_the_name(berth: Berth) -> None:
    assert berth("volume", "create", "--label", "a=b", "cli-vol1") == "cli-vol1\n"


def test_volume_ls_prints_dockers_table_and_quiet_names(berth: Berth) -> None:
    berth("volume", "create", "cli-vol2")
    lines = berth("volume", "ls").splitlines()
    assert columns(lines[0]) == ["DRIVER", "VOLUME NAME"]
    assert ["local", "cli-vol2"] in [columns(line) for line in lines[1:]]
    assert "cli-vol2" in berth("volume", "ls", "-q").splitlines()


def test_volume_ls_filters_by_label(berth: Berth) -> None:
    berth("volume", "create", "--label", "cli=yes", "cli-vol3")
    berth("volume", "create", "cli-vol4")
    assert berth("volume", "ls", "-q", "--filter", "label=cli=yes").splitlines() == ["cli-vol3"]


def test_volume_inspect_prints_a_json_list(berth: Berth) -> None:
    berth("volume", "create", "-l", "k=v", "cli-vol5")
    (info,) = json.loads(berth("volume", "inspect", "cli-vol5"))
    assert info["Name"] == "cli-vol5" and info["Driver"] == "local" and info["Labels"] == {"k": "v"}
    assert info["Mountpoint"] == str(berth.root / "volumes" / "cli-vol5" / "_data")


def test_volume_rm_prints_the_name_and_removes_it(berth: Berth) -> None:
    berth("volume", "create", "cli-vol6")
    assert berth("volume", "rm", "cli-vol6") == "cli-vol6\n"
    assert "cli-vol6" not in berth("volume", "ls", "-q").splitlines()
    assert not (berth.root / "volumes" / "cli-vol6").exists()


def test_a_failed_action_is_recorded_as_an_event_with_its_reason(berth: Berth) -> None:
    proc = berth.fails("rm", "no-such-container")
    assert proc.returncode != 0 and proc.stderr.count("Error: ") == 1
    proc = berth.fails("volume", "rm", "no-such-volume")
    assert proc.returncode != 0
    # Who tried what, when, and why it failed: the audit log keeps refusals, not only successes.
    lines = berth("events", "--filter", "type=cli", "--format", "json").splitlines()
    failures = [json.loads(line) for line in lines]
    assert [(e["Action"], e["Result"]) for e in failures][-1:] == [("volume rm", "error")]
    # A container command's failure is recorded on the container it named (one row per container).
    lines = berth("events", "--filter", "type=container", "--format", "json").splitlines()
    failed_rm = [json.loads(line) for line in lines][-1]
    assert (failed_rm["Action"], failed_rm["Result"]) == ("rm", "error")
    assert failed_rm["Actor"]["Attributes"]["name"] == "no-such-container"
    assert "no such container" in failed_rm["Message"]
