"""Health check settings through the Docker API: docker-py's and the docker CLI's create options land in
inspect's Config.Healthcheck, bad ones are a 400, and the list's `health` filter is checked.

The containers are only created: running the checks is tests/integration/test_health.py's business.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from tests.api.conftest import ApiServer

docker = pytest.importorskip("docker")

S = 1_000_000_000


@pytest.fixture
def client(api: ApiServer) -> Iterator[docker.DockerClient]:
    c = docker.DockerClient(base_url=api.docker_host, version="1.44", timeout=60)
    yield c
    c.close()


def _name() -> str:
    return f"hc{secrets.token_hex(3)}"


def test_docker_py_healthcheck_shows_in_inspect(client: docker.DockerClient) -> None:
    container = client.containers.create(
        "busybox",
        ["sleep", "300"],
        name=_name(),
        network_mode="none",
        healthcheck={"test": "true", "interval": 2 * S, "timeout": 3 * S, "retries": 4, "start_period": S},
    )
    assert container.attrs["Config"]["Healthcheck"] == {
        "Test": ["CMD-SHELL", "true"],
        "Interval": 2 * S,
        "Timeout": 3 * S,
        "StartPeriod": S,
        "Retries": 4,
    }
    assert "Health" not in container.attrs["State"]  # not started: no health state yet, as in Docker


def test_docker_cli_health_flags_reach_the_config(api: ApiServer) -> None:
    name = _name()
    api.docker("create", "--name", name, "--health-cmd", "exit 0", "--health-interval", "1m", "busybox")
    config = api.get_json(f"/v1.44/containers/{name}/json")["Config"]
    assert config["Healthcheck"]["Test"] == ["CMD-SHELL", "exit 0"]
    assert config["Healthcheck"]["Interval"] == 60 * S
    off = _name()
    api.docker("create", "--name", off, "--no-healthcheck", "busybox")
    assert api.get_json(f"/v1.44/containers/{off}/json")["Config"]["Healthcheck"]["Test"] == ["NONE"]


def test_create_refuses_a_bad_healthcheck(api: ApiServer) -> None:
    for healthcheck, words in (
        ({"Test": ["SHELL", "true"]}, "NONE, CMD or CMD-SHELL"),
        ({"Test": ["CMD-SHELL", "true"], "Interval": 10}, "Healthcheck.Interval cannot be less than 1ms"),
        ({"Retries": -1}, "Healthcheck.Retries cannot be negative"),
    ):
        body = {"Image": "busybox", "Healthcheck": healthcheck}
        status, _, data = api.request("POST", "/v1.44/containers/create", body)
        assert status == 400 and words in json.loads(data)["message"], data


def test_list_filters_by_health(api: ApiServer) -> None:
    name = _name()
    api.docker("create", "--name", name, "--health-cmd", "true", "busybox")

    def listed(value: str) -> list[str]:
        filters = quote(json.dumps({"health": [value], "name": [name]}))
        return [c["Names"][0] for c in api.get_json(f"/v1.44/containers/json?all=1&filters={filters}")]

    assert listed("none") == [f"/{name}"]  # created, never checked
    assert listed("healthy") == []
    status, _, data = api.request("GET", "/v1.44/containers/json?filters=" + quote('{"health":["sick"]}'))
    assert status == 400 and "health=sick" in json.loads(data)["message"]
