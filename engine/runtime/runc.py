"""Wrap the runc binary for one state root.

Decides nothing about whether an action is allowed (services/containers.py does); it builds argument
lists, runs them with a timeout and turns failures into RuntimeFailure, "does not exist" into ContainerGone.
"""

from __future__ import annotations

import builtins
import json
import os
import re
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import RuntimeFailure, Unavailable
from engine.runtime import runcfixes

TIMEOUT = 30.0
STDERR_TAIL = 2000

_VERSION_RE = re.compile(r"(\d+)\.(\d+)\.(\d+)(?:-rc\.?(\d+))?")


class ContainerGone(RuntimeFailure):
    """runc does not know the container: it was never created or is already deleted."""


@dataclass(frozen=True)
class RuncState:
    """What `runc state` / `runc list` report for one container."""

    id: str
    status: str  # creating, created, running, paused, stopped
    pid: int
    bundle: str
    created: str = ""
    annotations: dict[str, str] = field(default_factory=dict)


def parse_state(data: dict[str, Any]) -> RuncState:
    """Turn one `runc state` JSON object into a RuncState."""
    return RuncState(
        id=data["id"],
        status=data["status"],
        pid=int(data.get("pid") or 0),
        bundle=data.get("bundle", ""),
        created=data.get("created", ""),
        annotations=dict(data.get("annotations") or {}),
    )


def parse_version(text: str) -> tuple[int, int, int, int] | None:
    """Parse `runc --version` output (or a bare version) into (major, minor, patch, rc).

    rc is the release-candidate number, or a large number for a final release so tuples compare.
    """
    m = _VERSION_RE.search(text)
    if not m:
        return None
    rc = int(m.group(4)) if m.group(4) else 1_000_000
    return int(m.group(1)), int(m.group(2)), int(m.group(3)), rc


def check_version(version: str | tuple[int, int, int, int] | None, changelog: str = "") -> str | None:
    """Return a loud warning naming the known fixes this runc lacks, else None (see runtime/runcfixes).

    `version` is `runc --version` output (or a parsed version); `changelog` the distribution's,
    whose CVEs count as fixed when its newest entry is this very build.
    """
    if isinstance(version, tuple):
        version = runcfixes.show(version)
    return runcfixes.warning(version, changelog)


def state_argv(root: Path, container_id: str) -> list[str]:
    return ["--root", str(root), "state", container_id]


def start_argv(root: Path, container_id: str) -> list[str]:
    return ["--root", str(root), "start", container_id]


def kill_argv(root: Path, container_id: str, signal: int | str, *, all: bool = False) -> list[str]:
    return ["--root", str(root), "kill", *(["--all"] if all else []), container_id, str(signal)]


def delete_argv(root: Path, container_id: str, *, force: bool = False) -> list[str]:
    return ["--root", str(root), "delete", *(["--force"] if force else []), container_id]


def update_argv(
    root: Path,
    container_id: str,
    *,
    memory: int | None = None,
    memory_swap: int | None = None,
    cpu_quota: int | None = None,
    cpu_period: int | None = None,
    cpu_shares: int | None = None,
    pids_limit: int | None = None,
) -> list[str]:
    """Build `runc update` for the limits given (None leaves a limit as it is; -1 is unlimited)."""
    argv = ["--root", str(root), "update"]
    for flag, value in (
        ("--memory", memory),
        ("--memory-swap", memory_swap),
        ("--cpu-period", cpu_period),
        ("--cpu-quota", cpu_quota),
        ("--cpu-share", cpu_shares),
        ("--pids-limit", pids_limit),
    ):
        if value is not None:
            argv += [flag, str(value)]
    return [*argv, container_id]


