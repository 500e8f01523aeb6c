"""Edit with history: recreate under the same name, numbered revisions, rollback, a failed recreate that
leaves the old container running, the CLI's `container revisions` / `rollback`, and the dashboard's
Edit, Duplicate, Roll back and Update limits pages."""

from __future__ import annotations

import dataclasses
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.models import Container, ContainerRevision, Event, Volume
from engine.services import options as opts
from tests.conftest import net_tag
from tests.integration.test_dashboard_containers import HX, client_for, seeded  # noqa: F401

pytestmark = pytest.mark.root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def names() -> Iterator[dict[str, str]]:
    tag = net_tag()[-4:]
    yield {"c": f"rv{tag}", "vol": f"rvdata{tag}"}


def run(name: str, **fields: Any) -> Container:
    from engine.services import containers, lifecycle

    fields.setdefault("command", ("sleep", "300"))
    options = opts.ContainerOptions(image="busybox", name=name, **fields)
    container = containers.create(options)
    lifecycle.start(container.id)
    return containers.resolve(container.id)


def volume_dir(name: str) -> Path:
    from engine.services import volumes

    return Path(volumes.mountpoint(volumes.get(name)))


def anonymous_at(container: Container, destination: str) -> str:
    return container.mounts.get(destination=destination).volume.name


def first_spec(names: dict[str, str], port: int) -> dict[str, Any]:
    return {
        "env": ("GREETING=hello", "KEEP=1"),
        "publish": (f"127.0.0.1:{port}:80",),
        "mounts": (
            opts.MountRequest("volume", "/data", names["vol"]),
            opts.MountRequest("volume", "/scratch"),  # anonymous: reused by destination
        ),
        "labels": {"tier": "web"},
        "memory": 64 << 20,
    }


# -- engine ------------------------------------------------------------------------------------


def test_edit_then_rollback_restores_the_first_spec_and_keeps_the_volume_data(
    seeded: None,  # noqa: F811
    names: dict[str, str],
) -> None:
    from engine.services import revisions

    port1, port2 = free_port(), free_port()
    first = run(names["c"], **first_spec(names, port1))
    original = revisions.spec_of(first)
    scratch = anonymous_at(first, "/scratch")
    (volume_dir(names["vol"]) / "keep.txt").write_text("precious\n")
    (volume_dir(scratch) / "anon.txt").write_text("also kept\n")

    edited = dataclasses.replace(
        original,
        env=("GREETING=bonjour", "NEW=2"),
        publish=(f"127.0.0.1:{port2}:80",),
        mounts=(*original.mounts, opts.MountRequest("tmpfs", "/cache", options=(("size", str(8 << 20)),))),
    )
    second = revisions.recreate(names["c"], edited, actor="alice")

    assert second.id != first.id and second.name == names["c"] and second.state == "running"
    assert not Container.objects.filter(id=first.id).exists()  # the old row is gone, not renamed aside
    rows = revisions.revisions(names["c"])
    assert [(r.number, r.action) for r in rows] == [(2, "edit"), (1, "create")]
    assert rows[0].actor == "alice" and rows[0].container_id == second.id
    assert {c[0] for c in rows[0].changes} == {"env", "publish", "mounts"}
    assert "GREETING=bonjour" in second.config["Env"] and "KEEP=1" not in second.config["Env"]
    assert second.host_config["PortBindings"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port2)}]}
    # The anonymous volume is the same one (compose's rule), so its data went along.
    assert anonymous_at(second, "/scratch") == scratch

    third = revisions.rollback(names["c"], 1, actor="bob")

    assert third.state == "running"
    restored = revisions.spec_of(third)
    assert restored.env == original.env
    assert restored.publish == original.publish
    assert sorted(map(repr, restored.mounts)) == sorted(map(repr, original.mounts))
    assert revisions.diff(original, restored) == []
    rows = revisions.revisions(names["c"])
    assert [(r.number, r.action, r.actor, r.restored) for r in rows][0] == (3, "rollback", "bob", 1)
    assert (volume_dir(names["vol"]) / "keep.txt").read_text() == "precious\n"
    assert anonymous_at(third, "/scratch") == scratch
    assert (volume_dir(scratch) / "anon.txt").read_text() == "also kept\n"
    # Every step is an event with its user.
    acts = set(Event.objects.filter(object_name=names["c"]).values_list("action", "actor"))
    assert {("edit", "alice"), ("rollback", "bob")} <= acts


