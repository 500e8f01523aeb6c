"""Benchmark: the dashboard's containers page, log delivery over the websocket, terminal keystroke echo.

    .venv/bin/python bench/dashboard.py [--records 1000] [--requests 50] [--log-lines 100000]
                                        [--log-reps 5] [--keystrokes 500] [--profile] [--profile-server]
                                        [--huge-lines 1000000] [--no-browser]

Over 400 lines because it carries its own websocket client and the daphne harness every part shares.

Everything runs against one private engine (fresh BERTH_ROOT and BERTH_RUN, prepared by the `setup`
management command), and every figure is printed next to a baseline measured in the same run:

  page       GET /containers/ as a signed-in viewer with N container records (made straight through
             the ORM: records only, nothing runs), through Django's test Client in-process, after one
             warm-up; median and p95. Baselines: the events page (a full page in the same layout)
             and /engine/status/ (a small login-required partial). Goal: <= 100 ms median.
  logs       a real container writes 100,000 lines; the whole log is read over
             ws/containers/<id>/logs/?tail=all from a real daphne server (this file's stdlib
             websocket client, signed in through POST /login/), counting lines until all arrived:
             first while the container idles (the consumer follows the live file), then after it
             exited (the issue's case; also until the "end" frame). Baseline: reading the same file
             with engine.runtime.logfile.read_log in this process. Goal: ratio >= 0.5. A short
             delivery is printed as TRUNCATED; tail=1000 (the page's default) is checked too.
  terminal   single keystrokes as {"type": "stdin"} frames over ws/containers/<id>/terminal/ (token
             from the CSRF-protected POST) into /bin/sh in a running container, timed until the
             echo arrives; median and p99. Baseline: the same keystroke through a pty opened in
             this process with engine.services.execs.open_terminal. Goal: <= 10 ms p99 on loopback.
  browser    the Logs tab in Debian's Chromium (Playwright) while containers write 100,000 and
             1,000,000 lines as fast as they can (bench/logs_browser.py): a 50 ms heartbeat's p99 gap,
             Pause's answer, first-to-last line on screen against the bare socket, server-side
             search over the 1,000,000-line log against grep, the page's JS heap after it. Skipped,
             with a line saying so, without /usr/bin/chromium or with --no-browser.

--profile adds cProfile listings: the containers page (in-process) and, for the logs, the server's
per-line work (containerinfo.logs + the consumer's framing + json.dumps) run in this process.
--profile-server runs daphne under cProfile (its main thread: the event loop) and prints that at the
end; the figures of such a run carry the profiler's overhead.
Everything (containers, the server process, mounts, temp dirs) is removed at the end, even after a
failure; only processes this script started are signalled.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import hashlib
import http.client
import json
import math
import os
import pstats
import re
import secrets
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.polling import settle  # noqa: E402 — the tests' one way to wait for a condition

WRITER = 'i=0; while [ $i -lt {n} ]; do echo "line $i some text to make it longer"; i=$((i+1)); done'


# -- small helpers ---------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def profile(label: str, fn: Callable[[], object], top: int = 25) -> None:
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    print(f"\n--- profile: {label} (top {top} by own time) ---")
    pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(top)


# -- a minimal RFC 6455 client (no websocket library in the venv) -----------------------------------


class WebSocketClosed(Exception):
    def __init__(self, code: int | None) -> None:
        super().__init__(f"websocket closed ({code})")
        self.code = code


class WebSocket:
    """Blocking client: masked frames out, reassembled messages in; answers pings."""

    TEXT, BINARY, CLOSE, PING, PONG = 1, 2, 8, 9, 10

    def __init__(self, port: int, path: str, *, cookie: str, timeout: float = 30.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: http://127.0.0.1:{port}\r\nCookie: {cookie}\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        self.buf = bytearray()
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        self.buf = bytearray(rest)
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status:
            raise RuntimeError(f"websocket handshake for {path} refused: {status.decode(errors='replace')}")
        expected = base64.b64encode(
            hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
        )
        if expected not in head:
            raise RuntimeError("websocket handshake: bad Sec-WebSocket-Accept")

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise WebSocketClosed(None)
        self.buf += chunk

    def _need(self, n: int) -> None:
        while len(self.buf) < n:
            self._fill()

    def _frame(self) -> tuple[bool, int, bytes]:
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        length, offset = b1 & 0x7F, 2
        if length == 126:
            self._need(4)
            length, offset = struct.unpack_from("!H", self.buf, 2)[0], 4
        elif length == 127:
            self._need(10)
            length, offset = struct.unpack_from("!Q", self.buf, 2)[0], 10
        if b1 & 0x80:
            raise RuntimeError("server frames must not be masked")
        self._need(offset + length)
        payload = bytes(self.buf[offset : offset + length])
        del self.buf[: offset + length]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def recv(self) -> tuple[int, bytes]:
        """The next whole data message as (opcode, payload); raises WebSocketClosed on close."""
        parts: list[bytes] = []
        opcode = 0
        while True:
            fin, op, payload = self._frame()
            if op == self.CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                try:
                    self._send(self.CLOSE, payload[:2])
                except OSError:
                    pass
                raise WebSocketClosed(code)
            if op == self.PING:
                self._send(self.PONG, payload)
                continue
            if op == self.PONG:
                continue
            if op:
                opcode = op
            parts.append(payload)
            if fin:
                return opcode, b"".join(parts)

    def wait_readable(self, timeout: float) -> bool:
        return bool(self.buf) or bool(select.select([self.sock], [], [], timeout)[0])

    def send_text(self, text: str) -> None:
        self._send(self.TEXT, text.encode())

    def _send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def close(self) -> None:
        try:
            self._send(self.CLOSE, struct.pack("!H", 1000))
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                self.recv()
        except (WebSocketClosed, OSError, RuntimeError):
            pass
        finally:
            self.sock.close()


# -- the server: daphne on the private root, and an HTTP session -----------------------------------


class Server:
    """`daphne dashboard.asgi:application` on a free loopback port, signed in as one user."""

    def __init__(self, root: Path, *, profile_to: Path | None = None) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.log = root / "daphne.log"
        env = {**os.environ, "BERTH_MONITOR": "1", "PYTHONUNBUFFERED": "1"}
        self.profile_to = profile_to
        prefix = ["-m", "cProfile", "-o", str(profile_to)] if profile_to else []
        daphne = ["-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "dashboard.asgi:application"]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, *prefix, *daphne],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.cookies: dict[str, str] = {}

        def answers() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daphne exited: {self.log.read_text(errors='replace')[-3000:]}")
            return self.request("GET", "/login/")[0] == 200

        if not settle(answers, timeout=60, interval=0.2, ignoring=(OSError,)):
            raise RuntimeError(f"daphne did not answer: {self.log.read_text(errors='replace')[-3000:]}")

    @property
    def cookie(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            all_headers = {"Origin": f"http://127.0.0.1:{self.port}", **(headers or {})}
            if self.cookies:
                all_headers["Cookie"] = self.cookie
            data = None
            if body is not None:
                data = urlencode(body).encode()
                all_headers["Content-Type"] = "application/x-www-form-urlencoded"
            conn.request(method, path, body=data, headers=all_headers)
            response = conn.getresponse()
            for name, value in response.getheaders():
                if name.lower() == "set-cookie":
                    key, _, rest = value.partition("=")
                    self.cookies[key.strip()] = rest.split(";", 1)[0]
            return response.status, response.read()
        finally:
            conn.close()

    def log_in(self, username: str, password: str) -> None:
        """POST /login/ with the form's CSRF token, as a browser does."""
        status, page = self.request("GET", "/login/")
        match = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        if status != 200 or match is None:
            raise RuntimeError(f"login page: {status}")
        form = {"username": username, "password": password, "csrfmiddlewaretoken": match.group(1).decode()}
        status, _ = self.request("POST", "/login/", form)
        if status != 302 or "sessionid" not in self.cookies:
            raise RuntimeError(f"login as {username} failed: {status}")

    def terminal_url(self, container_id: str) -> str:
        status, body = self.request(
            "POST",
            f"/containers/{container_id}/terminal/token/",
            {"command": "/bin/sh"},
            headers={"X-CSRFToken": self.cookies["csrftoken"]},
        )
        if status != 200:
            raise RuntimeError(f"terminal token: {status} {body[:300]!r}")
        return str(json.loads(body)["url"])

    def websocket(self, path: str) -> WebSocket:
        return WebSocket(self.port, path, cookie=self.cookie)

    def stop(self) -> None:
        if self.proc.poll() is None and self.profile_to:
            self.proc.send_signal(signal.SIGINT)  # twisted stops the reactor; cProfile then writes its file
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


