"""A real `berth serve-api` on a private engine root, driven by the real docker CLI and raw HTTP.

One server per test session (setting one up takes seconds); after every test the containers,
volumes and networks it made are removed through the CLI and the leak guard checks the host.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, TMP_PREFIX, net_tag, require, require_root, unmount_under
from tests.polling import wait_until

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over the API's unix socket (the Host header is what the docker CLI sends)."""

    def __init__(self, path: str, timeout: float = 30) -> None:
        super().__init__("api.moby.localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


@dataclass
class ApiServer:
    root: Path
    run: Path
    socket: Path
    log: Path
    env: dict[str, str]  # for the docker CLI and the berth CLI
    docker_config: Path

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    def docker(
        self, *args: str, check: bool = True, input: str | bytes | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """The real docker CLI against this server."""
        text = not isinstance(input, bytes)
        result = subprocess.run(
            [DOCKER, *args],
            env=self.env,
            input=input,
            capture_output=True,
            text=text,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)} exited {result.returncode}\nstdout: {result.stdout!r}\n"
                f"stderr: {result.stderr!r}\nserver log tail:\n{self.log_tail()}"
            )
        return result

    def berth(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """The berth CLI, working in-process on the same engine root."""
        result = subprocess.run(
            [sys.executable, str(REPO / "manage.py"), "berth", *args],
            cwd=REPO,
            env={**self.env, "BERTH_MONITOR": "0"},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"berth {' '.join(args)} exited {result.returncode}: {result.stderr}")
        return result

    def connection(self, timeout: float = 30) -> UnixHTTPConnection:
        return UnixHTTPConnection(str(self.socket), timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | dict[str, Any] | list[Any] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> tuple[int, dict[str, str], bytes]:
        """One raw HTTP request; returns (status, headers with lower-case names, body)."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            headers = {"Content-Type": "application/json", **(headers or {})}
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            data = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, data
        finally:
            conn.close()

    def get_json(self, path: str) -> Any:
        status, _, data = self.request("GET", path)
        assert status == 200, (status, data)
        return json.loads(data)

    def log_tail(self, size: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def clean(self) -> None:
        """Remove every container, volume and user network, and this engine's host network state."""
        ids = self.berth("ps", "-aq", check=False).stdout.split()
        if ids:
            self.berth("rm", "-f", "-v", *ids, check=False)
        self.berth("volume", "prune", "-a", "-f", check=False)
        self.berth("network", "prune", "-f", check=False)
        self.berth("network", "teardown", check=False)


def wait_for_socket(path: Path, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    def listening() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"serve-api exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.connect(str(path))
        return True

    try:
        wait_until(listening, timeout=timeout, what=f"serve-api to listen on {path}", ignoring=(OSError,))
    except AssertionError as exc:
        raise RuntimeError(f"{exc}\n{log.read_text(errors='replace')}") from None


@pytest.fixture(scope="session")
def api_server() -> Iterator[ApiServer]:
    require_root()
    require(Path(DOCKER).exists(), "the docker CLI is not installed")
    root = Path(tempfile.mkdtemp(prefix=TMP_PREFIX + "api-", dir="/tmp"))
    run = Path(
        tempfile.mkdtemp(prefix=TMP_PREFIX + "api-", dir="/run" if os.access("/run", os.W_OK) else "/tmp")
    )
    docker_config = root / "docker-config"
    docker_config.mkdir()
    log = root / "serve-api.log"
    env = {
        **os.environ,
        "BERTH_ROOT": str(root),
        "BERTH_RUN": str(run),
        "DJANGO_SETTINGS_MODULE": "dashboard.settings",
        "PYTHONUNBUFFERED": "1",
        "BERTH_MONITOR": "0",
        "BERTH_NET_TAG": net_tag(),
        "DOCKER_HOST": f"unix://{run}/docker.sock",
        "DOCKER_BUILDKIT": "0",
        "DOCKER_CONFIG": str(docker_config),
        "DOCKER_CLI_HINTS": "false",
    }
    env.pop("DATABASE_URL", None)
    server = ApiServer(
        root=root, run=run, socket=run / "docker.sock", log=log, env=env, docker_config=docker_config
    )
    proc: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            [sys.executable, str(REPO / "manage.py"), "setup"],
            cwd=REPO,
            env=env,
            check=True,
            capture_output=True,
        )
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, str(REPO / "manage.py"), "berth", "serve-api"],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for_socket(server.socket, proc, log)
        yield server
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        server.clean()
        unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(run, ignore_errors=True)


@pytest.fixture
def api(api_server: ApiServer, leak_guard: None) -> Iterator[ApiServer]:
    """The shared server; whatever the test made is removed after it, then the leak guard looks."""
    yield api_server
    api_server.clean()
