"""`update`, `cp` and `export` through the berth CLI: live limits, Docker's copy rules, and paths
that never leave the container's root."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.root

CGROUP = Path("/sys/fs/cgroup")


def memory_limit(container_id: str) -> int | None:
    """The memory limit the kernel enforces for the container (cgroup v2 or v1), None if unlimited."""
    for path in (
        CGROUP / "berth" / container_id / "memory.max",
        CGROUP / "memory" / "berth" / container_id / "memory.limit_in_bytes",
    ):
        if path.exists():
            text = path.read_text().strip()
            return None if text == "max" or int(text) >= 1 << 62 else int(text)
    raise AssertionError(f"no memory cgroup for {container_id}")


def run_binary(cli, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:  # type: ignore[no-untyped-def]
    proc = subprocess.run([*cli.argv, *args], env=cli.env, input=data, capture_output=True, timeout=120)
    assert b"Traceback" not in proc.stderr, proc.stderr
    return proc


@pytest.fixture
def host_dir():  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory(prefix="berth-cp-") as directory:
        yield Path(directory)


# -- update ---------------------------------------------------------------------------------------


def test_update_memory_changes_the_running_cgroup_and_survives_a_restart(berth_cli) -> None:
    berth_cli.ok("run", "-d", "--name", "upd", "--network", "none", "-m", "64m", "busybox", "sleep", "300")
    cid = berth_cli.inspect("upd")["Id"]
    assert memory_limit(cid) == 64 << 20
    assert berth_cli.ok("update", "--memory", "32m", "--pids-limit", "77", "upd") == "upd\n"
    assert memory_limit(cid) == 32 << 20  # applied live, not only recorded
    host = berth_cli.inspect("upd")["HostConfig"]
    assert (host["Memory"], host["PidsLimit"]) == (32 << 20, 77)
    berth_cli.ok("restart", "-t", "0", "upd")
    assert memory_limit(cid) == 32 << 20  # the next start builds its spec from the record
    assert pids_max(cid) == "77"


def test_update_below_the_memory_in_use_is_refused_and_changes_nothing(berth_cli) -> None:
    berth_cli.ok("run", "-d", "--name", "hog", "--network", "none", "-m", "64m", "busybox", "sleep", "300")
    cid = berth_cli.inspect("hog")["Id"]
    # tmpfs pages are charged to the container and cannot be reclaimed: 24 MiB stay in use.
    berth_cli.ok("exec", "hog", "dd", "if=/dev/zero", "of=/dev/shm/fill", "bs=1M", "count=24")
    error = berth_cli.fail("update", "--memory", "8m", "hog")
    assert "uses" in error and "hog" in error
    assert memory_limit(cid) == 64 << 20
    assert berth_cli.inspect("hog")["HostConfig"]["Memory"] == 64 << 20


def pids_max(container_id: str) -> str:
    for path in (
        CGROUP / "berth" / container_id / "pids.max",
        CGROUP / "pids" / "berth" / container_id / "pids.max",
    ):
        if path.exists():
            return path.read_text().strip()
    raise AssertionError(f"no pids cgroup for {container_id}")


def test_update_of_a_stopped_container_applies_at_its_next_start(berth_cli) -> None:
    berth_cli.ok("create", "--name", "later", "--network", "none", "busybox", "sleep", "300")
    berth_cli.ok("update", "--pids-limit", "33", "--restart", "on-failure:2", "later")
    host = berth_cli.inspect("later")["HostConfig"]
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    berth_cli.ok("start", "later")
    assert pids_max(berth_cli.inspect("later")["Id"]) == "33"


def test_update_rejects_nonsense_with_a_clear_error(berth_cli) -> None:
    berth_cli.ok("create", "--name", "upbad", "busybox", "true")
    assert "6MB" in berth_cli.fail("update", "--memory", "1m", "upbad")
    assert "flags" in berth_cli.fail("update", "upbad")
    assert "restart policy" in berth_cli.fail("update", "--restart", "sometimes", "upbad")


# -- cp: Docker's path rules ----------------------------------------------------------------------

SETUP = "mkdir -p /src/dir/sub && echo file > /src/file && echo inner > /src/dir/inner && echo deep > /src/dir/sub/deep"

# (container source, host destination relative to a fresh dir with an existing `have/`, what appears)
OUT_CASES = [
    ("/src/file", "new", {"new": "file"}),
    ("/src/file", "have", {"have/file": "file"}),
    ("/src/file", "have/", {"have/file": "file"}),
    ("/src/dir", "new", {"new/inner": "inner", "new/sub/deep": "deep"}),
    ("/src/dir", "have", {"have/dir/inner": "inner", "have/dir/sub/deep": "deep"}),
    ("/src/dir/", "have", {"have/dir/inner": "inner"}),
    ("/src/dir/.", "have", {"have/inner": "inner", "have/sub/deep": "deep"}),
    ("/src/dir/.", "new", {"new/inner": "inner"}),
]
OUT_ERRORS = [
    ("/src/file", "missing/", "does not exist"),
    ("/src/file/", "x", "not a directory"),
    ("/src/dir", "plain", "cannot copy a directory to a file"),
    ("/src/nothing", "x", "Could not find the file"),
]


def test_cp_out_of_a_container_follows_dockers_path_rules(berth_cli, host_dir) -> None:
    berth_cli.ok("run", "-d", "--name", "cpout", "--network", "none", "busybox", "sleep", "300")
    berth_cli.ok("exec", "cpout", "sh", "-c", SETUP)
    for index, (src, dest, expected) in enumerate(OUT_CASES):
        case = host_dir / f"case{index}"
        (case / "have").mkdir(parents=True)
        berth_cli.ok("cp", f"cpout:{src}", str(case / dest) + ("/" if dest.endswith("/") else ""))
        for rel, content in expected.items():
            assert (case / rel).read_text() == content + "\n", (src, dest, rel)
    (host_dir / "plain").write_text("x")
    for src, dest, message in OUT_ERRORS:
        target = str(host_dir / dest) + ("/" if dest.endswith("/") else "")
        assert message in berth_cli.fail("cp", f"cpout:{src}", target), (src, dest)


IN_CASES = [
    ("file", "/dst/new", "/dst/new", "file"),
    ("file", "/dst/have", "/dst/have/file", "file"),
    ("file", "/dst/have/", "/dst/have/file", "file"),
    ("dir", "/dst/new", "/dst/new/sub/deep", "deep"),
    ("dir", "/dst/have", "/dst/have/dir/inner", "inner"),
    ("dir/.", "/dst/have", "/dst/have/inner", "inner"),
    ("dir/.", "/dst/fresh", "/dst/fresh/sub/deep", "deep"),
]


def test_cp_into_a_container_follows_dockers_path_rules(berth_cli, host_dir) -> None:
    (host_dir / "dir" / "sub").mkdir(parents=True)
    (host_dir / "file").write_text("file\n")
    (host_dir / "dir" / "inner").write_text("inner\n")
    (host_dir / "dir" / "sub" / "deep").write_text("deep\n")
    berth_cli.ok("run", "-d", "--name", "cpin", "--network", "none", "busybox", "sleep", "300")
    for index, (src, dest, check, content) in enumerate(IN_CASES):
        root = f"/case{index}"
        berth_cli.ok("exec", "cpin", "mkdir", "-p", f"{root}/dst/have")
        berth_cli.ok("cp", f"{host_dir}/{src}", f"cpin:{root}{dest}")  # pathlib would drop "/."
        assert berth_cli.ok("exec", "cpin", "cat", f"{root}{check}") == content + "\n", (src, dest)
    assert "does not exist" in berth_cli.fail("cp", str(host_dir / "file"), "cpin:/nowhere/")
    assert "cannot copy a directory to a file" in berth_cli.fail(
        "cp", str(host_dir / "dir"), "cpin:/case0/dst/new"
    )


def test_cp_without_a_keeps_root_ownership_and_with_a_keeps_the_source_owner(berth_cli, host_dir) -> None:
    owned = host_dir / "owned"
    owned.write_text("x\n")
    os.chown(owned, 4321, 4321)
    berth_cli.ok("run", "-d", "--name", "cpown", "--network", "none", "busybox", "sleep", "300")
    berth_cli.ok("cp", str(owned), "cpown:/plain")
    berth_cli.ok("cp", "-a", str(owned), "cpown:/kept")
    assert berth_cli.ok("exec", "cpown", "stat", "-c", "%u:%g", "/plain", "/kept").split() == [
        "0:0",
        "4321:4321",
    ]


def test_cp_dash_writes_and_reads_a_tar(berth_cli) -> None:
    berth_cli.ok("run", "-d", "--name", "cptar", "--network", "none", "busybox", "sleep", "300")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = b"from a tar\n"
        info = tarfile.TarInfo("t/inside.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    proc = run_binary(berth_cli, "cp", "-", "cptar:/tmp", data=buffer.getvalue())
    assert proc.returncode == 0, proc.stderr
    assert berth_cli.ok("exec", "cptar", "cat", "/tmp/t/inside.txt") == "from a tar\n"
    out = run_binary(berth_cli, "cp", "cptar:/tmp/t", "-")
    assert out.returncode == 0, out.stderr
    with tarfile.open(fileobj=io.BytesIO(out.stdout)) as tar:
        names = tar.getnames()
        member = tar.extractfile("t/inside.txt")
        assert member is not None and member.read() == b"from a tar\n"
    assert names[0] == "t"  # entries are named after the source's base name, as docker cp's


def test_cp_with_a_stopped_container_mounts_only_for_the_copy(berth_cli, host_dir) -> None:
    (host_dir / "note").write_text("while stopped\n")
    berth_cli.ok("create", "--name", "cpstop", "--network", "none", "busybox", "cat", "/note")
    berth_cli.ok("cp", str(host_dir / "note"), "cpstop:/note")
    berth_cli.ok("cp", "cpstop:/etc/passwd", str(host_dir / "passwd"))
    assert (host_dir / "passwd").read_text().startswith("root:")
    merged = berth_cli.root / "containers" / berth_cli.inspect("cpstop")["Id"] / "merged"
    assert str(merged) not in Path("/proc/self/mountinfo").read_text()  # unmounted again
    assert berth_cli.ok("start", "-a", "cpstop") == "while stopped\n"


# -- cp: symlinks never lead out of the container's root -----------------------------------------


def _plant_links(berth_cli, name: str, host_dir: Path) -> None:  # type: ignore[no-untyped-def]
    """The container has its own copy of host_dir's path, and links that point at it three ways."""
    (host_dir / "secret").write_text("host\n")
    script = (
        f"mkdir -p {host_dir} && echo container > {host_dir}/secret && "
        f"ln -s {host_dir}/secret /abs && ln -s ../../../../../../..{host_dir}/secret /rel && "
        f"ln -s {host_dir} /dirlink"
    )
    berth_cli.ok("exec", name, "sh", "-c", script)


