"""Issue 10, finding 10: the runc warning names exactly the fixes this build lacks."""

from __future__ import annotations

from engine.runtime import runc, runcfixes

DEBIAN_OUTPUT = "runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\nspec: 1.0.2-dev\ngo: go1.19.8\n"
DEBIAN_CHANGELOG = """runc (1.1.5+ds1-1+deb12u1) bookworm-security; urgency=high

  * Team upload.
  * CVE-2024-21626: several container breakouts due to internally leaked fds

 -- Shengjing Zhu <zhsj@debian.org>  Fri, 02 Feb 2024 21:53:05 +0800

runc (1.1.5+ds1-1) unstable; urgency=medium

  * New upstream version 1.1.5+ds1
    + CVE-2023-25809: rootless: `/sys/fs/cgroup` is writable when cgroupns
    + CVE-2023-27561: Incorrect Authorization vulnerability
      (re-introduced CVE-2019-19921) (Closes: #1033520)
"""


def _cves(warning: str | None) -> set[str]:
    return set(runcfixes._CVE.findall(warning or ""))


def test_a_debian_backport_counts_as_fixed() -> None:
    warning = runc.check_version(DEBIAN_OUTPUT, DEBIAN_CHANGELOG)
    assert "CVE-2024-21626" not in _cves(warning)
    # What Debian did not backport is still named, each CVE once.
    assert _cves(warning) == {"CVE-2024-45310", "CVE-2025-31133", "CVE-2025-52565", "CVE-2025-52881"}


def test_without_the_changelog_the_upstream_version_decides() -> None:
    assert "CVE-2024-21626" in _cves(runc.check_version(DEBIAN_OUTPUT))


def test_a_changelog_of_another_build_is_ignored() -> None:
    # A self-built 1.1.5 beside the Debian package must not borrow the package's backports.
    assert "CVE-2024-21626" in _cves(
        runc.check_version("runc version 1.1.5\ncommit: v1.1.5-0\n", DEBIAN_CHANGELOG)
    )


def test_a_changelog_of_another_package_is_ignored() -> None:
    other = DEBIAN_CHANGELOG.replace("runc (", "crun (")
    assert "CVE-2024-21626" in _cves(runc.check_version(DEBIAN_OUTPUT, other))


def test_each_fix_counts_per_release_line() -> None:
    assert _cves(runc.check_version("1.1.14")) == {"CVE-2025-31133", "CVE-2025-52565", "CVE-2025-52881"}
    assert "CVE-2024-45310" in _cves(runc.check_version("1.1.13"))
    assert "CVE-2024-45310" not in _cves(runc.check_version("1.2.0"))
    assert runc.check_version("1.2.8") is None
    assert runc.check_version("1.3.2") is not None
    assert runc.check_version("1.3.3") is None
    assert runc.check_version("1.4.0-rc.2") is not None
    assert runc.check_version("1.4.0-rc.3") is None
    assert "CVE-2019-5736" in _cves(runc.check_version("1.0.0-rc6"))
    assert "CVE-2019-5736" not in _cves(runc.check_version("1.0.0-rc7"))


def test_an_unknown_version_is_warned_about() -> None:
    assert "cannot tell" in (runc.check_version("") or "")