def _taken_port() -> tuple[socket.socket, int]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    return listener, int(listener.getsockname()[1])


@pytest.mark.parametrize("failure", ["command", "port"])
def test_a_recreate_that_cannot_start_keeps_the_old_container_running_and_unchanged(
    seeded: None,  # noqa: F811
    names: dict[str, str],
    failure: str,
) -> None:
    from engine.errors import InvalidState
    from engine.services import revisions

    old = run(names["c"], env=("A=1",), mounts=(opts.MountRequest("volume", "/scratch"),))
    before = revisions.spec_of(old)
    volumes_before = set(Volume.objects.values_list("name", flat=True))
    listener = None
    if failure == "command":
        bad = dataclasses.replace(before, command=("/no/such/binary",))
    else:
        listener, port = _taken_port()
        bad = dataclasses.replace(before, publish=(f"127.0.0.1:{port}:80",))
    try:
        with pytest.raises(InvalidState) as caught:
            revisions.recreate(names["c"], bad, actor="carol")
    finally:
        if listener is not None:
            listener.close()

    message = str(caught.value)
    assert f"{names['c']} was not changed" in message and "is running again" in message
    now = Container.objects.get(name=names["c"])
    assert now.id == old.id and now.state == "running"
    assert revisions.diff(before, revisions.spec_of(now)) == []
    assert list(Container.objects.values_list("name", flat=True)) == [names["c"]]  # no half-made twin
    assert set(Volume.objects.values_list("name", flat=True)) == volumes_before
    # Revision 1 was recorded, but no revision 2: nothing changed.
    assert [r.number for r in revisions.revisions(names["c"])] == [1]
    assert Event.objects.filter(action="edit", result="error", actor="carol").exists()


def test_an_edit_that_changes_nothing_is_refused(seeded: None, names: dict[str, str]) -> None:  # noqa: F811
    from engine.errors import InvalidArgument
    from engine.services import revisions

    container = run(names["c"])
    with pytest.raises(InvalidArgument, match="nothing to change"):
        revisions.recreate(names["c"], revisions.spec_of(container))
    assert Container.objects.get(name=names["c"]).id == container.id


def test_an_edit_keeps_nocopy_so_a_still_empty_volume_stays_empty(
    seeded: None,  # noqa: F811
    names: dict[str, str],
) -> None:
    from engine.services import lifecycle, revisions

    # busybox has /var/spool: a volume on /var would get it at the first start without nocopy.
    mount = opts.MountRequest("volume", "/var", names["vol"], False, (("nocopy", "true"),))
    container = run(names["c"], mounts=(mount,), env=("A=1",))
    assert not any(volume_dir(names["vol"]).iterdir())
    spec = revisions.spec_of(container)
    assert spec.mounts[0].options == (("nocopy", "true"),)
    recreated = revisions.recreate(names["c"], dataclasses.replace(spec, env=("A=2",)))
    assert recreated.state == "running"
    assert not any(volume_dir(names["vol"]).iterdir())
    lifecycle.remove(recreated.id, force=True)


# -- CLI ---------------------------------------------------------------------------------------


