"""Debian's docker-compose 1.29 brings a two-service project up and down through Berth's socket."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.api.conftest import ApiServer
from tests.conftest import require
from tests.polling import wait_until

COMPOSE = "/usr/bin/docker-compose"

COMPOSE_FILE = """\
version: "3.8"
services:
  web:
    build: ./web
    image: btcompose-web:1
    volumes:
      - data:/data
    networks:
      - back
  client:
    image: busybox
    command: ["sh", "-c", "while true; do timeout 5 wget -q -O - http://web:8080/ ; sleep 0.5; done"]
    depends_on:
      - web
    networks:
      - back
volumes:
  data: {}
networks:
  back: {}
"""

WEB_DOCKERFILE = """\
FROM busybox
RUN mkdir /www && echo hello-from-web > /www/index.html
CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]
"""


def _compose(api: ApiServer, project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [COMPOSE, "-p", "btc", *args],
        cwd=project,
        env=api.env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, (
        f"docker-compose {args}: {result.stdout}\n{result.stderr}\n{api.log_tail()}"
    )
    return result


def test_compose_up_ps_logs_down(api: ApiServer, tmp_path: Path) -> None:
    require(Path(COMPOSE).exists(), "docker-compose is not installed")
    project = tmp_path / "proj"
    (project / "web").mkdir(parents=True)
    (project / "docker-compose.yml").write_text(COMPOSE_FILE)
    (project / "web" / "Dockerfile").write_text(WEB_DOCKERFILE)
    try:
        _compose(api, project, "up", "-d")
        ps = _compose(api, project, "ps").stdout
        assert "btc_web_1" in ps and "btc_client_1" in ps, ps
        assert ps.count(" Up ") >= 2 or ps.count("Up") >= 2, ps
        wait_until(
            lambda: "hello-from-web" in _compose(api, project, "logs", "--no-color", "client").stdout,
            timeout=60,
            interval=0.5,
            what="the client's log to show the web server's answer",
        )
        assert "btc_data" in api.docker("volume", "ls", "-q").stdout
        assert "btc_back" in api.docker("network", "ls", "--format", "{{.Name}}").stdout
    finally:
        _compose(api, project, "down", "-v")
    assert api.docker("ps", "-aq").stdout.strip() == ""
    assert "btc_data" not in api.docker("volume", "ls", "-q").stdout
    assert "btc_back" not in api.docker("network", "ls", "--format", "{{.Name}}").stdout
    api.docker("rmi", "btcompose-web:1")
    shutil.rmtree(project, ignore_errors=True)