# -- 1. the containers page ------------------------------------------------------------------------


def time_get(client: Any, path: str, requests: int) -> list[float]:
    response = client.get(path)  # warm-up: templates compiled, caches filled
    if response.status_code != 200:
        raise RuntimeError(f"GET {path} → {response.status_code}")
    samples = []
    for _ in range(requests):
        t0 = time.perf_counter()
        response = client.get(path)
        samples.append(time.perf_counter() - t0)
        assert response.status_code == 200
    return samples


def bench_page(records: int, requests: int, want_profile: bool) -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.test import Client

    from engine.models import Container
    from tests.integration.test_dashboard_containers import fake_image, make_records

    viewer = get_user_model().objects.create_user("bench-viewer")
    viewer.groups.add(Group.objects.get(name="viewers"))
    image = fake_image()
    t0 = time.perf_counter()
    made = make_records(records, image=image, prefix="bench")
    print(f"[page] {records} container records made through the ORM in {time.perf_counter() - t0:.2f} s")
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(viewer)
    try:
        page = time_get(client, "/containers/", requests)
        events = time_get(client, "/events/", requests)
        status = time_get(client, "/engine/status/", requests)
        size = len(client.get("/containers/").content)
        print(
            f"[page] GET /containers/ ({records} records, {size} bytes), {requests} requests after 1 warm-up:"
        )
        print(
            f"         median {ms(statistics.median(page))}   p95 {ms(percentile(page, 95))}   (goal ≤ 100 ms median)"
        )
        for label, base in (("/events/ (full page)", events), ("/engine/status/ (partial)", status)):
            ratio = statistics.median(page) / statistics.median(base)
            print(
                f"       baseline {label}: median {ms(statistics.median(base))}   p95 {ms(percentile(base, 95))}"
                f"   → containers page is {ratio:.2f}× it"
            )
        if want_profile:
            profile("20 × GET /containers/", lambda: [client.get("/containers/") for _ in range(20)])
    finally:
        Container.objects.filter(id__in=[c.id for c in made]).delete()
        image.delete()
        viewer.delete()


