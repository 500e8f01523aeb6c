"""Start conmon for one container and talk to it afterwards (exit file, attach socket, ctl FIFO).

conmon runs `runc create`, keeps the container's stdio, writes the k8s-file log and the exit file, and
daemonises, so containers outlive the engine. This module is the only place that spells its flags; it
decides nothing about whether a container may be started.

Files conmon makes, all in the bundle directory because we pass --full-attach:
  attach  SOCK_SEQPACKET; each received packet is 1 stream byte (2 stdout, 3 stderr) + data; send = stdin
  ctl     FIFO of "TYPE A B\\n" lines: "1 ROWS COLS" resizes the terminal, "2 0 0" reopens the log
  winsz   FIFO of "ROWS COLS\\n", read only once a terminal exists
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.errors import CommandNotRunnable, InvalidArgument, RuntimeFailure, Unavailable

SYNC_TIMEOUT = 60.0
STREAM_STDOUT = 2
STREAM_STDERR = 3
ATTACH_BUFFER = 8192 + 1  # conmon's STDIO_BUF_SIZE plus the stream byte
_SUN_PATH_MAX = 108
_PR_SET_CHILD_SUBREAPER = 36


@dataclass(frozen=True)
class SpawnResult:
    pid: int  # the container's init, as the host sees it
    conmon_pid: int


def spawn_argv(
    *,
    conmon: str,
    runtime: str,
    runtime_root: Path,
    container_id: str,
    name: str,
    bundle: Path,
    log_path: Path,
    log_max_size: int | None,
    exit_dir: Path,
    socket_dir: Path,
    pidfile: Path,
    conmon_pidfile: Path,
    terminal: bool,
    stdin: bool,
    exit_command: Sequence[str] | None = None,
    exit_delay: int | None = None,
) -> list[str]:
    """Build conmon's command line (pure)."""
    argv = [
        conmon,
        "--api-version", "1",
        "-c", container_id,
        "-u", container_id,
        "-n", name,
        "-r", runtime,
        "--runtime-arg", "--root",
        "--runtime-arg", str(runtime_root),
        "-b", str(bundle),
        "--container-pidfile", str(pidfile),
        "--conmon-pidfile", str(conmon_pidfile),
        "--exit-dir", str(exit_dir),
        "--socket-dir-path", str(socket_dir),
        # The attach socket goes in the bundle dir under its full name; we connect through an O_PATH
        # fd when that is longer than sun_path, instead of relying on conmon's truncated symlink.
        "--full-attach",
        "-l", f"k8s-file:{log_path}",
        "--log-level", "warning",
        "--syslog=false",
    ]  # fmt: skip
    if log_max_size is not None:
        argv += ["--log-size-max", str(log_max_size)]
    if terminal:
        argv.append("-t")
    if stdin:
        argv.append("-i")
    if exit_command:
        argv += ["--exit-command", exit_command[0]]
        for arg in exit_command[1:]:
            argv += ["--exit-command-arg", arg]
        if exit_delay is not None:
            argv += ["--exit-delay", str(exit_delay)]
    return argv