def test_cp_out_reads_the_containers_view_through_symlinks(berth_cli, host_dir) -> None:
    berth_cli.ok("run", "-d", "--name", "lnout", "--network", "none", "busybox", "sleep", "300")
    _plant_links(berth_cli, "lnout", host_dir)
    out = host_dir / "out"
    out.mkdir()
    berth_cli.ok("cp", "-L", "lnout:/abs", str(out / "abs"))
    berth_cli.ok("cp", "-L", "lnout:/rel", str(out / "rel"))
    berth_cli.ok("cp", "lnout:/dirlink/secret", str(out / "parent"))
    for name in ("abs", "rel", "parent"):
        assert (out / name).read_text() == "container\n", name
    # Without -L the link itself is copied, never its (host) target.
    berth_cli.ok("cp", "lnout:/abs", str(out / "link"))
    assert (out / "link").is_symlink()


def test_cp_in_writes_through_symlinks_inside_the_root_only(berth_cli, host_dir) -> None:
    berth_cli.ok("run", "-d", "--name", "lnin", "--network", "none", "busybox", "sleep", "300")
    _plant_links(berth_cli, "lnin", host_dir)
    payload = host_dir / "payload"
    payload.write_text("overwritten\n")
    berth_cli.ok("cp", str(payload), "lnin:/abs")
    berth_cli.ok("cp", str(payload), "lnin:/dirlink/")
    berth_cli.ok("cp", str(payload), "lnin:/rel")
    assert (host_dir / "secret").read_text() == "host\n"  # the host file is untouched
    assert berth_cli.ok("exec", "lnin", "cat", f"{host_dir}/secret") == "overwritten\n"
    assert berth_cli.ok("exec", "lnin", "cat", f"{host_dir}/payload") == "overwritten\n"