# -- 2. log delivery over the websocket ------------------------------------------------------------


def run_container(name: str, command: tuple[str, ...]) -> Any:
    from engine.services import containers, lifecycle
    from engine.services.options import ContainerOptions

    container = containers.create(
        ContainerOptions(image="busybox", name=name, command=command, network="none")
    )
    lifecycle.start(container.id)
    return container


class Reading(NamedTuple):
    """One read of the logs socket: seconds to the last expected line (or to the stream's end if it
    came short), to the "end" frame (0 if not awaited), to the first "lines" frame, seconds this
    client spent in json.loads, and the lines counted."""

    total: float
    end: float
    first: float
    parse: float
    lines: int


def read_over_socket(
    server: Server, container_id: str, expected: int, *, tail: str = "all", until_end: bool = False
) -> Reading:
    """Open the logs socket with ?tail= and count lines until `expected` arrived (and, with
    `until_end`, until the "end" frame), or until the stream ended."""
    t0 = time.perf_counter()
    ws = server.websocket(f"/ws/containers/{container_id}/logs/?tail={tail}")
    count, t_last, t_end, t_first, parse = 0, 0.0, 0.0, 0.0, 0.0
    try:
        while count < expected or (until_end and not t_end):
            op, data = ws.recv()
            if op != WebSocket.TEXT:
                continue
            p0 = time.perf_counter()
            message = json.loads(data)
            parse += time.perf_counter() - p0
            if message["type"] == "lines":
                count += len(message["lines"])
                t_first = t_first or p0 - t0
                if count >= expected and not t_last:
                    t_last = time.perf_counter() - t0
            elif message["type"] == "end":
                t_end = time.perf_counter() - t0
            else:
                raise RuntimeError(f"logs socket: {message}")
    except WebSocketClosed as exc:
        if exc.code != 1000:
            raise
    finally:
        t_last = t_last or time.perf_counter() - t0
        ws.close()
    return Reading(t_last, t_end, t_first, parse, count)


