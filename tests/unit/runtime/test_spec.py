from __future__ import annotations

import pytest

from engine.errors import InvalidArgument
from engine.runtime import seccomp, spec
from engine.runtime.spec import MountSpec, SpecInput

PODMAN_11 = {
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
}


def build(**kw):
    kw.setdefault("args", ["sh"])
    kw.setdefault("rootfs", "/r")
    profile = kw.pop("_seccomp", None)
    return spec.build_spec(SpecInput(**kw), seccomp=profile)


def test_default_caps_are_podmans_eleven_in_bounding_permitted_effective():
    caps = build()["process"]["capabilities"]
    for key in ("bounding", "permitted", "effective"):
        assert set(caps[key]) == PODMAN_11
    # Inheritable and ambient stay empty (CVE-2022-24769).
    assert caps["inheritable"] == [] and caps["ambient"] == []


def test_cap_add_accepts_both_spellings():
    assert "CAP_NET_RAW" in build(cap_add=["NET_RAW"])["process"]["capabilities"]["bounding"]
    assert "CAP_NET_RAW" in build(cap_add=["cap_net_raw"])["process"]["capabilities"]["bounding"]


def test_cap_drop_all_then_add_leaves_only_the_added_one():
    assert spec.effective_caps(["KILL"], ["ALL"]) == ["CAP_KILL"]


def test_cap_add_all_gives_every_capability_minus_drops():
    caps = spec.effective_caps(["ALL"], ["SYS_ADMIN"])
    assert "CAP_SYS_ADMIN" not in caps and "CAP_SYS_MODULE" in caps and len(caps) == len(spec.ALL_CAPS) - 1


def test_unknown_capability_is_refused():
    with pytest.raises(InvalidArgument):
        spec.effective_caps(["CAP_BOGUS"])


def test_masked_and_readonly_paths_are_the_union_of_both_engines():
    linux = build()["linux"]
    for path in (
        "/proc/kcore",
        "/proc/keys",
        "/proc/asound",
        "/sys/firmware",
        "/sys/fs/selinux",
        "/sys/devices/virtual/powercap",
        "/proc/interrupts",
    ):
        assert path in linux["maskedPaths"]
    assert set(linux["readonlyPaths"]) == {
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
    }


def test_privileged_drops_masks_readonly_paths_and_seccomp_and_gets_all_caps():
    s = build(privileged=True, _seccomp=seccomp.default_profile())
    assert s["linux"]["maskedPaths"] == [] and s["linux"]["readonlyPaths"] == []
    assert "seccomp" not in s["linux"]
    assert s["process"]["capabilities"]["bounding"] == spec.ALL_CAPS


