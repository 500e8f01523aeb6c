"""Which known runc vulnerabilities a runc binary still has: upstream version plus distribution backports.

A CVE counts as fixed when the upstream version is at least the first fixed release of its line (or
of a later line), or when the distribution's changelog for exactly this build names it: Debian's
1.1.5+ds1-1+deb12u1 is 1.1.5 upstream but carries the CVE-2024-21626 fix. Pure except for
`read_changelog`, which reads the packaged changelog file.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from pathlib import Path

Version = tuple[int, int, int, int]  # major, minor, patch, rc (FINAL for a release)
FINAL = 1_000_000

DEBIAN_CHANGELOG = Path("/usr/share/doc/runc/changelog.Debian.gz")
_CVE = re.compile(r"\bCVE-\d{4}-\d{4,}\b")
_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)(?:-rc\.?(\d+))?")
_ENTRY = re.compile(r"^(\S+) \(([^)\s]+)\) [^;]*;", re.MULTILINE)
_MAX_CHANGELOG = 4 * 1024 * 1024


@dataclass(frozen=True)
class Fix:
    cve: str
    fixed_in: tuple[Version, ...]  # the first fixed release of each line that got the fix
    what: str


def _v(text: str) -> Version:
    m = _VERSION.fullmatch(text)
    assert m, text
    return int(m[1]), int(m[2]), int(m[3]), int(m[4]) if m[4] else FINAL


_BREAKOUT_2025 = (_v("1.2.8"), _v("1.3.3"), _v("1.4.0-rc.3"))
KNOWN: tuple[Fix, ...] = (
    Fix("CVE-2019-5736", (_v("1.0.0-rc7"),), "host runc binary overwrite"),
    Fix("CVE-2019-16884", (_v("1.0.0-rc9"),), "AppArmor bypass"),
    Fix("CVE-2019-19921", (_v("1.0.0-rc10"),), "mount race via symlinked volumes"),
    Fix("CVE-2021-30465", (_v("1.0.0-rc95"),), "mount symlink-exchange breakout"),
    Fix("CVE-2021-43784", (_v("1.0.3"),), "netlink bytemsg overflow"),
    Fix("CVE-2022-29162", (_v("1.1.2"),), "inheritable capabilities"),
    Fix("CVE-2023-25809", (_v("1.1.5"),), "writable /sys/fs/cgroup (rootless)"),
    Fix("CVE-2023-27561", (_v("1.1.5"),), "mount race via symlinked volumes (again)"),
    Fix("CVE-2023-28642", (_v("1.1.5"),), "AppArmor/SELinux bypass via symlinked /proc"),
    Fix("CVE-2024-21626", (_v("1.1.12"),), "leaked fd breakout"),
    Fix("CVE-2024-45310", (_v("1.1.14"), _v("1.2.0-rc.3")), "empty files created on the host"),
    Fix("CVE-2025-31133", _BREAKOUT_2025, "masked-path breakout"),
    Fix("CVE-2025-52565", _BREAKOUT_2025, "/dev/console mount breakout"),
    Fix("CVE-2025-52881", _BREAKOUT_2025, "redirected /proc writes"),
)


def parse_version(text: str) -> Version | None:
    """The first version number in `text` (`runc --version` output or a bare version)."""
    m = _VERSION.search(text)
    if not m:
        return None
    return int(m[1]), int(m[2]), int(m[3]), int(m[4]) if m[4] else FINAL


def fixed_upstream(version: Version, fix: Fix) -> bool:
    """True if `version` has the fix: a fixed release of its own line, or a line newer than all of them."""
    line = version[:2]
    if any(line == f[:2] and version >= f for f in fix.fixed_in):
        return True
    return line > max(f[:2] for f in fix.fixed_in)


def backported(changelog: str, version_output: str) -> frozenset[str]:
    """The CVEs a distribution changelog names, if its newest entry is this very build.

    The build is matched by the changelog's newest version appearing in `runc --version` (Debian's
    runc prints it as its commit); a changelog of another build says nothing about this binary.
    """
    entry = _ENTRY.search(changelog)
    if entry is None or entry[1] != "runc" or entry[2] not in version_output:
        return frozenset()
    return frozenset(_CVE.findall(changelog))


def missing(version: Version, backports: frozenset[str] = frozenset()) -> list[Fix]:
    """The known fixes this runc lacks."""
    return [f for f in KNOWN if f.cve not in backports and not fixed_upstream(version, f)]


def show(version: Version) -> str:
    major, minor, patch, rc = version
    return f"{major}.{minor}.{patch}" + ("" if rc >= FINAL else f"-rc.{rc}")


def warning(version_output: str | None, changelog: str = "") -> str | None:
    """A loud warning naming exactly the fixes this runc lacks, or None when it has them all."""
    version = parse_version(version_output or "")
    if version is None:
        return "WARNING: cannot tell the runc version; it may lack fixes for known container breakouts"
    backports = backported(changelog, version_output or "")
    lacking = missing(version, backports)
    if not lacking:
        return None
    listed = "; ".join(
        f"{f.cve} {f.what} (fixed in {', '.join(show(v) for v in f.fixed_in)})" for f in lacking
    )
    source = " or the distribution's changelog" if changelog else ""
    return (
        f"WARNING: runc {show(version)} lacks fixes for known vulnerabilities, by its version{source}: "
        f"{listed}. Untrusted images may escape to the host; upgrade runc."
    )


def read_changelog(path: Path = DEBIAN_CHANGELOG) -> str:
    """The packaged runc changelog, or "" when there is none (not a Debian package)."""
    try:
        with gzip.open(path, "rb") as f:
            return f.read(_MAX_CHANGELOG).decode(errors="replace")
    except (OSError, EOFError, gzip.BadGzipFile):
        return ""