def count_lines(path: Path) -> int:
    from engine.runtime import logfile

    return sum(1 for _ in logfile.read_log(path))


def compare(
    label: str, server: Server, container_id: str, path: Path, lines: int, reps: int, exited: bool
) -> None:
    """Time the whole log over the socket against read_log of the file, `reps` times each, interleaved."""
    direct, readings = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        n = count_lines(path)
        direct.append(time.perf_counter() - t0)
        if n != lines:
            raise RuntimeError(f"read_log gave {n} lines, expected {lines}")
        readings.append(read_over_socket(server, container_id, lines, until_end=exited))
    d = statistics.median(direct)
    print(f"[logs] {label}, whole log (tail=all), median of {reps}:")
    short = [r.lines for r in readings if r.lines != lines]
    if short:
        print(
            f"         websocket: TRUNCATED, delivered {', '.join(f'{n:,}' for n in short)} of {lines:,} lines"
        )
        print(f"         baseline read_log()  {d:7.3f} s   {lines / d:>10,.0f} lines/s")
        return
    w = statistics.median(r.total for r in readings)
    per_run = ", ".join(f"{x / r.total:.2f}" for x, r in zip(direct, readings, strict=True))
    print(f"         websocket            {w:7.3f} s   {lines / w:>10,.0f} lines/s")
    print(f"         baseline read_log()  {d:7.3f} s   {lines / d:>10,.0f} lines/s")
    print(f"         ratio websocket/direct {d / w:.2f}   (goal ≥ 0.5)   per run: {per_run}")
    first = statistics.median(r.first for r in readings)
    parse = statistics.median(r.parse for r in readings)
    after = f"; 'end' after {statistics.median(r.end for r in readings):.3f} s" if exited else ""
    print(
        f"         (first lines after {ms(first)}; this client's json.loads took {ms(parse)} in all{after})"
    )


def bench_logs(server: Server, lines: int, reps: int, want_profile: bool, created: list[str]) -> None:
    """The whole log of a container that wrote `lines` lines: first while it idles (the socket follows
    the live file), then once it has exited (the issue's case), plus the page's default tail=1000."""
    from engine.services import bundle, containerinfo, lifecycle

    container = run_container("bench-logs", ("sh", "-c", WRITER.format(n=lines) + "; exec sleep 100000"))
    created.append(container.id)
    path = bundle.paths(container.id).log
    t0 = time.perf_counter()
    if not settle(lambda: count_lines(path) >= lines, timeout=600, interval=0.5):
        raise RuntimeError("the writer did not finish in 10 minutes")
    size = sum(f.stat().st_size for f in log_files(path))
    print(
        f"\n[logs] container wrote {lines} lines within {time.perf_counter() - t0:.1f} s; log {size / 1e6:.1f} MB"
    )
    compare("running container (follow)", server, container.id, path, lines, reps, exited=False)
    lifecycle.kill(container.id)
    lifecycle.wait(container.id, timeout=60)
    compare("exited container", server, container.id, path, lines, reps, exited=True)
    reading = read_over_socket(server, container.id, 1000, tail="1000", until_end=True)
    engine_count = sum(
        1 for _ in containerinfo.logs(container.id, containerinfo.LogQuery(follow=True, tail=1000))
    )
    verdict = "complete" if reading.lines == 1000 else "TRUNCATED"
    print(
        f"[logs] exited container, tail=1000 (the page's default): socket delivered {reading.lines:,} of 1,000"
        f" lines in {ms(reading.total)} ({verdict}); containerinfo.logs(follow=True, tail=1000) yields"
        f" {engine_count:,}"
    )
    if want_profile:
        from dashboard.consumers.logs import BATCH, LineFramer

        def server_side_work() -> None:
            frame, batch = LineFramer(), []
            for line in containerinfo.logs(container.id, containerinfo.LogQuery(tail=None)):
                batch.append(frame(line))
                if len(batch) >= BATCH:
                    json.dumps({"type": "lines", "lines": batch})
                    batch = []

        profile(
            "server-side per-line work of the logs socket (read + frame + json), in-process", server_side_work
        )