def spawn(
    *,
    conmon: str,
    runtime: str,
    runtime_root: Path,
    container_id: str,
    name: str,
    bundle: Path,
    log_path: Path,
    log_max_size: int | None,
    exit_dir: Path,
    socket_dir: Path,
    pidfile: Path,
    conmon_pidfile: Path,
    terminal: bool = False,
    stdin: bool = False,
    exit_command: Sequence[str] | None = None,
    exit_delay: int | None = None,
    env_path: str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    timeout: float = SYNC_TIMEOUT,
) -> SpawnResult:
    """Run conmon and return once the container is `created` in runc (so `runc start` may follow).

    conmon reports on a sync pipe (`_OCI_SYNCPIPE`) the container pid, or a negative number and the
    runtime's message, which becomes RuntimeFailure. conmon gets only that pipe's write end besides
    /dev/null stdio, and a minimal environment (no engine secrets leak into runc or the container).
    The intermediate conmon process is waited for, so no zombie is left; the daemonised conmon is
    reparented to PID 1 (or to our subreaper).
    """
    argv = spawn_argv(
        conmon=conmon, runtime=runtime, runtime_root=runtime_root, container_id=container_id,
        name=name, bundle=bundle, log_path=log_path, log_max_size=log_max_size, exit_dir=exit_dir,
        socket_dir=socket_dir, pidfile=pidfile, conmon_pidfile=conmon_pidfile, terminal=terminal,
        stdin=stdin, exit_command=exit_command, exit_delay=exit_delay,
    )  # fmt: skip
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    env = {"PATH": env_path, "_OCI_SYNCPIPE": str(write_fd)}
    try:
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                close_fds=True,
                pass_fds=(write_fd,),
                env=env,
                cwd=str(bundle),
            )
        except FileNotFoundError as exc:
            raise Unavailable(f"conmon not found at {conmon}", hint="install conmon") from exc
        except OSError as exc:
            raise RuntimeFailure(f"cannot run conmon: {exc}", argv=argv) from exc
        os.close(write_fd)
        write_fd = -1
        try:
            message = _read_sync(read_fd, timeout)
        finally:
            _reap(proc)
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
    if message is None:
        _kill_from_pidfile(conmon_pidfile)
        raise RuntimeFailure(
            f"conmon did not report container {container_id} within {timeout:.0f}s or died",
            argv=argv,
            exit_code=proc.returncode,
        )
    pid = int(message.get("data", -1))
    if pid <= 0:
        text = str(message.get("message") or "no message").strip()
        raise create_failure(container_id, text, argv)
    conmon_pid = _read_int(conmon_pidfile) or 0
    return SpawnResult(pid=pid, conmon_pid=conmon_pid)


def create_failure(container_id: str, text: str, argv: list[str]) -> RuntimeFailure:
    """The error for the runtime's report `text` on a failed create (pure; parsed here, once).

    A command that cannot be run becomes CommandNotRunnable with Docker's exit status (127 not found,
    126 not executable) and the runtime's reason without its log framing.
    """
    marker = "unable to start container process: "
    reason = (text.split(marker, 1)[1] if marker in text else text).strip().rstrip('"').strip()
    status = not_runnable_status(text)
    message = f"creating container {container_id} failed: {text}"
    if status is None:
        return RuntimeFailure(message, argv=argv, stderr=text)
    return CommandNotRunnable(message, reason=reason, exit_status=status, argv=argv, stderr=text)


def not_runnable_status(text: str) -> int | None:
    """Docker's exit status for the runtime's report that a command cannot run (pure), else None.

    127: the command is not there; 126: it is there but cannot be executed.
    """
    lowered = text.lower()
    if "executable file not found" in lowered or "no such file or directory" in lowered:
        return 127
    if "permission denied" in lowered or "is a directory" in lowered:
        return 126
    return None


def _read_sync(fd: int, timeout: float) -> dict | None:
    """Read conmon's first JSON message from the sync pipe; None on EOF or timeout."""
    deadline = time.monotonic() + timeout
    buf = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            return None
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buf += chunk
        try:
            # conmon writes each message in one write; a complete object ends the wait.
            return json.loads(buf.split(b"\n", 1)[0])
        except ValueError:
            continue
    try:
        return json.loads(buf) if buf.strip() else None
    except ValueError:
        return None


def _reap(proc: subprocess.Popen[bytes]) -> None:
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        # The intermediate process exits right after forking; if it has not, it is stuck.
        proc.kill()
        proc.wait()


def _kill_from_pidfile(path: Path) -> None:
    pid = _read_int(path)
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _read_int(path: Path) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise RuntimeFailure(f"cannot read {path}: {exc}") from exc
    try:
        return int(text)
    except ValueError:
        return None  # written but not yet complete


