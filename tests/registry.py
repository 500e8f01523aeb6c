"""Debian's docker-registry on 127.0.0.1, for tests that pull and push (a real registry server)."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import require
from tests.polling import wait_until

REGISTRY_BIN = "/usr/bin/docker-registry"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningRegistry:
    netloc: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def start_registry(directory: Path, *, htpasswd: Path | None = None) -> RunningRegistry:
    require(
        os.access(REGISTRY_BIN, os.X_OK), f"{REGISTRY_BIN} is not installed (apt-get install docker-registry)"
    )
    port = free_port()
    (directory / "data").mkdir(exist_ok=True)
    config = [
        "version: 0.1",
        "log:",
        "  level: error",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {directory / 'data'}",
        "http:",
        f"  addr: 127.0.0.1:{port}",
    ]
    if htpasswd is not None:
        config += ["auth:", "  htpasswd:", "    realm: berth-test", f"    path: {htpasswd}"]
    (directory / "config.yml").write_text("\n".join(config) + "\n")
    log = directory / "registry.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [REGISTRY_BIN, "serve", str(directory / "config.yml")], stdout=out, stderr=out
        )
    running = RunningRegistry(f"127.0.0.1:{port}", proc, log)

    def answers() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"docker-registry exited: {log.read_text()[-2000:]}")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            conn.request("GET", "/v2/")
            conn.getresponse().read()
        finally:
            conn.close()
        return True

    try:
        wait_until(answers, timeout=15, what="docker-registry to listen", ignoring=(OSError,))
    except AssertionError:
        running.stop()
        raise
    return running
