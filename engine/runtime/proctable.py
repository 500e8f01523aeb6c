"""The processes of a container, read from its cgroup and the host's /proc, as `ps -ef` prints them.

cgroup.procs lists live members only: a process leaves its cgroup when it exits, so a zombie is
found instead as an exited child of a member (its parent, which has not reaped it, is still in the
container). Decides nothing; services/containerinfo.py checks that the container may be listed.
"""

from __future__ import annotations

import os
import pwd
import time
from dataclasses import dataclass
from pathlib import Path

_MAX_PIDS = 100_000  # the walk is bounded by what the kernel allows, but a cap keeps a reply sane


@dataclass(frozen=True)
class Process:
    """One row of `ps -ef`: UID PID PPID C STIME TTY TIME CMD, plus the state letter."""

    uid: str
    pid: int
    ppid: int
    c: int
    stime: str
    tty: str
    time: str
    cmd: str
    state: str


@dataclass(frozen=True)
class _Stat:
    pid: int
    comm: str
    state: str
    ppid: int
    tty_nr: int
    cpu_ticks: int
    start_ticks: int


def cgroup_pids(group_dirs: list[Path]) -> set[int]:
    """Every pid in the groups and their sub-groups (a container may make its own, with cgroupns)."""
    pids: set[int] = set()
    for top in group_dirs:
        for directory, _subdirs, files in os.walk(top):
            if "cgroup.procs" not in files:
                continue
            try:
                text = Path(directory, "cgroup.procs").read_text()
            except OSError:
                continue  # removed meanwhile
            pids.update(int(word) for word in text.split() if word.isdigit())
            if len(pids) > _MAX_PIDS:
                return pids
    return pids


def parse_stat(text: str) -> _Stat | None:
    """Parse /proc/<pid>/stat; the command name may hold spaces and parentheses."""
    head, sep, rest = text.rpartition(") ")
    if not sep or " (" not in head:
        return None
    pid_text, _, comm = head.partition(" (")
    fields = rest.split()
    try:
        return _Stat(
            pid=int(pid_text),
            comm=comm,
            state=fields[0],
            ppid=int(fields[1]),
            tty_nr=int(fields[4]),
            cpu_ticks=int(fields[11]) + int(fields[12]),
            start_ticks=int(fields[19]),
        )
    except (IndexError, ValueError):
        return None


def members_with_zombies(live: set[int], table: dict[int, _Stat]) -> set[int]:
    """The live members plus every zombie whose parent is a member."""
    return live | {pid for pid, st in table.items() if st.state == "Z" and st.ppid in live}


def list_processes(group_dirs: list[Path], *, proc: Path = Path("/proc")) -> list[Process]:
    """The container's processes, zombies included, sorted by pid."""
    live = cgroup_pids(group_dirs)
    if not live:
        return []
    table = _read_table(proc)
    clock = os.sysconf("SC_CLK_TCK")
    boot = _boot_time(proc)
    now = time.time()
    rows = []
    for pid in sorted(members_with_zombies(live, table)):
        st = table.get(pid)
        if st is None:
            continue  # exited between the two reads
        try:
            uid = (proc / str(pid)).stat().st_uid
            cmdline = (proc / str(pid) / "cmdline").read_bytes()
        except OSError:
            continue
        started = boot + st.start_ticks / clock
        elapsed = max(now - started, 1e-9)
        rows.append(
            Process(
                uid=_user(uid),
                pid=pid,
                ppid=st.ppid,
                c=min(99, int(100 * st.cpu_ticks / clock / elapsed)),  # ps's C: lifetime CPU %
                stime=_stime(started, now),
                tty=_tty(st.tty_nr),
                time=_cputime(st.cpu_ticks // clock),
                cmd=format_cmd(cmdline, st.comm, st.state),
                state=st.state,
            )
        )
    return rows


def format_cmd(cmdline: bytes, comm: str, state: str) -> str:
    """The CMD column: the argument list, or `[comm]` when there is none, `<defunct>` for a zombie."""
    if state == "Z":
        return f"[{comm}] <defunct>"
    args = cmdline.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace").strip()
    return args or f"[{comm}]"


def _read_table(proc: Path) -> dict[int, _Stat]:
    table = {}
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            st = parse_stat((proc / entry / "stat").read_text(errors="replace"))
        except OSError:
            continue
        if st is not None:
            table[st.pid] = st
    return table


def _boot_time(proc: Path) -> float:
    with open(proc / "stat") as f:
        for line in f:
            if line.startswith("btime"):
                return float(line.split()[1])
    return 0.0


def _user(uid: int) -> str:
    """The name ps shows: the host's user name for the uid, or the number (as ps -ef does)."""
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
    return name if len(name) <= 8 else str(uid)


def _stime(started: float, now: float) -> str:
    """ps's STIME: HH:MM today, MonDD earlier this year, the year before that."""
    then, today = time.localtime(started), time.localtime(now)
    if then[:3] == today[:3]:
        return time.strftime("%H:%M", then)
    if then.tm_year == today.tm_year:
        return time.strftime("%b%d", then)
    return time.strftime("%Y", then)


def _cputime(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    clock = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days}-{clock}" if days else clock


def _tty(tty_nr: int) -> str:
    """The TTY column: pts/N for a pseudo-terminal, ? for none (or another device)."""
    major, minor = (tty_nr >> 8) & 0xFFF, (tty_nr & 0xFF) | ((tty_nr >> 12) & 0xFFF00)
    if tty_nr == 0:
        return "?"
    if 136 <= major <= 143:
        return f"pts/{(major - 136) * 256 + minor}"
    return "?"
