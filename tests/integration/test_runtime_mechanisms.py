"""Real runc + conmon + kernel: the runtime mechanisms under the defaults of SECURITY.md §1.

Each test builds a busybox rootfs, a bundle from build_spec, spawns conmon, starts with runc and cleans
up (runc delete -f, conmon killed by its own pid, cgroups removed, state dir removed).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from engine.runtime import cgroups, conmon, logfile, runc, seccomp, spec
from engine.runtime.runc import ContainerGone, Runc
from tests.conftest import TMP_PREFIX
from tests.polling import wait_until

RUNC = shutil.which("runc") or "/usr/sbin/runc"
CONMON = shutil.which("conmon") or "/usr/bin/conmon"
BUSYBOX = "/bin/busybox"
APPLETS = (
    "sh",
    "true",
    "sleep",
    "echo",
    "cat",
    "id",
    "ls",
    "grep",
    "wc",
    "head",
    "yes",
    "unshare",
    "kill",
    "tr",
    "stty",
)
PODMAN_CAPEFF = "00000000800405fb"  # CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP
#                                     NET_BIND_SERVICE SYS_CHROOT SETFCAP


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "runtime mechanism tests need root"
    for path in (RUNC, CONMON, BUSYBOX):
        if not os.path.exists(path):
            return f"{path} is not installed"
    return None


_reason = _missing()
if _reason and os.environ.get("CI"):
    pytest.fail(f"CI must run the runtime tests: {_reason}", pytrace=False)
pytestmark = pytest.mark.skipif(_reason is not None, reason=f"SKIPPED LOUDLY: {_reason}")


class Box:
    """A private runc root and conmon dirs in a short /run path (unix sockets have a 108-byte limit)."""

    def __init__(self, rootfs: Path) -> None:
        self.base = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir="/run"))
        self.rootfs = rootfs
        self.runc = Runc(RUNC, self.base / "r")
        for d in ("exits", "socks", "b"):
            (self.base / d).mkdir()
        self.ids: list[str] = []

    def bundle(self, cid: str) -> Path:
        return self.base / "b" / cid

    def create(
        self,
        args: list[str],
        *,
        terminal: bool = False,
        stdin: bool = False,
        log_max: int | None = None,
        profile: dict | None = None,
        **spec_kw: object,
    ) -> str:
        cid = "t" + uuid.uuid4().hex[:11]
        self.ids.append(cid)
        bundle = self.bundle(cid)
        bundle.mkdir()
        inp = spec.SpecInput(
            args=args,
            rootfs=str(self.rootfs),
            terminal=terminal,
            cgroups_path=cgroups.cgroups_path_for(cid),
            cgroup_v2=cgroups.detect_mode() == cgroups.V2,
        )
        inp = replace(inp, **spec_kw)
        config = spec.build_spec(inp, seccomp=seccomp.default_profile() if profile is None else profile)
        (bundle / "config.json").write_text(json.dumps(config))
        result = conmon.spawn(
            conmon=CONMON, runtime=RUNC, runtime_root=self.runc.root, container_id=cid, name=cid,
            bundle=bundle, log_path=bundle / "ctr.log", log_max_size=log_max, exit_dir=self.base / "exits",
            socket_dir=self.base / "socks", pidfile=bundle / "pid", conmon_pidfile=bundle / "conmon.pid",
            terminal=terminal, stdin=stdin,
        )  # fmt: skip
        assert result.pid > 0 and result.conmon_pid > 0
        assert self.runc.state(cid).status == "created"
        return cid

    def run(self, args: list[str], **kw: object) -> tuple[str, int]:
        cid = self.create(args, **kw)
        self.runc.start(cid)
        return cid, self.wait(cid)

    def wait(self, cid: str, timeout: float = 20.0) -> int:
        exits = self.base / "exits"
        wait_until(
            lambda: conmon.read_exit_code(exits, cid) is not None,
            timeout=timeout,
            interval=0.005,
            what=f"container {cid} to exit",
        )
        code = conmon.read_exit_code(exits, cid)
        assert code is not None
        return code

    def log(self, cid: str) -> list[tuple[str, str]]:
        return [(line.stream, line.text) for line in logfile.read_log(self.bundle(cid) / "ctr.log")]

    def cleanup(self) -> None:
        """Undo everything, carrying on past a failed step so one failure cannot leak the rest."""
        errors: list[BaseException] = []
        for cid in self.ids:
            for step in (self._delete, self._stop_conmon, self._remove_cgroups):
                try:
                    step(cid)
                except Exception as exc:  # noqa: BLE001 - re-raised below
                    errors.append(exc)
        shutil.rmtree(self.base, ignore_errors=True)
        if errors:
            raise errors[0]

    def _delete(self, cid: str) -> None:
        try:
            self.runc.delete(cid, force=True)
        except ContainerGone:
            pass

    def _stop_conmon(self, cid: str) -> None:
        pid = conmon._read_int(self.bundle(cid) / "conmon.pid")
        if pid and not conmon.is_zombie(pid) and Path(f"/proc/{pid}/comm").read_text().strip() == "conmon":
            os.kill(pid, signal.SIGKILL)
        if pid:
            # We are a subreaper (see the fixture), so the daemonised conmon is our child.
            conmon.reap(pid)

    def _remove_cgroups(self, cid: str) -> None:
        wait_until(
            lambda: cgroups.remove(cid), timeout=2, interval=0.02, what=f"the cgroup of {cid} to be removable"
        )


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "usr"):
        (root / d).mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin/busybox")
    for applet in APPLETS:
        os.symlink("busybox", root / "bin" / applet)
    # For the python probe: the host's /usr is bind-mounted read-only where a test asks for it.
    os.symlink("usr/lib", root / "lib")
    os.symlink("usr/lib64", root / "lib64")
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    return root


@pytest.fixture
def box(rootfs: Path) -> Iterator[Box]:
    # PID 1 here reaps orphans late; adopting conmons lets cleanup reap them (as the engine will).
    conmon.set_child_subreaper(True)
    b = Box(rootfs)
    try:
        yield b
    finally:
        try:
            b.cleanup()
        finally:
            conmon.set_child_subreaper(False)
    # Nothing of ours may survive: no runc state, no cgroup.
    assert not b.base.exists()
    assert not any(cgroups.group_dirs(cid) for cid in b.ids)


def test_exit_code_42_is_preserved(box: Box) -> None:
    _, code = box.run(["sh", "-c", "exit 42"])
    assert code == 42


def test_stdout_and_stderr_are_kept_apart_in_the_log(box: Box) -> None:
    cid, code = box.run(["sh", "-c", "echo to-out; echo to-err >&2; echo again"])
    assert code == 0
    log = box.log(cid)
    assert [t for s, t in log if s == "stdout"] == ["to-out", "again"]
    assert [t for s, t in log if s == "stderr"] == ["to-err"]


def test_container_sees_only_fds_0_to_2(box: Box) -> None:
    # $$ is the shell (the trailing exit stops ash from exec-ing ls in its place, whose own
    # directory fd would show up as 3).
    cid, code = box.run(["sh", "-c", "ls /proc/$$/fd; exit 0"])
    assert code == 0
    assert [t for _, t in box.log(cid)] == ["0", "1", "2"]


def test_capabilities_are_podmans_eleven(box: Box) -> None:
    cid, _ = box.run(["grep", "^Cap", "/proc/self/status"])
    status = dict(t.split(":\t") for _, t in box.log(cid))
    assert status["CapEff"] == PODMAN_CAPEFF and status["CapBnd"] == PODMAN_CAPEFF
    assert status["CapInh"] == "0000000000000000" and status["CapAmb"] == "0000000000000000"


def test_sensitive_proc_files_are_masked(box: Box) -> None:
    # /proc/kcore does not exist on every kernel; /proc/keys and /proc/timer_list do here.
    cid, code = box.run(
        [
            "sh",
            "-c",
            "for f in /proc/kcore /proc/keys /proc/timer_list; do "
            "[ -e $f ] && echo $f $(cat $f | wc -c); done; ls /sys/firmware | wc -l",
        ]
    )
    assert code == 0
    for _, text in box.log(cid):
        assert text.split()[-1] == "0", text


def test_writing_proc_sys_fails(box: Box) -> None:
    cid, code = box.run(["sh", "-c", "echo 1 > /proc/sys/kernel/ns_last_pid"])
    assert code != 0
    assert any("Read-only file system" in t for _, t in box.log(cid))


def test_user_namespaces_are_refused_by_seccomp(box: Box) -> None:
    cid, code = box.run(["unshare", "-U", "true"])
    assert code != 0
    # The same command works without the profile, so it is the profile that refuses it.
    _, unconfined = box.run(["unshare", "-U", "true"], profile={"defaultAction": "SCMP_ACT_ALLOW"})
    assert unconfined == 0


@pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="needs the host's python3 for the probe")
def test_seccomp_refuses_af_alg_keyctl_io_uring_and_namespace_clones(box: Box) -> None:
    probe = box.rootfs / "probe.py"
    probe.write_text(
        "import ctypes, errno, socket\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "def sc(*a):\n"
        "    r = libc.syscall(*[ctypes.c_long(x) for x in a])\n"
        "    return 'ok' if r >= 0 else errno.errorcode[ctypes.get_errno()]\n"
        "def sock(fam, typ):\n"
        "    try: socket.socket(fam, typ, 0).close(); return 'ok'\n"
        "    except OSError as e: return errno.errorcode[e.errno]\n"
        "print('alg', sock(38, socket.SOCK_SEQPACKET))\n"
        "print('vsock', sock(40, socket.SOCK_STREAM))\n"
        "print('inet', sock(socket.AF_INET, socket.SOCK_STREAM))\n"
        "print('keyctl', sc(250, 0, 0, 0, 0, 0))\n"
        "print('io_uring_setup', sc(425, 1, 0))\n"
        "print('clone_newuser', sc(56, 0x10000000 | 17, 0, 0, 0, 0))\n"
        "print('clone3', sc(435, 0, 0))\n"
    )
    usr = spec.MountSpec("/usr", "bind", "/usr", ("ro",))
    cid, code = box.run(["/usr/bin/python3", "/probe.py"], mounts=[usr])
    assert code == 0, box.log(cid)
    got = dict(t.split() for s, t in box.log(cid) if s == "stdout")
    assert got["inet"] == "ok"
    assert got["alg"] != "ok" and got["vsock"] != "ok"
    assert got["keyctl"] == "EPERM" and got["io_uring_setup"] == "EPERM" and got["clone_newuser"] == "EPERM"
    assert got["clone3"] == "ENOSYS"


def _cgroup_file(cid: str, controller: str, name: str) -> Path:
    if cgroups.detect_mode() == cgroups.V2:
        return cgroups.ROOT / cgroups.PARENT / cid / name
    return cgroups.ROOT / controller / cgroups.PARENT / cid / name


def test_pids_limit_contains_a_fork_loop(box: Box) -> None:
    cid, code = box.run(
        ["sh", "-c", "i=0; while [ $i -lt 60 ]; do sleep 30 & i=$((i+1)); done; echo escaped"], pids_limit=20
    )
    # ash gives up when fork fails; the group (read before runc delete) shows the kernel refused forks.
    assert code != 0
    assert ("stdout", "escaped") not in box.log(cid)
    assert any("fork" in t for s, t in box.log(cid) if s == "stderr")
    events = dict(line.split() for line in _cgroup_file(cid, "pids", "pids.events").read_text().splitlines())
    assert int(events["max"]) > 0
    peak = _cgroup_file(cid, "pids", "pids.peak")
    if peak.exists():
        assert int(peak.read_text()) <= 20


def test_memory_limit_oom_kills_and_is_reported(box: Box) -> None:
    limit = 24 << 20
    # The shell keeps the command substitution's output in its own memory, so the shell (PID 1) is
    # the biggest process in the group and the one the OOM killer picks.
    cid = box.create(
        ["sh", "-c", "x=$(yes aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa | head -c 200000000); echo survived"],
        memory_bytes=limit,
        memory_swap=limit,
    )
    assert cgroups.read_stats(cid).memory_limit == limit
    box.runc.start(cid)
    assert box.wait(cid, timeout=60) == 137
    assert cgroups.oom_killed(cid)
    assert ("stdout", "survived") not in box.log(cid)


def test_stats_of_a_running_container(box: Box) -> None:
    cid = box.create(["sleep", "30"])
    box.runc.start(cid)
    # `runc start` returns before runc's init threads are gone; wait for the one sleep process.
    stats = wait_until(
        lambda: (seen := cgroups.read_stats(cid)).pids_current == 1 and seen,
        timeout=5,
        interval=0.01,
        what="one process in the container's cgroup",
    )
    assert stats.memory_usage and stats.cpu_usage_ns is not None
    assert box.runc.ps(cid) == [box.runc.state(cid).pid]
    assert not cgroups.oom_killed(cid)


def test_attach_socket_carries_stdin_and_stdout(box: Box) -> None:
    cid = box.create(["cat"], stdin=True)
    sock = conmon.attach(conmon.attach_socket_path(box.bundle(cid)))
    try:
        box.runc.start(cid)
        sock.send(b"hello\n")
        sock.settimeout(10)
        stream, data = conmon.split_packet(sock.recv(conmon.ATTACH_BUFFER))
        assert (stream, data) == (conmon.STREAM_STDOUT, b"hello\n")
        # Closing our side closes the container's stdin: cat sees EOF and exits 0.
        sock.shutdown(2)
    finally:
        sock.close()
    assert box.wait(cid) == 0


def test_terminal_exec_gets_a_pty_over_the_console_socket(box: Box) -> None:
    cid = box.create(["sleep", "30"])
    box.runc.start(cid)
    config = json.loads((box.bundle(cid) / "config.json").read_text())
    process = dict(config["process"], args=["sh"], terminal=True, env=["PATH=/bin", "TERM=xterm"])
    process_json = box.bundle(cid) / "exec.json"
    process_json.write_text(json.dumps(process))
    with runc.ConsoleSocket(box.bundle(cid) / "cs.sock") as cs:
        box.runc.exec(
            cid,
            process_json=process_json,
            pid_file=box.bundle(cid) / "exec.pid",
            console_socket=cs.runc_path,
            detach=True,
        )
        master = cs.receive()
    try:
        os.write(master, b"echo $((6*7))\n")
        out = b""
        deadline = time.monotonic() + 10
        while b"42\r\n" not in out:
            assert time.monotonic() < deadline, out
            out += os.read(master, 4096)
        os.write(master, b"exit\n")
    finally:
        os.close(master)
    # runc exec -d leaves the process to our subreaper; an unreaped exec zombie keeps the pid
    # namespace (and so the container's init) from finishing, and `runc delete -f` then times out.
    exec_pid = int((box.bundle(cid) / "exec.pid").read_text())
    assert conmon.reap(exec_pid, timeout=10)


def test_terminal_container_is_driven_through_attach_and_resized_through_ctl(box: Box) -> None:
    cid = box.create(["sh"], terminal=True, stdin=True)
    sock = conmon.attach(conmon.attach_socket_path(box.bundle(cid)))
    sock.settimeout(10)

    def until(needle: bytes) -> bytes:
        out = b""
        while needle not in out:
            stream, data = conmon.split_packet(sock.recv(conmon.ATTACH_BUFFER))
            assert data, out
            assert stream == conmon.STREAM_STDOUT  # a terminal has one stream
            out += data
        return out

    try:
        box.runc.start(cid)
        sock.send(b"echo $((6*7))\n")
        until(b"42\r\n")
        conmon.resize(conmon.ctl_path(box.bundle(cid)), 30, 100)

        def new_size_seen() -> bool:  # conmon applies the size asynchronously
            sock.send(b"stty size; echo end$((6*7))\n")
            return b"30 100" in until(b"end42\r\n")

        wait_until(new_size_seen, interval=0.05, what="the new window size inside the container")
        sock.send(b"exit 3\n")
    finally:
        sock.close()
    assert box.wait(cid) == 3


def test_log_rotation_keeps_every_line(box: Box) -> None:
    cid = box.create(["sh", "-c", "echo one; echo two; read x; echo three"], stdin=True)
    sock = conmon.attach(conmon.attach_socket_path(box.bundle(cid)))
    try:
        box.runc.start(cid)
        log = box.bundle(cid) / "ctr.log"
        wait_until(lambda: len(list(logfile.read_log(log))) >= 2, interval=0.01, what="the first two lines")
        logfile.rotate(log, keep=3, reopen=lambda: conmon.reopen_log(conmon.ctl_path(box.bundle(cid))))
        sock.send(b"go\n")
        assert box.wait(cid) == 0
    finally:
        sock.close()
    assert [p.name for p in logfile.log_files(log)] == ["ctr.log.1", "ctr.log"]
    assert [t for _, t in box.log(cid)] == ["one", "two", "three"]


def test_conmon_reports_a_failing_create(box: Box) -> None:
    from engine.errors import RuntimeFailure

    with pytest.raises(RuntimeFailure) as info:
        box.create(
            ["/no/such/binary"],
            cwd="/does-not-exist-either",
            rlimits=[spec.Rlimit("RLIMIT_NOFILE", 1, 1 << 40)],
        )
    assert "rlimit" in str(info.value) or "creating container" in str(info.value)


def test_runc_reports_a_gone_container(box: Box) -> None:
    assert box.runc.state("tnosuchthing") is None
    with pytest.raises(ContainerGone):
        box.runc.delete("tnosuchthing")


def test_this_hosts_runc_gets_the_cve_warning(box: Box) -> None:
    line, parsed = box.runc.version()
    assert parsed is not None
    if parsed[:3] < (1, 2, 8):
        assert runc.check_version(parsed) is not None
