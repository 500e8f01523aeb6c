"""Docker's create body → ContainerOptions (pure), and the container wire shapes beside it."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engine.api import containerformat as fmt
from engine.api.createspec import parse_create
from engine.errors import InvalidArgument
from engine.services.options import MountRequest, RestartPolicy

# What docker CLI 28 sends for `docker create busybox` (trimmed of fields it leaves empty anyway).
CLI_BODY: dict[str, Any] = {
    "Hostname": "",
    "Domainname": "",
    "User": "",
    "AttachStdin": False,
    "AttachStdout": True,
    "AttachStderr": True,
    "Tty": False,
    "OpenStdin": False,
    "StdinOnce": False,
    "Env": None,
    "Cmd": None,
    "Image": "busybox",
    "Volumes": {},
    "WorkingDir": "",
    "Entrypoint": None,
    "OnBuild": None,
    "Labels": {},
    "HostConfig": {
        "Binds": None,
        "ContainerIDFile": "",
        "LogConfig": {"Type": "", "Config": {}},
        "NetworkMode": "default",
        "PortBindings": {},
        "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "AutoRemove": False,
        "VolumeDriver": "",
        "VolumesFrom": None,
        "ConsoleSize": [0, 0],
        "CapAdd": None,
        "CapDrop": None,
        "CgroupnsMode": "",
        "Dns": [],
        "DnsOptions": [],
        "DnsSearch": [],
        "ExtraHosts": None,
        "GroupAdd": None,
        "IpcMode": "",
        "Cgroup": "",
        "Links": None,
        "OomScoreAdj": 0,
        "PidMode": "",
        "Privileged": False,
        "PublishAllPorts": False,
        "ReadonlyRootfs": False,
        "SecurityOpt": None,
        "UTSMode": "",
        "UsernsMode": "",
        "ShmSize": 0,
        "Isolation": "",
        "CpuShares": 0,
        "Memory": 0,
        "NanoCpus": 0,
        "CpuPeriod": 0,
        "CpuQuota": 0,
        "PidsLimit": None,
        "Devices": [],
        "Init": None,
        "MaskedPaths": None,
        "ReadonlyPaths": None,
    },
    "NetworkingConfig": {"EndpointsConfig": {"default": {}}},
}


def body(**changes: Any) -> dict[str, Any]:
    data = {**CLI_BODY, "HostConfig": dict(CLI_BODY["HostConfig"])}
    for key, value in changes.items():
        if key.startswith("HostConfig_"):
            data["HostConfig"][key.removeprefix("HostConfig_")] = value
        else:
            data[key] = value
    return data


def test_the_cli_default_body_gives_default_options() -> None:
    options = parse_create(CLI_BODY).options
    assert options.image == "busybox"
    assert options.command is None and options.entrypoint is None
    assert options.network == "bridge"
    assert options.restart == RestartPolicy("no", 0)
    assert options.pids_limit is None  # the engine's default limit applies
    assert options.no_new_privileges  # Berth's default stays on unless asked otherwise
    assert options.mounts == ()


def test_command_entrypoint_env_and_labels_are_carried() -> None:
    options = parse_create(
        body(
            Cmd=["sh", "-c", "echo hi"],
            Entrypoint="/bin/env",  # Docker's StrSlice: a lone string is one element
            Env=["A=1", "B=two"],
            Labels={"team": "x"},
            WorkingDir="/tmp",
            User="1000:1000",
            Hostname="box",
            Tty=True,
            OpenStdin=True,
            StopSignal="SIGINT",
            StopTimeout=3,
        ),
        name="web",
    ).options
    assert options.command == ("sh", "-c", "echo hi")
    assert options.entrypoint == ("/bin/env",)
    assert options.env == ("A=1", "B=two")
    assert options.labels == {"team": "x"}
    assert (options.workdir, options.user, options.hostname) == ("/tmp", "1000:1000", "box")
    assert options.tty and options.interactive
    assert (options.stop_signal, options.stop_timeout, options.name) == ("SIGINT", 3, "web")


def test_port_bindings_become_publish_specs() -> None:
    options = parse_create(
        body(
            ExposedPorts={"80/tcp": {}, "53/udp": {}},
            HostConfig_PortBindings={
                "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}, {"HostIp": "::", "HostPort": "8080"}],
                "53/udp": [{"HostIp": "", "HostPort": ""}],
                "443/tcp": [{"HostIp": "", "HostPort": "8443"}],
            },
            HostConfig_PublishAllPorts=True,
        )
    ).options
    # The IPv6 twin of a binding is dropped: Berth publishes on IPv4 only.
    assert set(options.publish) == {"127.0.0.1:8080:80/tcp", "53/udp", "8443:443/tcp"}
    assert set(options.expose) == {"80/tcp", "53/udp"}
    assert options.publish_all


def test_binds_mounts_tmpfs_and_anonymous_volumes() -> None:
    options = parse_create(
        body(
            Volumes={"/anon": {}, "/data": {}},
            HostConfig_Binds=["/srv:/srv:ro", "named:/data"],
            HostConfig_Mounts=[
                {
                    "Type": "tmpfs",
                    "Target": "/scratch",
                    "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 0o1777},
                },
                {"Type": "volume", "Source": "cache", "Target": "/cache", "ReadOnly": True},
            ],
            HostConfig_Tmpfs={"/run/x": "size=64m"},
        )
    ).options
    by_dest = {m.destination: m for m in options.mounts}
    assert by_dest["/srv"] == MountRequest("bind", "/srv", "/srv", True)
    assert by_dest["/data"].source == "named"  # a Bind wins over the same path in Volumes
    assert by_dest["/anon"] == MountRequest("volume", "/anon", "", False)
    assert by_dest["/scratch"].options == (("size", "1048576"), ("mode", "1777"))
    assert by_dest["/cache"] == MountRequest("volume", "/cache", "cache", True)
    assert by_dest["/run/x"].options == (("size", str(64 << 20)),)


def test_resources_restart_and_security() -> None:
    options = parse_create(
        body(
            HostConfig_Memory=64 << 20,
            HostConfig_MemorySwap=-1,
            HostConfig_NanoCpus=500_000_000,
            HostConfig_PidsLimit=-1,
            HostConfig_RestartPolicy={"Name": "on-failure", "MaximumRetryCount": 3},
            HostConfig_CapAdd=["NET_ADMIN"],
            HostConfig_CapDrop=["MKNOD"],
            HostConfig_ReadonlyRootfs=True,
            HostConfig_Init=True,
            HostConfig_SecurityOpt=["no-new-privileges:false", "seccomp=unconfined", "label=disable"],
            HostConfig_LogConfig={"Type": "json-file", "Config": {"max-size": "10m", "max-file": "2"}},
            HostConfig_ExtraHosts=["db:10.0.0.2", "gw=host-gateway"],
            HostConfig_Dns=["1.1.1.1"],
            HostConfig_DnsSearch=["example.org"],
        )
    ).options
    assert (options.memory, options.memory_swap, options.cpus) == (64 << 20, -1, 0.5)
    assert options.pids_limit == -1
    assert options.restart == RestartPolicy("on-failure", 3)
    assert options.cap_add == ("NET_ADMIN",) and options.cap_drop == ("MKNOD",)
    assert options.read_only and options.init
    assert not options.no_new_privileges and options.seccomp_unconfined
    assert (options.log_max_size, options.log_max_file) == (10 << 20, 2)
    assert options.add_hosts == ("db:10.0.0.2", "gw:host-gateway")
    assert options.dns == ("1.1.1.1",) and options.dns_search == ("example.org",)


def test_cpu_quota_over_period_gives_cpus() -> None:
    options = parse_create(body(HostConfig_CpuQuota=150_000, HostConfig_CpuPeriod=100_000)).options
    assert options.cpus == 1.5


def test_endpoint_settings_of_the_main_and_extra_networks() -> None:
    spec = parse_create(
        body(
            HostConfig_NetworkMode="app",
            NetworkingConfig={
                "EndpointsConfig": {
                    "app": {
                        "Aliases": ["web"],
                        "IPAMConfig": {"IPv4Address": "10.9.0.5"},
                        "MacAddress": "02:42:ac:11:00:09",
                    },
                    "other": {"Aliases": ["w2"]},
                }
            },
        )
    )
    options = spec.options
    assert (options.network, options.ip, options.mac_address) == ("app", "10.9.0.5", "02:42:ac:11:00:09")
    assert options.network_aliases == ("web",)
    assert [(n.name, n.aliases) for n in spec.extra_networks] == [("other", ("w2",))]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"Cmd": 5}, "Cmd"),
        ({"Env": "A=1"}, "Env"),
        ({"Labels": {"a": 1}}, "Labels.a"),
        ({"Tty": "yes"}, "Tty"),
        ({"HostConfig_Memory": "x"}, "HostConfig.Memory"),
        ({"HostConfig_PortBindings": {"80/tcp": "8080"}}, "HostConfig.PortBindings.80/tcp"),
        ({"HostConfig_RestartPolicy": {"Name": 3}}, "HostConfig.RestartPolicy.Name"),
        ({"HostConfig": []}, "HostConfig"),
        ({"HostConfig_Mounts": [{"Type": "bind", "Target": 7}]}, "HostConfig.Mounts[0].Target"),
    ],
)
def test_a_wrong_type_names_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_create(body(**changes))
    assert f"invalid value for {field}:" in str(caught.value)


@pytest.mark.parametrize(
    "changes",
    [
        {"Image": ""},
        {"HostConfig_Devices": [{"PathOnHost": "/dev/kmsg"}]},
        {"HostConfig_PidMode": "host"},
        {"HostConfig_VolumesFrom": ["other"]},
        {"HostConfig_SecurityOpt": ["apparmor=docker-default"]},
        {"HostConfig_LogConfig": {"Type": "syslog", "Config": {}}},
        {"HostConfig_RestartPolicy": {"Name": "sometimes"}},
        {"HostConfig_RestartPolicy": {"Name": "always", "MaximumRetryCount": 2}},
        {"HostConfig_NanoCpus": 1, "HostConfig_CpuQuota": 1},
        {"HostConfig_Mounts": [{"Type": "npipe", "Target": "/x"}]},
        {"Env": ["=nokey"]},
        {"HostConfig_NetworkMode": "host", "NetworkingConfig": {"EndpointsConfig": {"app": {}}}},
    ],
)
def test_what_the_engine_cannot_honour_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument):
        parse_create(body(**changes))


# -- wire shapes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.4, "Less than a second"),
        (1, "1 second"),
        (59, "59 seconds"),
        (60, "About a minute"),
        (60 * 5, "5 minutes"),
        (3600, "About an hour"),
        (3600 * 5, "5 hours"),
        (86400 * 3, "3 days"),
        (86400 * 21, "3 weeks"),
        (86400 * 90, "3 months"),
        (86400 * 800, "2 years"),
    ],
)
def test_human_duration_matches_go_units(seconds: float, text: str) -> None:
    assert fmt.human_duration(seconds) == text


def test_status_text_reads_like_docker() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    ago = now - timedelta(seconds=3)
    assert fmt.status_text("created", started_at=None, finished_at=None, exit_code=0, now=now) == "Created"
    assert (
        fmt.status_text("running", started_at=ago, finished_at=None, exit_code=0, now=now) == "Up 3 seconds"
    )
    assert (
        fmt.status_text("paused", started_at=ago, finished_at=None, exit_code=0, now=now)
        == "Up 3 seconds (Paused)"
    )
    assert (
        fmt.status_text("exited", started_at=ago, finished_at=ago, exit_code=2, now=now)
        == "Exited (2) 3 seconds ago"
    )


def test_frame_header_is_stream_three_zeros_and_big_endian_length() -> None:
    data = fmt.frame(fmt.STDERR, b"oops\n")
    assert data[:4] == b"\x02\x00\x00\x00"
    assert struct.unpack(">I", data[4:8])[0] == 5 and data[8:] == b"oops\n"


def test_unix_timestamps_as_the_cli_sends_them() -> None:
    assert fmt.parse_unix_timestamp("0", "since") is None
    when = fmt.parse_unix_timestamp("1700000000.123456789", "since")
    assert when == datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)
    with pytest.raises(InvalidArgument):
        fmt.parse_unix_timestamp("yesterday", "since")


def test_rfc3339_nano_has_nine_digits() -> None:
    assert fmt.rfc3339_nano(datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)) == "2026-01-02T03:04:05.000006000Z"


def test_prune_until_takes_durations_timestamps_and_rfc3339() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert fmt.parse_until("1h30m", now=now) == now - timedelta(minutes=90)
    assert fmt.parse_until("1700000000", now=now) == datetime.fromtimestamp(1700000000, UTC)
    assert fmt.parse_until("2025-12-31T00:00:00Z", now=now) == datetime(2025, 12, 31, tzinfo=UTC)
    with pytest.raises(InvalidArgument):
        fmt.parse_until("soon", now=now)


def test_stats_object_carries_previous_cpu_for_the_cli_percentage() -> None:
    common: dict[str, Any] = dict(
        container_id="c" * 64,
        name="web",
        online_cpus=2,
        memory_usage=10,
        memory_limit=100,
        pids=1,
        block_read=0,
        block_write=0,
        networks={"eth0": (1, 2)},
    )
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    first = fmt.stats_object(read=t0, cpu_ns=1_000, system_ns=10_000, previous=None, **common)
    second = fmt.stats_object(
        read=t0 + timedelta(seconds=1), cpu_ns=2_000, system_ns=20_000, previous=first, **common
    )
    assert second["name"] == "/web"  # the CLI trims the slash; Docker sends it
    assert second["precpu_stats"]["cpu_usage"]["total_usage"] == 1_000
    assert second["precpu_stats"]["system_cpu_usage"] == 10_000
    assert second["preread"] == first["read"]
    # docker/cli's calculateCPUPercentUnix: (Δcpu / Δsystem) × online CPUs × 100
    cpu = second["cpu_stats"]
    delta = cpu["cpu_usage"]["total_usage"] - second["precpu_stats"]["cpu_usage"]["total_usage"]
    system = cpu["system_cpu_usage"] - second["precpu_stats"]["system_cpu_usage"]
    assert delta / system * cpu["online_cpus"] * 100 == 20.0
    assert second["networks"]["eth0"]["rx_bytes"] == 1
