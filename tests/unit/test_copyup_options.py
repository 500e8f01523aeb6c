"""Docker's nocopy spellings reach the mount request, so a new volume is not filled at first start."""

from __future__ import annotations

import pytest

from engine.api.createspec import parse_create
from engine.errors import InvalidArgument
from engine.services import options as opts

NOCOPY = ("nocopy", "true")


def test_v_nocopy_marks_a_named_or_anonymous_volume() -> None:
    assert NOCOPY in opts.parse_volume("data:/data:nocopy").options
    assert NOCOPY in opts.parse_volume("data:/data:ro,nocopy").options
    assert opts.parse_volume("data:/data:ro,nocopy").read_only
    assert NOCOPY not in opts.parse_volume("data:/data").options


def test_nocopy_on_a_bind_mount_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="volumes only"):
        opts.parse_volume("/srv:/data:nocopy")


def test_mount_volume_nocopy_marks_the_volume() -> None:
    assert NOCOPY in opts.parse_mount("type=volume,source=v,target=/d,volume-nocopy").options
    assert NOCOPY in opts.parse_mount("type=volume,source=v,target=/d,volume-nocopy=true").options
    assert NOCOPY not in opts.parse_mount("type=volume,source=v,target=/d,volume-nocopy=false").options


def test_the_api_volume_options_nocopy_marks_the_volume() -> None:
    body = {
        "Image": "busybox",
        "HostConfig": {
            "Mounts": [{"Type": "volume", "Source": "v", "Target": "/d", "VolumeOptions": {"NoCopy": True}}]
        },
    }
    (mount,) = parse_create(body).options.mounts
    assert NOCOPY in mount.options
