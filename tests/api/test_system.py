"""System endpoints through the real docker CLI: info, version, system df, events."""

from __future__ import annotations

import json
import secrets
import selectors
import subprocess
import time

from tests.api.conftest import DOCKER, ApiServer
from tests.polling import wait_until


def _name(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(3)}"


def test_docker_info_shows_the_server_and_its_counts(api: ApiServer) -> None:
    api.berth("create", "--name", _name("c"), "busybox", "true")
    shown = api.docker("info").stdout
    assert "Server Version: 0.8.0" in shown
    assert " Containers: 1\n" in shown and "  Stopped: 1\n" in shown
    assert " Images: 1\n" in shown  # the seeded busybox
    assert "Storage Driver: overlay2" in shown
    assert f"Docker Root Dir: {api.root}" in shown
    assert "Swarm: inactive" in shown


def test_info_answers_the_fields_clients_read(api: ApiServer) -> None:
    info = api.get_json("/v1.44/info")
    assert info["OSType"] == "linux" and info["DefaultRuntime"] == "runc"
    assert info["Runtimes"]["runc"]["path"].endswith("runc")
    assert info["Swarm"]["LocalNodeState"] == "inactive"
    assert info["Plugins"]["Network"] == ["bridge", "host", "null"]
    assert info["NCPU"] >= 1 and info["MemTotal"] > 0
    assert info["CgroupDriver"] == "cgroupfs" and info["CgroupVersion"] in ("1", "2")
    assert "name=seccomp,profile=builtin" in info["SecurityOptions"]
    # A stable ID: the second answer names the same engine.
    assert api.get_json("/info")["ID"] == info["ID"]


def test_docker_version_shows_engine_and_runtime(api: ApiServer) -> None:
    shown = api.docker("version").stdout
    assert "Server: Berth" in shown and "Engine:" in shown and "API version:" in shown
    assert "runc:" in shown and "conmon:" in shown
    fields = api.docker(
        "version", "--format", "{{.Server.Os}}/{{.Server.Arch}} {{.Server.KernelVersion}}"
    ).stdout
    assert fields.startswith("linux/") and fields.split()[1]


def test_system_df_counts_images_containers_and_volumes(api: ApiServer) -> None:
    volume, container = _name("vol"), _name("c")
    api.berth("run", "-d", "--name", container, "-v", f"{volume}:/data", "busybox", "sleep", "300")
    api.berth("exec", container, "dd", "if=/dev/zero", "of=/data/blob", "bs=1024", "count=300")
    rows = {
        line.split("   ")[0].strip(): line.split()
        for line in api.docker(
            "system", "df", "--format", "{{.Type}}   {{.TotalCount}} {{.Active}} {{.Size}}"
        )
        .stdout.strip()
        .splitlines()
    }
    assert rows["Images"][-3:-1] == ["1", "1"]  # busybox, used by the container
    assert rows["Containers"][-3:-1] == ["1", "1"]  # running
    assert rows["Local Volumes"][-3:-1] == ["1", "1"]
    assert rows["Local Volumes"][-1] == "307.2kB"  # the 300 KiB written (Docker's decimal units)

    verbose = api.docker("system", "df", "-v").stdout
    assert "busybox" in verbose
    volume_line = next(line for line in verbose.splitlines() if line.startswith(volume))
    assert volume_line.split()[1:] == ["1", "307.2kB"]  # one link, the data's size
    assert any(line.startswith(container[:12]) or container in line for line in verbose.splitlines())


def test_events_since_until_show_a_berth_cli_start(api: ApiServer) -> None:
    container = _name("c")
    api.berth("run", "-d", "--name", container, "busybox", "sleep", "300")

    # The CLI sends `--until 0s` as whole seconds (as Docker's does): an event in the current second
    # shows once that second is over, so ask again until it does.
    def events() -> list[str]:
        return api.docker(
            "events", "--since", "1m", "--until", "0s", "--filter", "type=container", timeout=30
        ).stdout.splitlines()

    def starts_in(lines: list[str]) -> list[str]:
        return [line for line in lines if " container start " in line and f"name={container}" in line]

    lines = wait_until(
        lambda: (seen := events()) and starts_in(seen) and seen,
        timeout=15,
        interval=0.2,
        what=f"the start of {container} among the events",
    )
    starts = starts_in(lines)
    assert len(starts) == 1, "\n".join(lines)
    assert "image=busybox" in starts[0]
    # Only containers were asked for: the network connect of that start is not there.
    assert all(" container " in line for line in lines)


def test_events_as_json_have_docker_shape(api: ApiServer) -> None:
    volume = _name("vol")
    api.docker("volume", "create", volume)
    api.docker("volume", "rm", volume)
    status, headers, body = api.request(
        "GET",
        f'/v1.44/events?since={int(time.time()) - 60}&until={time.time():.9f}&filters={{"volume":["{volume}"]}}',
    )
    assert status == 200 and headers["content-type"] == "application/json"
    events = [json.loads(line) for line in body.decode().splitlines()]
    assert [(e["Type"], e["Action"], e["Actor"]["ID"]) for e in events] == [
        ("volume", "create", volume),
        ("volume", "destroy", volume),
    ]
    assert all(e["scope"] == "local" and e["timeNano"] // 10**9 == e["time"] for e in events)


def test_streaming_events_sees_a_new_event_and_stops_cleanly(api: ApiServer) -> None:
    proc = subprocess.Popen(
        [DOCKER, "events", "--filter", "type=volume", "--format", "{{.Type}} {{.Action}} {{.Actor.ID}}"],
        env=api.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The subscription starts when the request arrives: make volumes until one is seen.
        made = []
        deadline = time.monotonic() + 30
        seen = ""
        selector = selectors.DefaultSelector()
        assert proc.stdout is not None
        selector.register(proc.stdout, selectors.EVENT_READ)
        while not seen and time.monotonic() < deadline:
            name = _name("vol")
            api.docker("volume", "create", name)
            made.append(name)
            if selector.select(timeout=1.0):
                seen = proc.stdout.readline().strip()
        assert seen.startswith("volume create ") and seen.split()[-1] in made, seen
        assert proc.poll() is None  # still following
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    # The server noticed the hang-up and carries on serving.
    status, _, _ = api.request("GET", "/_ping")
    assert status == 200


def test_events_bad_input_is_a_400(api: ApiServer) -> None:
    status, _, body = api.request("GET", "/v1.44/events?since=yesterday&until=0")
    assert status == 400 and "since" in json.loads(body)["message"]
    status, _, body = api.request("GET", '/v1.44/events?until=1&filters={"colour":["red"]}')
    assert status == 400 and "colour" in json.loads(body)["message"]


def test_system_df_rejects_unknown_type(api: ApiServer) -> None:
    status, _, body = api.request("GET", "/v1.44/system/df?type=tapes")
    assert status == 400 and "tapes" in json.loads(body)["message"]


def test_berth_cli_has_info_version_and_system_df(api: ApiServer) -> None:
    # The engine side built for the API is the CLI's too (issue 8).
    volume = _name("vol")
    api.docker("volume", "create", volume)
    info = api.berth("info").stdout
    assert "Server Version: 0.8.0" in info and f"Root Dir: {api.root}" in info
    assert "Volumes: 1" in info
    assert "runc" in api.berth("version").stdout
    summary = {line.split()[0]: line.split() for line in api.berth("system", "df").stdout.splitlines()}
    assert summary["Images"][1:3] == ["1", "0"]  # busybox, no containers
    assert summary["Local"][2:4] == ["1", "0"]
    assert volume in api.berth("system", "df", "-v").stdout
