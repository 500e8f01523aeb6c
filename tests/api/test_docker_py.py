"""docker-py 7's high-level API drives Berth as it drives Docker (a test dependency only)."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator

import pytest

from tests.api.conftest import ApiServer

docker = pytest.importorskip("docker")


@pytest.fixture
def client(api: ApiServer) -> Iterator[docker.DockerClient]:
    c = docker.DockerClient(base_url=api.docker_host, version="1.44", timeout=60)
    yield c
    c.close()


def test_ping_version_info(client: docker.DockerClient) -> None:
    assert client.ping() is True
    assert client.version()["ApiVersion"] == "1.44"
    assert client.info()["OSType"] == "linux"


def test_run_remove_returns_output(client: docker.DockerClient) -> None:
    assert client.containers.run("busybox", ["echo", "hello"], remove=True, network_mode="none") == b"hello\n"


def test_nonzero_exit_raises_container_error(client: docker.DockerClient) -> None:
    with pytest.raises(docker.errors.ContainerError) as caught:
        client.containers.run(
            "busybox", ["sh", "-c", "echo bad >&2; exit 3"], remove=True, network_mode="none"
        )
    assert caught.value.exit_status == 3
    assert b"bad" in (caught.value.stderr or b"")


def test_detached_container_lifecycle_exec_logs(client: docker.DockerClient) -> None:
    container = client.containers.run(
        "busybox", ["sh", "-c", "echo started; sleep 60"], detach=True, name="pyc1", network_mode="none"
    )
    container.reload()
    assert container.status == "running"
    assert container.name == "pyc1"
    assert [c.id for c in client.containers.list(filters={"name": "pyc1"})] == [container.id]
    code, output = container.exec_run(["sh", "-c", "echo from-exec; exit 0"])
    assert (code, output) == (0, b"from-exec\n")
    assert b"started" in container.logs()
    container.pause()
    container.reload()
    assert container.status == "paused"
    container.unpause()
    container.stop(timeout=1)
    assert container.wait(timeout=30)["StatusCode"] in (137, 143)
    container.reload()
    assert container.status == "exited"
    container.remove()
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("pyc1")


def test_volumes_and_networks(client: docker.DockerClient) -> None:
    volume = client.volumes.create("pyvol", labels={"team": "a"})
    assert client.volumes.get("pyvol").attrs["Labels"] == {"team": "a"}
    network = client.networks.create("pynet", driver="bridge", labels={"team": "a"})
    container = client.containers.run(
        "busybox", ["sleep", "60"], detach=True, volumes={"pyvol": {"bind": "/data"}}
    )
    try:
        network.connect(container, aliases=["db"])
        network.reload()
        assert [c.id for c in network.containers] == [container.id]
        network.disconnect(container)
    finally:
        container.remove(force=True)
    network.remove()
    volume.remove()
    assert "pynet" not in [n.name for n in client.networks.list()]
    assert "pyvol" not in [v.name for v in client.volumes.list()]


def test_build_and_tag_and_remove_image(client: docker.DockerClient) -> None:
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        dockerfile = b"FROM busybox\nRUN echo built > /built\nCMD cat /built\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    context.seek(0)
    image, log = client.images.build(fileobj=context, custom_context=True, tag="pybuilt:1", rm=True)
    assert "pybuilt:1" in image.tags
    assert any("Step 2/3" in entry.get("stream", "") for entry in log)
    assert client.containers.run("pybuilt:1", remove=True, network_mode="none") == b"built\n"
    image.tag("pybuilt", "2")
    assert "pybuilt:2" in client.images.get("pybuilt:1").tags
    client.images.remove("pybuilt:2")
    client.images.remove("pybuilt:1")
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("pybuilt:1")
