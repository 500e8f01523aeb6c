"""Issue 10 items 3, 6 and 9 through the Docker API: hostile create requests get a 400 and one line."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.api.conftest import ApiServer


def _create(api: ApiServer, body: dict[str, Any]) -> tuple[int, str]:
    status, _, data = api.request("POST", "/v1.44/containers/create", {"Image": "busybox", **body})
    return status, str(json.loads(data).get("message", ""))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"StopSignal": "SIGFOO"}, "invalid signal 'SIGFOO'"),
        ({"StopSignal": "99"}, "invalid signal '99'"),
        ({"HostConfig": {"Tmpfs": {"/t": "mode=7777"}}}, "setuid and setgid bits are not allowed"),
        (
            {"HostConfig": {"Mounts": [{"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"Mode": 0o4777}}]}},
            "setuid and setgid bits are not allowed",
        ),
        ({"HostConfig": {"Tmpfs": {"/t": "size=64t"}}}, "more than the limit"),
        (
            {
                "HostConfig": {
                    "Mounts": [{"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1 << 46}}]
                }
            },
            "more than the limit",
        ),
    ],
    ids=["signal-name", "signal-number", "tmpfs-mode", "mount-mode", "tmpfs-size", "mount-size"],
)
def test_hostile_create_requests_are_refused(api: ApiServer, body: dict[str, Any], message: str) -> None:
    status, text = _create(api, body)
    assert status == 400 and message in text and "\n" not in text, (status, text)
    assert api.berth("ps", "-aq").stdout == ""


def test_the_engines_own_directories_cannot_be_bound_through_the_api(api: ApiServer) -> None:
    for source in (api.root, api.run, api.root / "secret-key", "/"):
        status, text = _create(api, {"HostConfig": {"Binds": [f"{source}:/x:ro"]}})
        assert status == 400 and "would expose the engine's own files" in text, (source, status, text)
