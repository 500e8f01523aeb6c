"""Build tar archives in memory for layer tests, including hostile ones tarfile would never write from disk."""

from __future__ import annotations

import io
import os
import tarfile

import pytest


class TarBuilder:
    """Collect entries, then ``bytes()`` gives a PAX tar with them in the order added."""

    def __init__(self) -> None:
        self._buffer = io.BytesIO()
        self._tar = tarfile.open(fileobj=self._buffer, mode="w", format=tarfile.PAX_FORMAT)

    def _add(self, info: tarfile.TarInfo, data: bytes | None = None) -> TarBuilder:
        info.mtime = info.mtime or 1_600_000_000
        self._tar.addfile(info, io.BytesIO(data) if data is not None else None)
        return self

    def file(
        self,
        name: str,
        data: bytes = b"",
        *,
        mode: int = 0o644,
        uid: int = 0,
        gid: int = 0,
        mtime: int = 1_600_000_000,
        xattrs: dict[str, bytes] | None = None,
    ) -> TarBuilder:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.uid, info.gid, info.mtime = len(data), mode, uid, gid, mtime
        if xattrs:
            info.pax_headers = {
                f"SCHILY.xattr.{key}": value.decode("utf-8", "surrogateescape")
                for key, value in xattrs.items()
            }
        return self._add(info, data)

    def dir(
        self,
        name: str,
        *,
        mode: int = 0o755,
        uid: int = 0,
        gid: int = 0,
        mtime: int = 1_600_000_000,
        xattrs: dict[str, bytes] | None = None,
    ) -> TarBuilder:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.uid, info.gid, info.mtime = tarfile.DIRTYPE, mode, uid, gid, mtime
        if xattrs:
            info.pax_headers = {
                f"SCHILY.xattr.{key}": value.decode("utf-8", "surrogateescape")
                for key, value in xattrs.items()
            }
        return self._add(info)

    def symlink(
        self, name: str, target: str, *, uid: int = 0, gid: int = 0, mtime: int = 1_600_000_000
    ) -> TarBuilder:
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.uid, info.gid, info.mtime = tarfile.SYMTYPE, target, uid, gid, mtime
        info.mode = 0o777
        return self._add(info)

    def hardlink(self, name: str, target: str) -> TarBuilder:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = tarfile.LNKTYPE, target
        return self._add(info)

    def device(
        self, name: str, *, kind: bytes = tarfile.CHRTYPE, major: int = 1, minor: int = 3
    ) -> TarBuilder:
        info = tarfile.TarInfo(name)
        info.type, info.devmajor, info.devminor, info.mode = kind, major, minor, 0o666
        return self._add(info)

    def fifo(self, name: str, *, mode: int = 0o640) -> TarBuilder:
        info = tarfile.TarInfo(name)
        info.type, info.mode = tarfile.FIFOTYPE, mode
        return self._add(info)

    def raw_type(self, name: str, kind: bytes, data: bytes = b"") -> TarBuilder:
        info = tarfile.TarInfo(name)
        info.type, info.size = kind, len(data)
        return self._add(info, data)

    def bytes(self) -> bytes:
        self._tar.close()
        return self._buffer.getvalue()


def require_root(why: str) -> None:
    """Skip loudly without root on a laptop; fail under CI, where a skip would hide a broken suite."""
    if os.geteuid() == 0:
        return
    message = f"NEEDS ROOT — not tested: {why}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
