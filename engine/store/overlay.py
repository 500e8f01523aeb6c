"""Mount and unmount overlayfs root filesystems (mechanism only: paths in, no policy).

``mount(2)`` is called through ctypes: it costs microseconds where ``/bin/mount`` costs
milliseconds. The legacy mount API copies the option string into one page, so a long stack of
layers does not fit with absolute paths (Docker hits the same limit and mounts with short
relative names). When the absolute form is longer than a page, we make a private directory of
short symlinks (``0``, ``1``, … → each lower), and mount from a helper thread that has its own
working directory (``unshare(CLONE_FS)`` + ``chdir``) so the lowerdir list is ``0:1:2:…``;
overlayfs resolves the links at mount time, so the directory is removed straight after. This
keeps overlayfs's own limit (500 lowers) as the only limit and never changes the process cwd.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import shutil
import tempfile
import threading
from pathlib import Path

from engine.errors import InvalidArgument, RuntimeFailure, Unavailable

MAX_LOWERS = 500  # OVL_MAX_STACK in the kernel
_CLONE_FS = 0x00000200
_MNT_DETACH = 0x2
_UMOUNT_NOFOLLOW = 0x8
# Characters that the overlayfs option parser treats specially; our store never makes them.
_FORBIDDEN = (",", ":", "\\", "\n")


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    libc.unshare.argtypes = [ctypes.c_int]
    return libc


def _check_path(path: Path, role: str) -> str:
    text = os.fspath(path)
    if not os.path.isabs(text) or any(char in text for char in _FORBIDDEN):
        raise InvalidArgument(f"overlay {role} path must be absolute and free of , : \\ — got {text!r}")
    return text


def build_options(lowers: list[str], *, upper: str, work: str) -> str:
    """Return the overlayfs option string (``lowers`` top-most first, already checked)."""
    return f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}"


def option_limit() -> int:
    """Return the longest option string the legacy mount API accepts (one page minus the NUL)."""
    return os.sysconf("SC_PAGESIZE") - 1


def mount_overlay(lowers: list[Path], *, upper: Path, work: Path, target: Path) -> None:
    """Mount an overlay of ``lowers`` (top-most first) with ``upper``/``work`` at ``target``.

    Raise ``InvalidArgument`` for no lowers, more than 500, or unusable path characters;
    ``Unavailable`` when the kernel has no overlayfs; ``RuntimeFailure`` for other mount errors
    (overlayfs explains EINVAL only in the kernel log).
    """
    if not lowers:
        raise InvalidArgument("an overlay needs at least one lower layer")
    if len(lowers) > MAX_LOWERS:
        raise InvalidArgument(
            f"too many layers for overlayfs: {len(lowers)} (the kernel allows {MAX_LOWERS})"
        )
    lower_paths = [_check_path(path, "lower") for path in lowers]
    upper_path = _check_path(upper, "upper")
    work_path = _check_path(work, "work")
    target_path = _check_path(target, "target")
    options = build_options(lower_paths, upper=upper_path, work=work_path)
    if len(options) <= option_limit():
        _mount(target_path, options)
        return
    _mount_via_short_links(lower_paths, upper=upper_path, work=work_path, target=target_path)


def _mount(target: str, options: str) -> None:
    result = _libc().mount(b"overlay", os.fsencode(target), b"overlay", 0, options.encode())
    if result != 0:
        code = ctypes.get_errno()
        if code == errno.ENODEV:
            raise Unavailable("overlayfs is not available in this kernel", hint="modprobe overlay")
        raise RuntimeFailure(
            f"cannot mount overlay on {target}: {os.strerror(code)}",
            hint="the kernel log (dmesg) says why" if code == errno.EINVAL else None,
        )


def _mount_via_short_links(lowers: list[str], *, upper: str, work: str, target: str) -> None:
    links = tempfile.mkdtemp(prefix=".ovl-", dir=os.path.dirname(work))
    try:
        for index, lower in enumerate(lowers):
            os.symlink(lower, os.path.join(links, str(index)))
        options = build_options([str(i) for i in range(len(lowers))], upper=upper, work=work)
        if len(options) > option_limit():
            raise InvalidArgument(f"overlay options too long even with short names ({len(lowers)} layers)")
        failure: list[BaseException] = []

        def run() -> None:
            # The thread gets its own fs_struct, so this chdir cannot move any other thread.
            try:
                if _libc().unshare(_CLONE_FS) != 0:
                    code = ctypes.get_errno()
                    raise RuntimeFailure(f"cannot mount overlay on {target}: unshare: {os.strerror(code)}")
                os.chdir(links)
                _mount(target, options)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
                failure.append(exc)

        helper = threading.Thread(target=run, name="overlay-mount")
        helper.start()
        helper.join()
        if failure:
            raise failure[0]
    finally:
        shutil.rmtree(links, ignore_errors=True)


def unmount(target: Path) -> None:
    """Unmount ``target``; not mounted or missing is fine; a busy mount is detached lazily."""
    path = os.fsencode(os.fspath(target))
    libc = _libc()
    if libc.umount2(path, _UMOUNT_NOFOLLOW) == 0:
        return
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOENT):
        return
    if code == errno.EBUSY and libc.umount2(path, _UMOUNT_NOFOLLOW | _MNT_DETACH) == 0:
        return
    code = ctypes.get_errno() if code == errno.EBUSY else code
    raise RuntimeFailure(f"cannot unmount {target}: {os.strerror(code)}")


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    if "\\" not in field:
        return field
    out = bytearray()
    raw = field.encode("utf-8", "surrogateescape")
    index = 0
    while index < len(raw):
        digits = raw[index + 1 : index + 4]
        if raw[index] == 0x5C and len(digits) == 3 and digits.isdigit():
            out.append(int(digits, 8) & 0xFF)
            index += 4
        else:
            out.append(raw[index])
            index += 1
    return out.decode("utf-8", "surrogateescape")


def mount_points() -> list[str]:
    """Return the mount points of this process's mount namespace (from /proc/self/mountinfo)."""
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as handle:
        return [_unescape(line.split(" ", 5)[4]) for line in handle if line.strip()]


def is_mounted(target: Path) -> bool:
    """Tell whether something is mounted exactly at ``target`` (symlinks in it resolved)."""
    wanted = os.path.realpath(os.fspath(target))
    return wanted in mount_points()
