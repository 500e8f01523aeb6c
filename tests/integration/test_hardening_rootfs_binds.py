"""Issue 10 items 1, 3, 6 (STOPSIGNAL) and 9 (tmpfs) through the CLI, with real runc and conmon.

Each hostile input is refused with one `Error:` line; a canary directory made on the host stays
untouched, the container stays `created` and no mount is left (the leak guard and
BerthCLI.cleanup check the mounts and processes).
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.root


@pytest.fixture
def canary(berth_cli) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    """A host directory outside the engine's directories that a hostile image aims at."""
    path = berth_cli.root.parent / f"{berth_cli.root.name}-canary"
    path.mkdir()
    (path / "keep").write_text("host file\n")
    try:
        yield path
    finally:
        for child in path.iterdir():
            child.unlink()
        path.rmdir()


def _untouched(canary: Path) -> bool:
    return (
        sorted(p.name for p in canary.iterdir()) == ["keep"]
        and (canary / "keep").read_text() == "host file\n"
    )


def _rootfs_tar(links: dict[str, str], dirs: tuple[str, ...] = ()) -> bytes:
    """A busybox root file system with extra symlinks (path → target) and directories."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("bin", "tmp", "etc", *dirs):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        tar.add("/bin/busybox", "bin/busybox")
        for applet in ("sh", "sleep", "true", "cat", "ls"):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
        for name, target in links.items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buf.getvalue()


def _import(berth_cli, tag: str, data: bytes, *changes: str) -> None:  # type: ignore[no-untyped-def]
    path = berth_cli.root.parent / f"{berth_cli.root.name}-{tag.replace(':', '-')}.tar"
    path.write_bytes(data)
    try:
        berth_cli.ok("import", *(arg for c in changes for arg in ("-c", c)), str(path), tag)
    finally:
        path.unlink()


# -- item 1: symlinked runtime paths ------------------------------------------------------------


@pytest.mark.parametrize("tty", [False, True], ids=["plain", "tty"])
@pytest.mark.parametrize(
    ("link", "dirs", "extra"),
    [
        ("dev", (), ()),
        ("proc", (), ()),
        ("dev/shm", ("dev",), ()),
        ("data", (), ("-v", "hostilevol:/data")),
    ],
    ids=["dev", "proc", "dev-shm", "volume-destination"],
)
def test_a_symlinked_runtime_path_is_refused_before_runc_sees_it(
    berth_cli, canary: Path, link: str, dirs: tuple[str, ...], extra: tuple[str, ...], tty: bool
) -> None:
    _import(berth_cli, "hostile:1", _rootfs_tar({link: str(canary)}, dirs))
    args = ["create", "--name", "victim", *(["-t"] if tty else []), *extra, "hostile:1", "sleep", "60"]
    berth_cli.ok(*args)
    error = berth_cli.fail("start", "victim")
    assert f"/{link} is a symlink (to {canary})" in error and "refusing to start" in error, error
    # Nothing reached the host directory the link points at (runc would have made fd, ptmx, … there).
    assert _untouched(canary)
    assert berth_cli.inspect("victim")["State"]["Status"] == "created"
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(berth_cli.root) not in mounts and str(canary) not in mounts


# -- item 3: bind-mount policy ------------------------------------------------------------------


def test_a_symlink_inside_an_allowed_directory_cannot_lead_a_bind_to_etc(berth_cli, canary: Path) -> None:
    os.symlink("/etc", canary / "etc-link")
    try:
        berth_cli.env["BERTH_BIND_ALLOW"] = str(canary)
        error = berth_cli.fail("create", "-v", f"{canary}/etc-link:/x", "busybox", "true")
        assert "resolved to /etc" in error and "outside the allowed host paths" in error, error
    finally:
        (canary / "etc-link").unlink()


def test_a_bind_swapped_for_a_symlink_after_create_is_refused_at_start(berth_cli, canary: Path) -> None:
    sub = canary / "sub"
    sub.mkdir()
    try:
        berth_cli.env["BERTH_BIND_ALLOW"] = str(canary)
        berth_cli.ok("create", "--name", "swapped", "-v", f"{sub}:/x", "busybox", "true")
        sub.rmdir()
        os.symlink("/etc", sub)  # what a co-tenant with write access to the allowed dir could do
        error = berth_cli.fail("start", "swapped")
        assert "outside the allowed host paths" in error, error
        assert berth_cli.inspect("swapped")["State"]["Status"] == "created"
    finally:
        sub.unlink() if sub.is_symlink() else sub.rmdir()


@pytest.mark.parametrize("which", ["root", "secret-key", "database", "run", "parent-of-root"])
def test_the_engines_own_files_cannot_be_bind_mounted(berth_cli, which: str) -> None:
    source = {
        "root": berth_cli.root,
        "secret-key": berth_cli.root / "secret-key",
        "database": berth_cli.root / "berth.sqlite3",
        "run": berth_cli.run_dir,
        "parent-of-root": berth_cli.root.parent,
    }[which]
    assert source.exists()
    for flag in ("-v", "--mount"):
        spec = f"{source}:/x:ro" if flag == "-v" else f"type=bind,source={source},target=/x,readonly"
        error = berth_cli.fail("create", flag, spec, "busybox", "true")
        assert "would expose the engine's own files" in error, error
    assert berth_cli.ok("ps", "-aq") == ""


def test_a_bind_through_a_symlink_mounts_the_resolved_path(berth_cli, canary: Path) -> None:
    os.symlink(str(canary), canary.with_name(canary.name + "-link"))
    link = canary.with_name(canary.name + "-link")
    try:
        out = berth_cli.ok("run", "--rm", "-v", f"{link}:/x:ro", "busybox", "cat", "/x/keep")
        assert out == "host file\n"
    finally:
        link.unlink()


# -- item 6: STOPSIGNAL -------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["SIGFOO", "99", "0"])
def test_create_refuses_a_stop_signal_that_is_not_a_signal(berth_cli, value: str) -> None:
    error = berth_cli.fail("create", "--stop-signal", value, "busybox", "true")
    assert f"invalid signal {value!r}" in error, error
    assert berth_cli.ok("ps", "-aq") == ""


def test_import_refuses_a_stopsignal_change_that_is_not_a_signal(berth_cli) -> None:
    path = berth_cli.root.parent / f"{berth_cli.root.name}-sig.tar"
    path.write_bytes(_rootfs_tar({}))
    try:
        error = berth_cli.fail("import", "-c", "STOPSIGNAL SIGFOO", str(path), "badsig:1")
    finally:
        path.unlink()
    assert "invalid signal 'SIGFOO'" in error, error


def _set_stored_config(berth_cli, container: str, key: str, value: object) -> None:  # type: ignore[no-untyped-def]
    """Write a value into a row as an older engine could have stored it (no validation then)."""
    with sqlite3.connect(berth_cli.root / "berth.sqlite3") as db:
        db.execute(
            "UPDATE engine_container SET config = json_set(config, ?, ?) WHERE name = ?",
            (f"$.{key}", value, container),
        )


def _set_image_stop_signal(berth_cli, tag: str, value: str) -> None:  # type: ignore[no-untyped-def]
    """Give a stored image a bad StopSignal, as a loaded archive with one would have."""
    image_id = json.loads(berth_cli.ok("image", "inspect", tag))[0]["Id"].split(":")[-1]
    with sqlite3.connect(berth_cli.root / "berth.sqlite3") as db:
        changed = db.execute(
            "UPDATE engine_image SET config = json_set(config, '$.config.StopSignal', ?) WHERE id LIKE ?",
            (value, f"%{image_id}"),
        ).rowcount
    assert changed == 1


def test_create_refuses_an_images_bad_stopsignal_unless_one_is_given(berth_cli) -> None:
    _import(berth_cli, "sigimg:1", _rootfs_tar({}))
    _set_image_stop_signal(berth_cli, "sigimg:1", "SIGFOO")
    error = berth_cli.fail("create", "sigimg:1", "true")
    assert "invalid STOPSIGNAL 'SIGFOO'" in error and "--stop-signal" in error, error
    berth_cli.ok("create", "--name", "given", "--stop-signal", "SIGTERM", "sigimg:1", "true")


def test_stop_of_a_row_with_a_bad_stored_signal_still_stops_it(berth_cli) -> None:
    berth_cli.ok("run", "-d", "--name", "oldrow", "busybox", "sleep", "600")
    _set_stored_config(berth_cli, "oldrow", "StopSignal", "SIGFOO")
    started = time.monotonic()
    berth_cli.ok("stop", "-t", "30", "oldrow")
    # SIGKILL at once: there is nothing to wait the 30 s grace period for.
    assert time.monotonic() - started < 20
    state = berth_cli.inspect("oldrow")["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 137


# -- item 9: tmpfs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--tmpfs", "/t:mode=7777"), "setuid and setgid bits are not allowed"),
        (("--mount", "type=tmpfs,target=/t,tmpfs-mode=4777"), "setuid and setgid bits are not allowed"),
        (("--tmpfs", "/t:size=0"), "would be unlimited"),
        (("--tmpfs", "/t:size=64t"), "more than the limit"),
        (("--mount", "type=tmpfs,target=/t,tmpfs-size=64t"), "more than the limit"),
    ],
)
def test_hostile_tmpfs_options_are_refused_at_create(berth_cli, args: tuple[str, ...], message: str) -> None:
    error = berth_cli.fail("create", *args, "busybox", "true")
    assert message in error, error
    assert berth_cli.ok("ps", "-aq") == ""


def test_a_tmpfs_without_a_size_gets_the_cap(berth_cli) -> None:
    berth_cli.env["BERTH_TMPFS_MAX_SIZE"] = str(8 << 20)
    out = berth_cli.ok(
        "run", "--rm", "--tmpfs", "/t:mode=755", "busybox", "sh", "-c", "grep ' /t ' /proc/mounts"
    )
    options = out.split()[3].split(",")
    assert "size=8192k" in options and "mode=755" in options, out