def exec_argv(
    root: Path,
    container_id: str,
    *,
    process_json: Path,
    pid_file: Path | None = None,
    console_socket: Path | str | None = None,
    detach: bool = False,
) -> list[str]:
    """Build `runc exec` for a process described by an OCI process JSON file.

    Using --process (not -e/-u/--cap flags) means the exec gets exactly the caps, user, NNP and
    rlimits the service decided, written the same way as the container's own process.
    """
    argv = ["--root", str(root), "exec", "--process", str(process_json)]
    if detach:
        argv.append("--detach")
    if pid_file is not None:
        argv += ["--pid-file", str(pid_file)]
    if console_socket is not None:
        argv += ["--console-socket", str(console_socket)]
    return [*argv, container_id]


class Runc:
    """The runc binary at `binary`, with its state under `root` (runc --root)."""

    def __init__(self, binary: str, root: Path) -> None:
        self.binary = binary
        self.root = Path(root)

    def version(self) -> tuple[str, tuple[int, int, int, int] | None]:
        """Return (first line of `runc --version`, parsed version)."""
        out = self.version_output()
        first = out.splitlines()[0] if out else ""
        return first, parse_version(first)

    def version_output(self) -> str:
        """The whole of `runc --version` (a distribution build names itself on the commit line)."""
        return self._run(["--version"]).stdout

    def state(self, container_id: str) -> RuncState | None:
        """Return the container's state, or None if runc does not know it."""
        try:
            out = self._run(state_argv(self.root, container_id)).stdout
        except ContainerGone:
            return None
        return parse_state(json.loads(out))

    def list(self) -> list[RuncState]:
        """Return every container under this root."""
        out = self._run(["--root", str(self.root), "list", "--format", "json"]).stdout.strip()
        return [parse_state(d) for d in (json.loads(out) or [])] if out else []

    def start(self, container_id: str) -> None:
        """Start a created container (conmon has already run `runc create`)."""
        self._run(start_argv(self.root, container_id))

    def kill(self, container_id: str, signal: int | str, *, all: bool = False) -> None:
        """Send `signal` to the container's init (or every process with all=True)."""
        self._run(kill_argv(self.root, container_id, signal, all=all))

    def pause(self, container_id: str) -> None:
        self._run(["--root", str(self.root), "pause", container_id])

    def resume(self, container_id: str) -> None:
        self._run(["--root", str(self.root), "resume", container_id])

    def delete(self, container_id: str, *, force: bool = False) -> None:
        """Delete the container; ContainerGone if it is already gone (cleanup may ignore that)."""
        self._run(delete_argv(self.root, container_id, force=force))

    def update(self, container_id: str, **limits: int | None) -> None:
        """Change a live container's cgroup limits (see update_argv for the keywords)."""
        self._run(update_argv(self.root, container_id, **limits))

    def ps(self, container_id: str) -> builtins.list[int]:
        """Return the host pids of every process in the container."""
        out = self._run(["--root", str(self.root), "ps", "--format", "json", container_id]).stdout
        return [int(p) for p in (json.loads(out or "[]") or [])]

    def stats(self, container_id: str) -> dict[str, Any]:
        """Return one `runc events --stats` sample (the "data" object)."""
        out = self._run(["--root", str(self.root), "events", "--stats", container_id]).stdout
        return dict(json.loads(out).get("data") or {})

    def exec(
        self,
        container_id: str,
        *,
        process_json: Path,
        pid_file: Path | None = None,
        console_socket: Path | str | None = None,
        detach: bool = False,
        stdin: int | None = subprocess.DEVNULL,
        stdout: int | None = subprocess.DEVNULL,
        stderr: int | None = None,
        timeout: float | None = TIMEOUT,
    ) -> int:
        """Run `runc exec`; return its exit code (the process's, unless detached).

        With detach and no console socket the process keeps the stdio given here, so pass fds the
        caller owns: a pipe captured by us would never reach EOF while the process lives.
        """
        argv = [
            self.binary,
            *exec_argv(
                self.root,
                container_id,
                process_json=process_json,
                pid_file=pid_file,
                console_socket=console_socket,
                detach=detach,
            ),
        ]
        try:
            proc = subprocess.run(
                argv,
                stdin=stdin,
                stdout=stdout,
                stderr=subprocess.PIPE if stderr is None else stderr,
                timeout=timeout,
                close_fds=True,
            )
        except FileNotFoundError as exc:
            raise Unavailable(f"OCI runtime {self.binary} not found", hint="install runc") from exc
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeFailure(f"runc exec in {container_id} failed: {exc}", argv=argv) from exc
        err = (proc.stderr or b"").decode(errors="replace") if stderr is None else ""
        if detach and proc.returncode != 0:
            raise _failure(argv, proc.returncode, err)
        if not detach and "does not exist" in err:
            raise _failure(argv, proc.returncode, err)
        return proc.returncode

    def _run(self, args: Sequence[str], *, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
        argv = [self.binary, *args]
        try:
            proc = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=timeout,
                close_fds=True,
                stdin=subprocess.DEVNULL,
            )
        except FileNotFoundError as exc:
            raise Unavailable(f"OCI runtime {self.binary} not found", hint="install runc") from exc
        except subprocess.TimeoutExpired as exc:
            raise RuntimeFailure(f"{' '.join(args[2:4])} timed out after {timeout:.0f}s", argv=argv) from exc
        except OSError as exc:
            raise RuntimeFailure(f"cannot run {self.binary}: {exc}", argv=argv) from exc
        if proc.returncode != 0:
            raise _failure(argv, proc.returncode, proc.stderr)
        return proc