def read_exit_code(exit_dir: Path, container_id: str) -> int | None:
    """Return the exit code conmon recorded for the container, or None if it has not exited."""
    return _read_int(Path(exit_dir) / container_id)


def read_conmon_pid(conmon_pidfile: Path) -> int | None:
    """Return conmon's pid from its pidfile if that process is still alive."""
    pid = _read_int(conmon_pidfile)
    if not pid or is_zombie(pid):
        return None
    return pid


def set_child_subreaper(enabled: bool = True) -> None:
    """Adopt orphaned descendants, so daemonised conmons become our children and can be reaped.

    PID 1 on these hosts reaps orphans only after a while, and `[conmon] <defunct>` lingers. Reap
    adopted conmons by pid with `reap()`; never waitpid(-1), which would steal the exit status of
    subprocess's own children.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, int(enabled), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise RuntimeFailure(f"prctl(PR_SET_CHILD_SUBREAPER) failed: {os.strerror(err)}")


def reap(pid: int, *, timeout: float = 5.0) -> bool:
    """Collect an adopted conmon once it exits; True if it was reaped, False if it is not our child.

    Raises RuntimeFailure if it is our child and still running after `timeout`.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return False
        if done:
            return True
        if time.monotonic() >= deadline:
            raise RuntimeFailure(f"conmon {pid} did not exit within {timeout:.0f}s")
        time.sleep(0.005)


def is_zombie(pid: int) -> bool:
    """True if `pid` has exited but was not reaped yet (or does not exist)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ESRCH):
            return True
        raise RuntimeFailure(f"cannot read /proc/{pid}/stat: {exc}") from exc
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def attach_socket_path(bundle: Path) -> Path:
    return Path(bundle) / "attach"


def ctl_path(bundle: Path) -> Path:
    return Path(bundle) / "ctl"


def attach(socket_path: Path) -> socket.socket:
    """Connect to conmon's attach socket and return the SOCK_SEQPACKET socket.

    Received packets start with a stream byte (STREAM_STDOUT/STREAM_STDERR); bytes sent go to the
    container's stdin (only if conmon was started with stdin=True). Paths longer than sun_path are
    reached through an O_PATH fd on the directory.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    dirfd = -1
    try:
        target = str(socket_path)
        if len(target.encode()) >= _SUN_PATH_MAX:
            dirfd = os.open(Path(socket_path).parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            target = f"/proc/self/fd/{dirfd}/{Path(socket_path).name}"
        sock.connect(target)
    except OSError as exc:
        sock.close()
        raise RuntimeFailure(f"cannot attach to {socket_path}: {exc}") from exc
    finally:
        if dirfd >= 0:
            os.close(dirfd)
    return sock


def split_packet(packet: bytes) -> tuple[int, bytes]:
    """Split one attach-socket packet into (stream, data)."""
    if not packet:
        return 0, b""
    return packet[0], packet[1:]


def resize(ctl: Path, rows: int, cols: int) -> None:
    """Ask conmon to resize the container's terminal (conmon accepts 0..1000 for each)."""
    for value, what in ((rows, "rows"), (cols, "cols")):
        if not isinstance(value, int) or not 0 <= value <= 1000:
            raise InvalidArgument(f"terminal {what} must be an integer within 0..1000")
    _write_ctl(ctl, f"1 {rows} {cols}\n")


def reopen_log(ctl: Path) -> None:
    """Ask conmon to reopen its log file (after the engine rotated it)."""
    _write_ctl(ctl, "2 0 0\n")


def _write_ctl(ctl: Path, line: str) -> None:
    try:
        # Non-blocking: with conmon gone there is no reader and open fails (ENXIO) instead of hanging.
        fd = os.open(ctl, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise RuntimeFailure(f"conmon is not listening on {ctl}: {exc}") from exc
    try:
        os.write(fd, line.encode())
    except OSError as exc:
        raise RuntimeFailure(f"cannot write to {ctl}: {exc}") from exc
    finally:
        os.close(fd)
