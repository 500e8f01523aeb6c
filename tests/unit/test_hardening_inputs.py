"""Issue 10 items 1, 6 and 9 in pure code: stop signals, tmpfs options, and the rootfs symlink walk."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from engine.dockerfile.metadata import apply
from engine.dockerfile.parser import parse
from engine.errors import DockerfileError, InvalidArgument
from engine.image import changes, formats, stopsignal
from engine.runtime import tmpfs
from engine.services import options as opts
from engine.store import rootcheck

# -- stop signals (item 6) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("SIGTERM", 15),
        ("term", 15),
        ("KILL", 9),
        ("9", 9),
        ("64", 64),
        ("SIGRTMIN", 34),
        ("SIGRTMIN+3", 37),
        ("RTMAX-1", 63),
        (" SIGUSR1 ", 10),
    ],
)
def test_the_validator_accepts_names_numbers_and_realtime_signals(text: str, number: int) -> None:
    assert stopsignal.parse_signal(text) == number


@pytest.mark.parametrize(
    "text",
    ["SIGFOO", "99", "0", "", "65", "-1", "SIG", "RTMIN+40", "SIGRTMAX+1", "١", "TERM;KILL", "X" * 5000],
)
def test_the_validator_refuses_what_cannot_be_sent(text: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        stopsignal.parse_signal(text)
    # One short line, even for a 5000-character value.
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 200


def test_signal_names_round_trip_through_the_validator() -> None:
    for number in range(1, stopsignal.MAX_SIGNAL + 1):
        name = stopsignal.signal_name(number)
        if not name.isdigit():
            assert stopsignal.parse_signal(name) == number


def test_the_option_parser_uses_the_same_validator() -> None:
    assert opts.parse_signal("SIGRTMIN+2") == 36
    with pytest.raises(InvalidArgument):
        opts.parse_signal("SIGFOO")


@pytest.mark.parametrize("value", ["SIGFOO", "99", "0"])
def test_a_dockerfile_stopsignal_that_is_not_a_signal_is_refused_with_its_line(value: str) -> None:
    (instr,) = parse(f"FROM scratch\nSTOPSIGNAL {value}\n").stages[0].instructions
    with pytest.raises(DockerfileError, match="line 2: invalid signal"):
        apply(instr, {}, {})


def test_commit_change_stopsignal_is_validated() -> None:
    with pytest.raises(InvalidArgument, match="invalid signal 'SIGFOO'"):
        changes.apply_changes({}, ["STOPSIGNAL SIGFOO"])
    assert changes.apply_changes({}, ["STOPSIGNAL SIGUSR2"])["StopSignal"] == "SIGUSR2"


def test_a_loaded_config_with_a_bad_stopsignal_loads_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    doc = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
        "config": {"StopSignal": "SIGFOO"},
    }
    with caplog.at_level(logging.WARNING, logger="engine.image.formats"):
        config = formats.parse_config(json.dumps(doc).encode())
    # Kept as it is (the digest covers it): create refuses it unless --stop-signal is given.
    assert config.config["StopSignal"] == "SIGFOO"
    assert "StopSignal 'SIGFOO' is not a valid signal" in caplog.text


# -- tmpfs (item 9) -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["7777", "4777", "2755", "17777", "9", "1777 ", "-1", ""])
def test_tmpfs_modes_beyond_1777_are_refused(mode: str) -> None:
    with pytest.raises(InvalidArgument):
        tmpfs.parse_mode(mode)
    with pytest.raises(InvalidArgument):
        opts.parse_tmpfs(f"/t:mode={mode}")
    with pytest.raises(InvalidArgument):
        opts.parse_mount(f"type=tmpfs,target=/t,tmpfs-mode={mode}")


@pytest.mark.parametrize("mode", ["1777", "755", "0700", "0"])
def test_ordinary_tmpfs_modes_pass(mode: str) -> None:
    assert dict(opts.parse_tmpfs(f"/t:mode={mode}").options)["mode"] == mode


def test_tmpfs_size_zero_and_above_the_cap_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="unlimited"):
        tmpfs.check_size(0, cap=1 << 30, destination="/t")
    with pytest.raises(InvalidArgument, match="more than the limit"):
        tmpfs.check_size((1 << 30) + 1, cap=1 << 30, destination="/t")
    tmpfs.check_size(1 << 30, cap=1 << 30, destination="/t")


def test_stored_tmpfs_options_get_a_size_and_a_masked_mode() -> None:
    cap = 1 << 30
    assert tmpfs.mount_options({}, cap=cap) == (f"size={cap}",)
    # Rows stored before the rule: clamped and masked at start, never unlimited.
    assert tmpfs.mount_options({"size": "0", "mode": "7777"}, cap=cap) == (f"size={cap}", "mode=1777")
    assert tmpfs.mount_options({"size": str(cap * 4), "noexec": ""}, cap=cap) == (f"size={cap}", "noexec")
    assert tmpfs.mount_options({"size": "4096", "mode": "755"}, cap=cap) == ("size=4096", "mode=755")


# -- symlinks on runtime paths (item 1) ---------------------------------------------------------


def _rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    for sub in ("dev", "proc", "sys", "etc", "data"):
        (root / sub).mkdir(parents=True)
    return root


SPEC_MOUNTS = [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs"},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts"},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm"},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs"},
]


def test_a_plain_rootfs_has_no_finding(tmp_path: Path) -> None:
    assert rootcheck.find_symlink(str(_rootfs(tmp_path)), SPEC_MOUNTS) is None


@pytest.mark.parametrize("path", ["dev", "proc", "sys", "etc", "dev/shm", "dev/pts", "dev/mqueue"])
def test_a_symlinked_runtime_path_is_found_without_following_it(tmp_path: Path, path: str) -> None:
    root = _rootfs(tmp_path)
    canary = tmp_path / "canary"
    canary.mkdir()
    (root / path).rmdir() if (root / path).is_dir() else None
    os.symlink(str(canary), root / path)
    found = rootcheck.find_symlink(str(root), SPEC_MOUNTS)
    assert found == rootcheck.SymlinkFound("/" + path, str(canary))
    assert list(canary.iterdir()) == []


def test_a_symlinked_component_of_a_mount_destination_is_found(tmp_path: Path) -> None:
    root = _rootfs(tmp_path)
    os.symlink("/tmp", root / "data" / "link")
    mounts = [*SPEC_MOUNTS, {"destination": "/data/link/vol", "type": "bind", "source": "/nonexistent"}]
    assert rootcheck.find_symlink(str(root), mounts) == rootcheck.SymlinkFound("/data/link", "/tmp")


def test_a_destination_below_a_bind_is_walked_in_the_binds_source(tmp_path: Path) -> None:
    root = _rootfs(tmp_path)
    volume = tmp_path / "volume"
    volume.mkdir()
    os.symlink("/etc", volume / "sub")  # planted by another container sharing the volume
    mounts = [
        *SPEC_MOUNTS,
        {"destination": "/data", "type": "bind", "source": str(volume)},
        {"destination": "/data/sub", "type": "tmpfs", "source": "tmpfs"},
    ]
    assert rootcheck.find_symlink(str(root), mounts) == rootcheck.SymlinkFound("/data/sub", "/etc")


def test_device_links_hidden_by_the_dev_tmpfs_are_not_refused(tmp_path: Path) -> None:
    root = _rootfs(tmp_path)
    os.symlink("/proc/self/fd", root / "dev" / "fd")  # what debootstrap-made images carry
    assert rootcheck.find_symlink(str(root), SPEC_MOUNTS) is None
