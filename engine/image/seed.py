"""The seed image: busybox:latest built from the host's static busybox, with no network needed.

Writes a deterministic root filesystem tarball (fixed times, owners and order), so two fresh
engine roots on the same host produce the same layer and the same image ID.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from engine.errors import Unavailable

BUSYBOX = Path("/bin/busybox")

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
"""

GROUP = """root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
wheel:x:10:root
mail:x:12:
www-data:x:33:
operator:x:37:
users:x:100:
nogroup:x:65534:
"""

DIRECTORIES = {
    "bin": 0o755,
    "dev": 0o755,
    "etc": 0o755,
    "home": 0o755,
    "proc": 0o555,
    "root": 0o700,
    "sbin": 0o755,
    "sys": 0o555,
    "tmp": 0o1777,
    "usr": 0o755,
    "usr/bin": 0o755,
    "usr/sbin": 0o755,
    "var": 0o755,
    "var/spool": 0o755,
    "var/spool/mail": 0o755,
    "var/www": 0o755,
}

CONFIG = {
    "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    "Cmd": ["sh"],
}


def applets(busybox: Path = BUSYBOX) -> list[str]:
    """The applet paths the host's busybox provides, e.g. bin/sh, usr/bin/wget."""
    if not busybox.is_file():
        raise Unavailable(f"{busybox} not found", hint="install Debian's busybox-static (make setup)")
    out = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True, check=True).stdout
    return sorted(
        {line.strip() for line in out.splitlines() if line.strip() and line.strip() != "bin/busybox"}
    )


def build_time(busybox: Path = BUSYBOX) -> int:
    """The image's timestamp: the busybox binary's mtime, so the same binary always gives the same ID."""
    return int(busybox.stat().st_mtime)


def created(busybox: Path = BUSYBOX) -> str:
    return datetime.fromtimestamp(build_time(busybox), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_rootfs(out: BinaryIO, *, busybox: Path = BUSYBOX) -> None:
    """Write the busybox root filesystem as an uncompressed tar to `out`."""
    links = applets(busybox)
    mtime = build_time(busybox)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name, mode in sorted(DIRECTORIES.items()):
            tar.addfile(_info(name, tarfile.DIRTYPE, mode, mtime))
        binary = busybox.read_bytes()
        info = _info("bin/busybox", tarfile.REGTYPE, 0o755, mtime)
        info.size = len(binary)
        tar.addfile(info, io.BytesIO(binary))
        for name, text, mode in (("etc/passwd", PASSWD, 0o644), ("etc/group", GROUP, 0o644)):
            data = text.encode()
            info = _info(name, tarfile.REGTYPE, mode, mtime)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name in links:
            link = _info(name, tarfile.LNKTYPE, 0o755, mtime)
            link.linkname = "bin/busybox"
            tar.addfile(link)


def _info(name: str, kind: bytes, mode: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info
