"""The Edit form round-trip and the spec helpers behind it: a stored spec shown in the Run form and
submitted unchanged gives the same spec back, and diffs name exactly the fields that changed."""

from __future__ import annotations

import dataclasses

from dashboard.forms_containers import RunForm, initial_from
from engine.services import options as opts
from engine.services import revisions

RICH = opts.ContainerOptions(
    image="busybox:latest",
    name="web",
    command=("sh", "-c", "echo 'a b'; sleep 1"),
    entrypoint=("/bin/tini", "--"),
    env=("A=1", "EMPTY="),
    labels={"tier": "web", "team": "ops"},
    workdir="/srv",
    user="1000:1000",
    hostname="web1",
    mounts=(
        opts.MountRequest("volume", "/data", "webdata"),
        opts.MountRequest("volume", "/cache", "", True),
        opts.MountRequest("bind", "/etc/app", "/srv/app", True),
        opts.MountRequest("tmpfs", "/run", options=(("size", str(64 << 20)), ("mode", "1777"))),
    ),
    restart=opts.RestartPolicy("on-failure", 3),
    memory=256 << 20,
    cpus=0.5,
    pids_limit=100,
    init=True,
    network="bridge",
    publish=("8080:80", "127.0.0.1::53/udp"),
    cap_drop=("NET_RAW",),
    read_only=True,
    dns=("1.1.1.1",),
    log_max_size=1 << 20,
)


def test_a_spec_shown_in_the_form_and_submitted_unchanged_comes_back_the_same() -> None:
    data = {k: v for k, v in initial_from(RICH).items() if v not in (None, False)}
    form = RunForm(data)
    assert form.is_valid(), form.errors
    # Options without a field on the form (entrypoint, DNS, log size) come from the base.
    assert revisions.diff(RICH, form.to_options(RICH)) == []


def test_diff_names_the_changed_fields_with_readable_values() -> None:
    new = dataclasses.replace(RICH, env=("A=2",), restart=opts.RestartPolicy("always"), memory=None)
    assert revisions.diff(RICH, new) == [
        ("env", ["A=1", "EMPTY="], ["A=2"]),
        ("restart", "on-failure:3", "always"),
        ("memory", 256 << 20, None),
    ]


def test_mount_order_is_not_a_change() -> None:
    assert revisions.diff(RICH, dataclasses.replace(RICH, mounts=RICH.mounts[::-1])) == []


def test_the_stored_dict_rebuilds_the_same_options() -> None:
    assert revisions.from_dict(revisions.to_dict(RICH)) == RICH
    assert revisions.from_dict({**revisions.to_dict(RICH), "from_a_newer_berth": 1}) == RICH


def test_port_bindings_become_publish_specs_again() -> None:
    from engine.net import ports

    requests = [r for spec in RICH.publish for r in ports.parse_publish(spec)]
    assert revisions._publish_specs(ports.to_port_bindings(requests)) == ("8080:80", "127.0.0.1::53/udp")
