from __future__ import annotations

import pytest

from engine.errors import InvalidArgument
from engine.runtime import seccomp
from engine.runtime.spec import DEFAULT_CAPS


def rules_for(oci, name):
    return [r for r in oci["syscalls"] if name in r["names"]]


def resolved(caps=DEFAULT_CAPS, **kw):
    return seccomp.resolve(seccomp.default_profile(), caps, machine="x86_64", **kw)


def test_default_profile_returns_enosys_for_unknown_syscalls():
    oci = resolved()
    assert oci["defaultAction"] == "SCMP_ACT_ERRNO" and oci["defaultErrnoRet"] == 38


@pytest.mark.parametrize(
    "name",
    [
        "keyctl",
        "add_key",
        "kexec_load",
        "userfaultfd",
        "io_uring_setup",
        "pivot_root",
        "swapon",
        "move_pages",
    ],
)
def test_never_allowed_syscalls_return_eperm(name):
    rules = rules_for(resolved(), name)
    assert rules and all(r["action"] == "SCMP_ACT_ERRNO" and r["errnoRet"] == 1 for r in rules)


@pytest.mark.parametrize("name", ["mount", "unshare", "setns", "bpf", "sethostname", "umount2"])
def test_sys_admin_syscalls_are_refused_by_default_and_allowed_with_the_cap(name):
    assert all(r["action"] == "SCMP_ACT_ERRNO" for r in rules_for(resolved(), name))
    assert any(
        r["action"] == "SCMP_ACT_ALLOW" for r in rules_for(resolved([*DEFAULT_CAPS, "CAP_SYS_ADMIN"]), name)
    )


def test_clone_is_allowed_only_without_namespace_flags():
    allow = [r for r in rules_for(resolved(), "clone") if r["action"] == "SCMP_ACT_ALLOW"]
    assert allow == [
        {
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
        }
    ]


def test_clone3_gets_enosys_so_libc_falls_back():
    (rule,) = rules_for(resolved(), "clone3")
    assert rule["action"] == "SCMP_ACT_ERRNO" and rule["errnoRet"] == 38


def test_socket_excludes_af_alg_and_af_vsock():
    allowed = set()
    for r in rules_for(resolved(), "socket"):
        (arg,) = r["args"]
        for family in range(0, 50):
            op, v = arg["op"], arg["value"]
            if (
                (op == "SCMP_CMP_LT" and family < v)
                or (op == "SCMP_CMP_EQ" and family == v)
                or (op == "SCMP_CMP_GT" and family > v)
            ):
                allowed.add(family)
    assert 38 not in allowed and 40 not in allowed
    assert {1, 2, 10, 16, 39, 41} <= allowed


def test_only_the_native_architecture_unless_compat_is_asked():
    assert resolved()["architectures"] == ["SCMP_ARCH_X86_64"]
    assert resolved(compat_arches=True)["architectures"] == [
        "SCMP_ARCH_X86_64",
        "SCMP_ARCH_X86",
        "SCMP_ARCH_X32",
    ]


def test_includes_need_all_caps_and_excludes_skip_on_any():
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["a"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_X", "CAP_Y"]}},
            {"names": ["b"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_X", "CAP_Z"]}},
            {"names": ["c"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
        ],
    }
    names = [r["names"][0] for r in seccomp.resolve(profile, ["CAP_X"], machine="x86_64")["syscalls"]]
    assert names == []
    names = [
        r["names"][0] for r in seccomp.resolve(profile, ["CAP_X", "CAP_Y"], machine="aarch64")["syscalls"]
    ]
    assert names == ["a", "c"]


def test_malformed_profile_is_refused():
    with pytest.raises(InvalidArgument):
        seccomp.check_profile(
            {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "NOPE"}]}
        )


def test_load_profile_refuses_a_non_json_file(tmp_path):
    bad = tmp_path / "p.json"
    bad.write_text("{")
    with pytest.raises(InvalidArgument):
        seccomp.load_profile(bad)


def test_default_profile_is_a_fresh_copy():
    seccomp.default_profile()["syscalls"].clear()
    assert seccomp.default_profile()["syscalls"]