def log_files(path: Path) -> list[Path]:
    from engine.runtime import logfile

    return logfile.log_files(path)


# -- 3. terminal round trip ------------------------------------------------------------------------


KEYS = "abcdefghijklmnopqrstuvwxyz"
CLEAR_EVERY = 40  # ^U before the line wraps, so every echo is the one character (no redraws)


def echo_times(
    send: Callable[[bytes], None], read_until: Callable[[bytes, float], None], n: int
) -> list[float]:
    samples = []
    for i in range(n):
        if i and i % CLEAR_EVERY == 0:
            send(b"\x15")
            read_until(b"", 0.05)  # drain the redraw
        key = KEYS[i % len(KEYS)].encode()
        t0 = time.perf_counter()
        send(key)
        read_until(key, 5.0)
        samples.append(time.perf_counter() - t0)
    send(b"\x15")
    read_until(b"", 0.05)
    return samples


def ws_terminal(server: Server, container_id: str, warmup: int, n: int) -> list[float]:
    ws = server.websocket(server.terminal_url(container_id))
    try:
        while True:  # wait for {"type": "ready"}
            op, data = ws.recv()
            if op == WebSocket.TEXT and json.loads(data).get("type") == "ready":
                break

        def send(key: bytes) -> None:
            ws.send_text(json.dumps({"type": "stdin", "data": key.decode()}))

        def read_until(key: bytes, timeout: float) -> None:
            deadline = time.perf_counter() + timeout
            while True:
                left = deadline - time.perf_counter()
                if left <= 0 or not ws.wait_readable(left):
                    if key:
                        raise RuntimeError(f"no echo of {key!r} over the socket")
                    return
                op, data = ws.recv()
                if op == WebSocket.TEXT and json.loads(data).get("type") in ("exit", "error"):
                    raise RuntimeError(f"terminal socket: {data!r}")
                if key and op == WebSocket.BINARY and key in data:
                    return

        read_until(b"", 0.5)  # the prompt
        echo_times(send, read_until, warmup)
        return echo_times(send, read_until, n)
    finally:
        ws.close()


def pty_terminal(container_id: str, warmup: int, n: int) -> list[float]:
    from engine.services import execs

    terminal = execs.open_terminal(container_id, execs.ExecRequest(command=("/bin/sh",), tty=True))
    fd = terminal.master_fd
    try:

        def send(key: bytes) -> None:
            os.write(fd, key)

        def read_until(key: bytes, timeout: float) -> None:
            deadline = time.perf_counter() + timeout
            while True:
                left = deadline - time.perf_counter()
                if left <= 0 or not select.select([fd], [], [], left)[0]:
                    if key:
                        raise RuntimeError(f"no echo of {key!r} from the pty")
                    return
                if key and key in os.read(fd, 65536):
                    return
                if not key:
                    os.read(fd, 65536)

        read_until(b"", 0.5)
        echo_times(send, read_until, warmup)
        return echo_times(send, read_until, n)
    finally:
        execs.close_session(terminal)


def bench_terminal(server: Server, keystrokes: int, created: list[str]) -> None:
    container = run_container("bench-shell", ("sh", "-c", "sleep 100000"))
    created.append(container.id)
    warmup = 50
    over_ws = ws_terminal(server, container.id, warmup, keystrokes)
    direct = pty_terminal(container.id, warmup, keystrokes)
    print(
        f"\n[terminal] keystroke → echo, {keystrokes} samples after {warmup} warm-up, /bin/sh in a running container:"
    )
    print(
        f"         websocket   median {ms(statistics.median(over_ws))}   p99 {ms(percentile(over_ws, 99))}"
        f"   max {ms(max(over_ws))}   (goal ≤ 10 ms p99)"
    )
    print(
        f"         baseline pty (open_terminal in-process)   median {ms(statistics.median(direct))}"
        f"   p99 {ms(percentile(direct, 99))}   max {ms(max(direct))}"
    )
    print(
        f"         websocket/pty: median {statistics.median(over_ws) / statistics.median(direct):.1f}×,"
        f" p99 {percentile(over_ws, 99) / percentile(direct, 99):.1f}×"
    )