def test_cp_in_refuses_a_tar_that_writes_through_its_own_symlink(berth_cli, host_dir) -> None:
    berth_cli.ok("run", "-d", "--name", "lntar", "--network", "none", "busybox", "sleep", "300")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        link = tarfile.TarInfo("esc")
        link.type, link.linkname = tarfile.SYMTYPE, str(host_dir)
        tar.addfile(link)
        info = tarfile.TarInfo("esc/pwned")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    proc = run_binary(berth_cli, "cp", "-", "lntar:/tmp", data=buffer.getvalue())
    assert proc.returncode != 0 and b"symlink" in proc.stderr
    assert not (host_dir / "pwned").exists()


def test_cp_of_a_stopped_container_resolves_links_inside_its_root(berth_cli, host_dir) -> None:
    berth_cli.ok("run", "-d", "--name", "lnstop", "--network", "none", "busybox", "sleep", "300")
    _plant_links(berth_cli, "lnstop", host_dir)
    berth_cli.ok("stop", "-t", "0", "lnstop")
    berth_cli.ok("cp", "-L", "lnstop:/rel", str(host_dir / "got"))
    assert (host_dir / "got").read_text() == "container\n"
    (host_dir / "payload").write_text("new\n")
    berth_cli.ok("cp", str(host_dir / "payload"), "lnstop:/abs")
    assert (host_dir / "secret").read_text() == "host\n"


# -- export ---------------------------------------------------------------------------------------


def test_export_streams_the_merged_filesystem_of_running_and_stopped_containers(berth_cli, host_dir) -> None:
    berth_cli.ok("run", "-d", "--name", "exp", "--network", "none", "busybox", "sleep", "300")
    berth_cli.ok("exec", "exp", "sh", "-c", "echo mine > /made-here && rm /bin/vi")
    out = run_binary(berth_cli, "export", "exp")
    assert out.returncode == 0, out.stderr
    with tarfile.open(fileobj=io.BytesIO(out.stdout)) as tar:
        names = set(tar.getnames())
    assert {"bin/busybox", "made-here", "etc/passwd"} <= names
    assert "bin/vi" not in names  # deleted in the container layer: the whiteout hides it
    berth_cli.ok("stop", "-t", "0", "exp")
    target = host_dir / "exp.tar"
    berth_cli.ok("export", "-o", str(target), "exp")
    with tarfile.open(target) as tar:
        member = tar.extractfile("made-here")
        assert member is not None and member.read() == b"mine\n"
        assert tar.getmember("bin/busybox").isfile()