def _failure(argv: list[str], code: int, stderr: str) -> RuntimeFailure:
    tail = stderr.strip()[-STDERR_TAIL:]
    last = tail.splitlines()[-1] if tail else f"exit code {code}"
    msg_match = re.search(r'msg="((?:[^"\\]|\\.)*)"', last)
    message = msg_match.group(1) if msg_match else last
    sub = next((a for a in argv[3:] if not a.startswith("-")), "runc")
    cls = ContainerGone if "does not exist" in tail or "container not exist" in tail else RuntimeFailure
    return cls(f"runc {sub} failed: {message}", argv=argv, exit_code=code, stderr=tail)


class ConsoleSocket:
    """A unix socket runc connects to with --console-socket, passing the pty master as one fd.

    Use as a context manager; `receive()` returns the master fd, which the caller then owns.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        # sun_path holds 108 bytes; a long path is bound through its directory's /proc/self/fd entry.
        self._dirfd = os.open(self.path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.bind(_short_path(self._dirfd, self.path))
            os.chmod(self.path, 0o600)
            self._sock.listen(1)
        except OSError as exc:
            self.close()
            raise RuntimeFailure(f"cannot listen on console socket {self.path}: {exc}") from exc

    @property
    def runc_path(self) -> str:
        """The path to give runc: ours if it fits in sun_path, else our /proc/<pid>/fd/<dirfd> alias."""
        text = str(self.path)
        return text if len(text.encode()) < 108 else f"/proc/{os.getpid()}/fd/{self._dirfd}/{self.path.name}"

    def receive(self, timeout: float = 10.0) -> int:
        """Wait for runc to connect and return the pseudo-terminal master fd it sends."""
        self._sock.settimeout(timeout)
        try:
            conn, _ = self._sock.accept()
            with conn:
                conn.settimeout(timeout)
                _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1)
        except OSError as exc:
            raise RuntimeFailure(f"no terminal received on {self.path}: {exc}") from exc
        if not fds:
            raise RuntimeFailure(f"runc connected to {self.path} but sent no terminal")
        os.set_inheritable(fds[0], False)
        return fds[0]

    def close(self) -> None:
        self._sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        if self._dirfd >= 0:
            os.close(self._dirfd)
            self._dirfd = -1

    def __enter__(self) -> ConsoleSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _short_path(dirfd: int, path: Path) -> str:
    text = str(path)
    return text if len(text.encode()) < 108 else f"/proc/self/fd/{dirfd}/{path.name}"