def test_seccomp_is_resolved_for_the_containers_caps():
    s = build(_seccomp=seccomp.default_profile())
    names = {
        n for r in s["linux"]["seccomp"]["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" for n in r["names"]
    }
    assert "read" in names and "mount" not in names


def test_private_netns_gets_ping_group_range_and_host_netns_does_not():
    assert build()["linux"]["sysctl"]["net.ipv4.ping_group_range"] == "0 2147483647"
    s = build(netns_path="host")
    assert "net.ipv4.ping_group_range" not in s["linux"]["sysctl"]
    assert all(ns["type"] != "network" for ns in s["linux"]["namespaces"])


def test_netns_path_is_joined():
    s = build(netns_path="/run/berth/netns/abc")
    assert {"type": "network", "path": "/run/berth/netns/abc"} in s["linux"]["namespaces"]


def test_cgroup_namespace_only_on_cgroup_v2():
    assert all(ns["type"] != "cgroup" for ns in build()["linux"]["namespaces"])
    assert {"type": "cgroup"} in build(cgroup_v2=True)["linux"]["namespaces"]


def test_default_mounts_match_moby():
    mounts = {m["destination"]: m for m in build()["mounts"]}
    assert set(mounts) >= {"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"}
    assert "ro" in mounts["/sys"]["options"] and "ro" in mounts["/sys/fs/cgroup"]["options"]
    assert "size=65536k" in mounts["/dev/shm"]["options"]


def test_device_cgroup_denies_all_then_allows_the_default_set():
    devices = build()["linux"]["resources"]["devices"]
    assert devices[0] == {"allow": False, "access": "rwm"}
    allowed = {(d["major"], d["minor"]) for d in devices if d["allow"]}
    assert allowed == {(1, 5), (1, 3), (1, 9), (1, 8), (5, 0), (5, 1)}
    assert {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"} in devices


def test_resources_and_nnp_defaults():
    s = build(memory_bytes=64 << 20, memory_swap=64 << 20, cpu_quota=50000, cpu_period=100000)
    res = s["linux"]["resources"]
    assert res["memory"] == {"limit": 64 << 20, "swap": 64 << 20}
    assert res["cpu"] == {"quota": 50000, "period": 100000}
    assert res["pids"] == {"limit": 2048}
    assert s["process"]["noNewPrivileges"] is True


def test_default_nofile_never_exceeds_the_engines_hard_limit():
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    (nofile,) = build()["process"]["rlimits"]
    assert nofile["type"] == "RLIMIT_NOFILE" and nofile["hard"] <= min(hard, 1048576)


@pytest.mark.parametrize(
    "dest", ["relative", "/a/../b", "/a/./b", "/a/", "//a", "/proc", "/proc/sys", "/sys/x", "/dev/sda", "/"]
)
def test_validate_destination_refuses_unsafe_paths(dest):
    with pytest.raises(InvalidArgument):
        spec.validate_destination(dest)


def test_validate_destination_accepts_clean_paths():
    assert spec.validate_destination("/data/db") == "/data/db"
    assert spec.validate_destination("/procfs") == "/procfs"  # only the /proc tree itself is refused


def test_workdir_under_proc_is_refused():
    # CVE-2024-21626 used a cwd of /proc/self/fd/N.
    with pytest.raises(InvalidArgument):
        build(cwd="/proc/self/fd/7")


def test_mount_option_injection_is_refused():
    with pytest.raises(InvalidArgument):
        build(mounts=[MountSpec("/data", "bind", "/srv/data", ("ro,dev",))])
    with pytest.raises(InvalidArgument):
        build(mounts=[MountSpec("/data", "bind", "/srv/data", ("suid",))])


def test_bind_mount_gets_rbind_and_rprivate():
    s = build(mounts=[MountSpec("/data", "bind", "/srv/data", ("ro",))])
    m = s["mounts"][-1]
    assert m["options"] == ["rbind", "ro", "rprivate"]


def test_tmpfs_mount_is_nosuid_nodev():
    s = build(mounts=[MountSpec("/scratch", "tmpfs", "", ("size=10m",))])
    assert s["mounts"][-1]["options"] == ["size=10m", "nosuid", "nodev"]


def test_etc_files_are_bind_mounted_from_the_engine_dir():
    s = build(
        hosts_path="/run/b/c/hosts",
        resolv_conf_path="/run/b/c/resolv.conf",
        hostname_path="/run/b/c/hostname",
    )
    dests = {m["destination"]: m["source"] for m in s["mounts"]}
    assert dests["/etc/hosts"] == "/run/b/c/hosts" and dests["/etc/resolv.conf"] == "/run/b/c/resolv.conf"


def test_non_namespaced_sysctl_is_refused():
    with pytest.raises(InvalidArgument):
        build(sysctls={"kernel.panic": "1"})
    assert build(sysctls={"net.ipv4.ip_forward": "1"})["linux"]["sysctl"]["net.ipv4.ip_forward"] == "1"


def test_negative_oom_score_adj_is_refused():
    with pytest.raises(InvalidArgument):
        build(oom_score_adj=-500)


def test_path_is_added_when_missing_and_term_with_a_terminal():
    env = build(env=["A=1"], terminal=True)["process"]["env"]
    assert env[0].startswith("PATH=") and "TERM=xterm" in env and "A=1" in env


def test_thermal_throttle_paths_maps_to_container_paths(tmp_path):
    (tmp_path / "devices/system/cpu/cpu0/thermal_throttle").mkdir(parents=True)
    (tmp_path / "devices/system/cpu/cpu1").mkdir(parents=True)
    assert spec.thermal_throttle_paths(str(tmp_path)) == ["/sys/devices/system/cpu/cpu0/thermal_throttle"]


def test_privileged_gets_only_the_engines_own_bounding_set() -> None:
    from engine.runtime.spec import bounding_caps_from_status, effective_caps

    bounding = bounding_caps_from_status("Name:\tx\nCapBnd:\t000001fffeffffff\n")  # no CAP_SYS_RESOURCE
    caps = effective_caps(privileged=True, bounding=bounding)
    assert "CAP_SYS_RESOURCE" not in caps and "CAP_SYS_ADMIN" in caps


def test_adding_a_capability_the_engine_lacks_is_refused_by_name() -> None:
    import pytest

    from engine.errors import InvalidArgument
    from engine.runtime.spec import bounding_caps_from_status, effective_caps

    bounding = bounding_caps_from_status("CapBnd:\t000001fffeffffff\n")
    with pytest.raises(InvalidArgument, match="CAP_SYS_RESOURCE"):
        effective_caps(cap_add=["SYS_RESOURCE"], bounding=bounding)