# -- set-up and clean-up ---------------------------------------------------------------------------


def unmount_under(path: Path) -> None:
    from tests.conftest import unmount_under as unmount

    unmount(path)


# -- 4. the log view in the browser: bench/logs_browser.py -------------------------------------------


def remove_containers(ids: list[str], root: Path) -> None:
    from engine.services import lifecycle
    from tests.conftest import _processes_with

    for cid in ids:
        try:
            lifecycle.remove(cid, force=True)
        except Exception as exc:  # noqa: BLE001 — clean up the rest regardless
            print(f"warning: removing {cid[:12]} failed: {exc}", file=sys.stderr)
    # conmon's exit commands (other processes of this engine) finish after the container.
    marker = f"BERTH_ROOT={root}\0".encode()
    settle(lambda: not _processes_with(marker), timeout=60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--log-lines", type=int, default=100_000)
    parser.add_argument("--log-reps", type=int, default=5)
    parser.add_argument("--keystrokes", type=int, default=500)
    parser.add_argument(
        "--huge-lines", type=int, default=1_000_000, help="the log for the heap and search figures"
    )
    parser.add_argument("--no-browser", action="store_true", help="skip the log view in Chromium")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the page and the logs' per-line work"
    )
    parser.add_argument(
        "--profile-server",
        action="store_true",
        help="run daphne under cProfile (its event-loop thread) and print it at the end; slows the figures",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root: the logs and terminal parts start real containers", file=sys.stderr)
        return 2

    root = Path(tempfile.mkdtemp(prefix="bt-bd-", dir="/tmp"))
    run = Path(tempfile.mkdtemp(prefix="bt-bd-", dir="/run" if os.access("/run", os.W_OK) else "/tmp"))
    password = secrets.token_urlsafe(18)
    os.environ.update(
        BERTH_ROOT=str(root),
        BERTH_RUN=str(run),
        BERTH_ADMIN_PASSWORD=password,
        DJANGO_SETTINGS_MODULE="dashboard.settings",
        BERTH_MONITOR="0",  # this process is not the server
    )
    os.environ.pop("DATABASE_URL", None)
    server: Server | None = None
    created: list[str] = []
    try:
        import django
        from django.core.management import call_command

        django.setup()
        t0 = time.perf_counter()
        call_command("setup", verbosity=0)  # what `manage.py setup` does: migrate, admin, groups, busybox
        print(f"engine root {root} prepared (migrate, admin, seed) in {time.perf_counter() - t0:.1f} s")

        bench_page(args.records, args.requests, args.profile)

        server = Server(root, profile_to=root / "daphne.prof" if args.profile_server else None)
        server.log_in("admin", password)
        print(f"\ndaphne on 127.0.0.1:{server.port} (pid {server.proc.pid}), signed in as admin")
        bench_logs(server, args.log_lines, args.log_reps, args.profile, created)
        bench_terminal(server, args.keystrokes, created)
        if args.no_browser:
            print("\n[browser] skipped: --no-browser")
        else:
            import logs_browser  # bench/, on sys.path as this script's directory

            logs_browser.run(
                server,
                password,
                args.log_lines,
                args.huge_lines,
                args.log_reps,
                created,
                run_container=run_container,
                websocket_text=WebSocket.TEXT,
                log_files=log_files,
            )
        if args.profile_server:
            server.stop()
            print(
                "\n--- profile: the daphne server's main thread (event loop), whole run, top 30 by own time ---"
            )
            pstats.Stats(str(root / "daphne.prof"), stream=sys.stdout).sort_stats("tottime").print_stats(30)
        return 0
    finally:
        try:
            if server is not None:
                server.stop()  # first: its environment names this root, like the exit commands awaited below
        finally:
            if created:
                remove_containers(created, root)
            unmount_under(root)
            unmount_under(run)
            shutil.rmtree(root, ignore_errors=True)
            shutil.rmtree(run, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
