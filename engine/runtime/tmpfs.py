"""The rules for a container's tmpfs mounts (--tmpfs, --mount type=tmpfs, HostConfig.Tmpfs/Mounts).

Pure: option values in, checked values or mount options out (issue 10 item 9).
- mode: octal, at most 1777 (rwx for all plus the sticky bit). Setuid and setgid bits are refused,
  not masked, so what the user sees in `inspect` is what the kernel mounts; rows stored before the
  rule are masked to 1777 at start.
- size: a tmpfs without `size=` gets the cap (the kernel's own default is half of RAM, which is also
  the cap's default), `size=0` (unlimited to the kernel) is refused, and so is a size above the cap
  (BERTH_TMPFS_MAX_SIZE). Rows stored before the rule are clamped to the cap at start.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from engine.errors import InvalidArgument

MAX_MODE = 0o1777
_OCTAL = re.compile(r"[0-7]{1,4}")


def parse_mode(value: str, what: str = "tmpfs mode") -> str:
    """Return `value` (octal text) if it is a mode of at most 1777; raise InvalidArgument otherwise."""
    if not _OCTAL.fullmatch(value):
        raise InvalidArgument(f"invalid {what} {value[:16]!r}: use octal digits, such as 1777 or 755")
    mode = int(value, 8)
    if mode & ~MAX_MODE:
        raise InvalidArgument(
            f"invalid {what} {value}: setuid and setgid bits are not allowed (at most 1777)"
        )
    return value


def check_size(size: int, *, cap: int, destination: str) -> None:
    """Refuse size 0 (the kernel reads it as unlimited) and sizes above `cap` bytes."""
    if size <= 0:
        raise InvalidArgument(
            f"tmpfs size 0 on {destination} would be unlimited",
            hint="give a size such as 64m or leave it out",
        )
    if size > cap:
        raise InvalidArgument(
            f"tmpfs size {size} bytes on {destination} is more than the limit of {cap} bytes",
            hint="BERTH_TMPFS_MAX_SIZE sets the limit (half of the host's memory by default)",
        )


def mount_options(options: Mapping[str, str], *, cap: int) -> tuple[str, ...]:
    """The kernel options for a stored tmpfs request: size present and capped, mode masked to 1777."""
    out: list[str] = []
    size = 0
    for key, value in options.items():
        if key == "size":
            try:
                size = int(value)
            except (TypeError, ValueError):
                size = 0
        elif key == "mode":
            try:
                out.append(f"mode={int(str(value), 8) & MAX_MODE:o}")
            except ValueError:
                continue  # a malformed mode from an old row: the kernel's default (1777) applies
        else:
            out.append(f"{key}={value}" if value else key)
    out.insert(0, f"size={min(size, cap) if size > 0 else cap}")
    return tuple(out)


def default_cap(physical_memory: int) -> int:
    """Half of the host's memory: what the kernel gives a tmpfs mounted without size=."""
    return max(physical_memory // 2, 1 << 20)