def test_cli_lists_revisions_and_rolls_back(
    seeded: None,  # noqa: F811
    names: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from engine.cli.main import main
    from engine.services import revisions

    container = run(names["c"], env=("STAGE=one",))
    assert main(["container", "revisions", names["c"]]) == 0
    assert "never edited" in capsys.readouterr().out
    spec = revisions.spec_of(container)
    revisions.recreate(names["c"], dataclasses.replace(spec, env=("STAGE=two",)), actor="dave")

    assert main(["container", "revisions", names["c"]]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["REVISION", "ACTION", "BY", "CREATED", "CHANGED"]
    assert re.match(r"2 \(current\)\s+edit\s+dave\s+.+ago\s+env$", out[1]), out[1]
    assert re.match(r"1\s+create\s+\S+\s+.+ago\s+first recorded spec$", out[2]), out[2]

    assert main(["container", "rollback", names["c"]]) == 0
    out = capsys.readouterr().out
    assert f"{names['c']}: rolled back to revision 1, recorded as revision 3" in out
    assert "STAGE=one" in Container.objects.get(name=names["c"]).config["Env"]
    main(["container", "revisions", names["c"]])
    assert re.search(
        r"^3 \(current\)\s+rollback\s+\S+\s+.+ago\s+back to 1: env$", capsys.readouterr().out, re.M
    )

    assert main(["container", "rollback", names["c"], "9"]) != 0
    assert "has no revision 9 (revisions: 1, 2, 3)" in capsys.readouterr().err


# -- dashboard ---------------------------------------------------------------------------------


def test_dashboard_edit_shows_the_diff_then_recreates_and_lists_the_revision(
    seeded: None,  # noqa: F811
    names: dict[str, str],
    users: dict[str, Any],
) -> None:
    from dashboard.forms_containers import initial_from
    from engine.services import revisions

    container = run(names["c"], env=("MODE=blue",), memory=64 << 20)
    client = client_for(users["operator"])
    form = client.get(f"/containers/{names['c']}/edit/")
    assert form.status_code == 200
    assert "MODE=blue" in form.content.decode() and "Review changes" in form.content.decode()

    data = {k: v for k, v in initial_from(revisions.spec_of(container)).items() if v not in (None, False)}
    data["env"] = "MODE=green"
    review = client.post(f"/containers/{names['c']}/edit/", data)
    body = review.content.decode()
    assert review.status_code == 200 and "Confirm and recreate" in body
    assert "<del>MODE=blue</del>" in body and "<ins>MODE=green</ins>" in body
    assert Container.objects.get(name=names["c"]).id == container.id  # nothing happened yet

    fingerprint = re.search(r'name="base" value="([0-9a-f]+)"', body).group(1)  # type: ignore[union-attr]
    # A confirm of a diff computed against another spec (someone edited meanwhile) only re-shows the diff.
    stale = client.post(f"/containers/{names['c']}/edit/", {**data, "confirm": "1", "base": "0" * 32})
    assert "changed by someone else" in stale.content.decode()
    assert Container.objects.get(name=names["c"]).id == container.id
    done = client.post(f"/containers/{names['c']}/edit/", {**data, "confirm": "1", "base": fingerprint})
    assert done.status_code == 302 and done["Location"].endswith("?tab=revisions")
    current = Container.objects.get(name=names["c"])
    assert current.id != container.id and "MODE=green" in current.config["Env"]

    tab = client_for(users["viewer"]).get(f"/containers/{names['c']}/?tab=revisions").content.decode()
    assert 'data-revision="2"' in tab and 'data-revision="1"' in tab and "operator" in tab
    assert "Roll back" not in tab  # viewers see the history but may not change it

    back = client.post(f"/containers/{names['c']}/revisions/1/rollback/")
    assert back.status_code == 302
    assert "MODE=blue" in Container.objects.get(name=names["c"]).config["Env"]
    assert [r.number for r in revisions.revisions(names["c"])] == [3, 2, 1]


def test_viewers_may_not_edit_duplicate_roll_back_or_update(
    seeded: None,  # noqa: F811
    names: dict[str, str],
    users: dict[str, Any],
) -> None:
    run(names["c"])
    viewer = client_for(users["viewer"])
    for url in ("edit", "duplicate", "update"):
        assert viewer.get(f"/containers/{names['c']}/{url}/").status_code == 403
    assert viewer.post(f"/containers/{names['c']}/revisions/1/rollback/").status_code == 403
    assert not ContainerRevision.objects.exists()


def test_duplicate_creates_a_second_container_and_leaves_the_first_alone(
    seeded: None,  # noqa: F811
    names: dict[str, str],
    users: dict[str, Any],
) -> None:
    from dashboard.forms_containers import initial_from
    from engine.services import revisions

    original = run(names["c"], env=("WHO=first",), entrypoint=("/bin/sh", "-c"), command=("sleep 300",))
    client = client_for(users["operator"])
    page = client.get(f"/containers/{names['c']}/duplicate/").content.decode()
    assert f'value="{names["c"]}-copy"' in page
    data = {k: v for k, v in initial_from(revisions.spec_of(original)).items() if v not in (None, False)}
    data["name"] = f"{names['c']}-copy"
    response = client.post(f"/containers/{names['c']}/duplicate/", data)
    assert response.status_code == 302
    copy = Container.objects.get(name=f"{names['c']}-copy")
    # The entrypoint has no field on the form: it comes from the stored spec.
    assert copy.config["Entrypoint"] == ["/bin/sh", "-c"] and "WHO=first" in copy.config["Env"]
    assert Container.objects.get(name=names["c"]).id == original.id
    assert not ContainerRevision.objects.exists()  # a duplicate is a new container, not an edit


def test_update_limits_form_applies_and_shows_refusals_at_the_field(
    seeded: None,  # noqa: F811
    names: dict[str, str],
    users: dict[str, Any],
) -> None:
    run(names["c"], memory=64 << 20)
    client = client_for(users["operator"])
    page = client.get(f"/containers/{names['c']}/update/").content.decode()
    assert 'value="64m"' in page
    base = {"memory": "64m", "restart": "no", "pids_limit": "2048"}
    refused = client.post(f"/containers/{names['c']}/update/", {**base, "memory": "1m"})
    assert refused.status_code == 400
    body = refused.content.decode()
    assert re.search(r'id="id_memory-error"[^>]*>minimum memory limit allowed is 6MB', body), body
    assert Container.objects.get(name=names["c"]).host_config["Memory"] == 64 << 20

    done = client.post(f"/containers/{names['c']}/update/", {**base, "memory": "48m", "restart": "always"})
    assert done.status_code == 302
    host = Container.objects.get(name=names["c"]).host_config
    assert host["Memory"] == 48 << 20 and host["RestartPolicy"]["Name"] == "always"
    assert Event.objects.filter(action="update", actor="operator").exists()


def test_an_operator_cannot_edit_away_or_keep_an_admins_bind_mount(
    seeded: None,  # noqa: F811
    names: dict[str, str],
    users: dict[str, Any],
    tmp_path: Path,
) -> None:
    from dashboard.forms_containers import initial_from
    from engine.services import revisions

    container = run(names["c"], env=("X=1",), mounts=(opts.MountRequest("bind", "/host", str(tmp_path)),))
    data = {k: v for k, v in initial_from(revisions.spec_of(container)).items() if v not in (None, False)}
    data.pop("binds")  # the form hides bind mounts from operators; the edit keeps them from the spec
    data["env"] = "X=2"
    client = client_for(users["operator"])
    assert client.get(f"/containers/{names['c']}/edit/").status_code == 200
    review = client.post(f"/containers/{names['c']}/edit/", data).content.decode()
    fingerprint = re.search(r'name="base" value="([0-9a-f]+)"', review).group(1)  # type: ignore[union-attr]
    refused = client.post(f"/containers/{names['c']}/edit/", {**data, "confirm": "1", "base": fingerprint})
    assert refused.status_code == 403 and "only admins may ask for bind mounts" in refused.content.decode()
    assert Container.objects.get(name=names["c"]).id == container.id
    assert not ContainerRevision.objects.exists()
