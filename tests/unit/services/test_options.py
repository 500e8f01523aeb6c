"""Docker's option syntax → ContainerOptions pieces (pure)."""

from __future__ import annotations

import pytest

from engine.errors import InvalidArgument
from engine.services import options as opts


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4096", 4096),
        ("512m", 512 << 20),
        ("1g", 1 << 30),
        ("1.5GiB", 3 << 29),
        ("64k", 64 << 10),
        ("10b", 10),
    ],
)
def test_parse_size_uses_binary_units(text: str, size: int) -> None:
    assert opts.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "-1m", "1x", "m"])
def test_parse_size_refuses_nonsense(text: str) -> None:
    with pytest.raises(InvalidArgument):
        opts.parse_size(text)


def test_parse_cpus_accepts_fractions_and_refuses_zero() -> None:
    assert opts.parse_cpus("0.5") == 0.5
    for bad in ("0", "-1", "many"):
        with pytest.raises(InvalidArgument):
            opts.parse_cpus(bad)


@pytest.mark.parametrize(
    ("text", "policy"),
    [
        ("no", opts.RestartPolicy("no", 0)),
        ("always", opts.RestartPolicy("always", 0)),
        ("unless-stopped", opts.RestartPolicy("unless-stopped", 0)),
        ("on-failure", opts.RestartPolicy("on-failure", 0)),
        ("on-failure:2", opts.RestartPolicy("on-failure", 2)),
    ],
)
def test_parse_restart(text: str, policy: opts.RestartPolicy) -> None:
    assert opts.parse_restart(text) == policy


@pytest.mark.parametrize("text", ["sometimes", "always:3", "on-failure:x", "on-failure:-1"])
def test_parse_restart_refuses_bad_policies(text: str) -> None:
    with pytest.raises(InvalidArgument):
        opts.parse_restart(text)


@pytest.mark.parametrize(
    ("text", "number"), [("SIGTERM", 15), ("term", 15), ("KILL", 9), ("10", 10), ("usr1", 10)]
)
def test_parse_signal_accepts_names_and_numbers(text: str, number: int) -> None:
    assert opts.parse_signal(text) == number


@pytest.mark.parametrize("text", ["SIGNOPE", "0", "65", "", "-9"])
def test_parse_signal_refuses_unknown_signals(text: str) -> None:
    with pytest.raises(InvalidArgument):
        opts.parse_signal(text)


def test_signal_name_round_trips() -> None:
    assert opts.signal_name(15) == "SIGTERM"
    assert opts.signal_name(200) == "200"


@pytest.mark.parametrize("name", ["web", "/web", "a1", "my_app.v2-1"])
def test_validate_name_accepts_dockers_names(name: str) -> None:
    assert opts.validate_name(name) == name.lstrip("/")


@pytest.mark.parametrize("name", ["a", "-web", "we b", "web/1", "ünï", ""])
def test_validate_name_refuses_others(name: str) -> None:
    with pytest.raises(InvalidArgument):
        opts.validate_name(name)


def test_parse_volume_forms() -> None:
    assert opts.parse_volume("/data") == opts.MountRequest("volume", "/data", "", False)
    assert opts.parse_volume("vol:/data") == opts.MountRequest("volume", "/data", "vol", False)
    assert opts.parse_volume("vol:/data:ro") == opts.MountRequest("volume", "/data", "vol", True)
    assert opts.parse_volume("/host:/ctr:rw") == opts.MountRequest("bind", "/ctr", "/host", False)
    assert opts.parse_volume("/host:/ctr:ro,z") == opts.MountRequest("bind", "/ctr", "/host", True)


@pytest.mark.parametrize("spec", ["data", "vol:data", "./rel:/ctr", "vol:/d:rx", "a:b:c:d", ":/d"])
def test_parse_volume_refuses_bad_specs(spec: str) -> None:
    with pytest.raises(InvalidArgument):
        opts.parse_volume(spec)


def test_parse_mount_forms() -> None:
    assert opts.parse_mount("type=volume,source=v,target=/d,readonly") == opts.MountRequest(
        "volume", "/d", "v", True
    )
    assert opts.parse_mount("type=bind,src=/h,dst=/c") == opts.MountRequest("bind", "/c", "/h", False)
    tmpfs = opts.parse_mount("type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=1777")
    assert tmpfs == opts.MountRequest("tmpfs", "/t", "", False, (("size", str(64 << 20)), ("mode", "1777")))


@pytest.mark.parametrize(
    "spec",
    [
        "type=nfs,target=/d",
        "type=volume",
        "type=bind,source=rel,target=/d",
        "type=tmpfs,source=x,target=/t",
        "type=tmpfs,target=/t,tmpfs-mode=abc",
        "type=volume,target=/d,colour=blue",
    ],
)
def test_parse_mount_refuses_bad_specs(spec: str) -> None:
    with pytest.raises(InvalidArgument):
        opts.parse_mount(spec)


def test_parse_tmpfs_options() -> None:
    mount = opts.parse_tmpfs("/run:size=1m,mode=700,noexec")
    assert mount == opts.MountRequest(
        "tmpfs", "/run", "", False, (("size", str(1 << 20)), ("mode", "700"), ("noexec", ""))
    )
    assert opts.parse_tmpfs("/ro:ro").read_only
    with pytest.raises(InvalidArgument):
        opts.parse_tmpfs("/t:uid=0")
    with pytest.raises(InvalidArgument):
        opts.parse_tmpfs("relative")


def test_parse_env_file_skips_comments_and_checks_names() -> None:
    text = "# comment\n\nA=1\nB= spaced \nONLY_NAME\n"
    assert opts.parse_env_file(text, "f.env") == ["A=1", "B= spaced", "ONLY_NAME"]
    with pytest.raises(InvalidArgument, match="f.env:1"):
        opts.parse_env_file("BAD NAME=1", "f.env")


def test_defaults_cap_the_log() -> None:
    options = opts.ContainerOptions(image="busybox")
    assert options.log_max_size is None and opts.DEFAULT_LOG_MAX_SIZE > 0 and opts.DEFAULT_LOG_MAX_FILE >= 2
    assert options.no_new_privileges and not options.privileged
