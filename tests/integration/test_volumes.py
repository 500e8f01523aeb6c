"""The volume services against a real BERTH_ROOT: create, list and filter, inspect, remove, prune."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from engine.errors import InUse, InvalidArgument, VolumeNotFound
from engine.models import Container, Mount, Volume
from engine.services import system, volumes


def mount_in_a_container(volume: Volume, name: str = "user") -> None:
    """Mark `volume` as used. There is no container service yet, so the records are made directly."""
    image = system.seed()
    container = Container.objects.create(id=name * 16, name=name, image=image, image_ref="busybox")
    Mount.objects.create(container=container, kind=Mount.Kind.VOLUME, destination="/data", volume=volume)


def names(found: list[Volume]) -> set[str]:
    return {v.name for v in found}


# -- create --------------------------------------------------------------------------------------


def test_create_records_labels_and_options_and_makes_the_data_dir(engine: Path) -> None:
    volume = volumes.create("data", labels={"team": "web"}, options={"o": "size=1g"})
    assert volume.labels == {"team": "web"} and volume.options == {"o": "size=1g"}
    assert not volume.anonymous
    data = engine / "volumes" / "data" / "_data"
    assert data.is_dir()
    assert stat.S_IMODE(data.stat().st_mode) == 0o755  # reachable by containers running as other users


def test_create_of_an_existing_name_returns_that_volume(engine: Path) -> None:
    first = volumes.create("data", labels={"v": "1"})
    (engine / "volumes" / "data" / "_data" / "keep").write_text("x")
    second = volumes.create("data")
    assert second.pk == first.pk
    assert Volume.objects.count() == 1
    assert (engine / "volumes" / "data" / "_data" / "keep").exists(), "a second create must not wipe data"


def test_create_without_a_name_makes_an_anonymous_volume_with_a_long_hex_name(engine: Path) -> None:
    volume = volumes.create()
    assert volume.anonymous
    assert re.fullmatch(r"[0-9a-f]{64}", volume.name)


@pytest.mark.parametrize("name", ["-x", "_x", ".x", "has space", "a/b", "../up", "bad$name"])
def test_create_refuses_invalid_names_with_dockers_message(engine: Path, name: str) -> None:
    expected = f'"{name}" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed'
    with pytest.raises(InvalidArgument) as caught:
        volumes.create(name)
    assert str(caught.value).startswith(expected)
    assert not Volume.objects.exists()
    assert not (engine / "volumes").exists() or not any((engine / "volumes").iterdir())


def test_create_refuses_a_one_character_name_as_too_short(engine: Path) -> None:
    with pytest.raises(InvalidArgument, match="volume name is too short"):
        volumes.create("a")


def test_create_refuses_an_unknown_driver(engine: Path) -> None:
    with pytest.raises(InvalidArgument, match="not supported"):
        volumes.create("data", driver="nfs-magic")


# -- ls ------------------------------------------------------------------------------------------


def test_ls_lists_every_volume(engine: Path) -> None:
    volumes.create("one")
    volumes.create("two")
    assert names(volumes.list_volumes()) == {"one", "two"}


def test_ls_filters_dangling_volumes(engine: Path) -> None:
    used = volumes.create("used")
    volumes.create("free")
    mount_in_a_container(used)
    assert names(volumes.list_volumes(filters={"dangling": ["true"]})) == {"free"}
    assert names(volumes.list_volumes(filters={"dangling": ["false"]})) == {"used"}


def test_ls_filters_by_name_substring(engine: Path) -> None:
    volumes.create("web-data")
    volumes.create("db-data")
    volumes.create("cache")
    assert names(volumes.list_volumes(filters={"name": ["data"]})) == {"web-data", "db-data"}


def test_ls_filters_by_label_key_and_by_key_value(engine: Path) -> None:
    volumes.create("a1", labels={"tier": "web"})
    volumes.create("b1", labels={"tier": "db"})
    volumes.create("c1")
    assert names(volumes.list_volumes(filters={"label": ["tier"]})) == {"a1", "b1"}
    assert names(volumes.list_volumes(filters={"label": ["tier=db"]})) == {"b1"}


def test_ls_refuses_an_unknown_filter(engine: Path) -> None:
    with pytest.raises(InvalidArgument, match="invalid filter"):
        volumes.list_volumes(filters={"driver": ["local"]})


# -- inspect -------------------------------------------------------------------------------------


def test_inspect_has_dockers_shape(engine: Path) -> None:
    volumes.create("data", labels={"k": "v"}, options={"o": "size=1g"})
    info = volumes.inspect("data")
    assert set(info) == {"CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope"}
    assert info["Name"] == "data"
    assert info["Driver"] == "local"
    assert info["Mountpoint"] == str(engine / "volumes" / "data" / "_data")
    assert info["Labels"] == {"k": "v"} and info["Options"] == {"o": "size=1g"}
    assert info["Scope"] == "local"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info["CreatedAt"])


def test_inspect_of_a_missing_volume_is_not_found(engine: Path) -> None:
    with pytest.raises(VolumeNotFound, match="no such volume"):
        volumes.inspect("missing")


# -- rm and prune --------------------------------------------------------------------------------


def test_rm_deletes_the_record_and_the_data(engine: Path) -> None:
    volumes.create("data")
    (engine / "volumes" / "data" / "_data" / "file").write_text("x")
    volumes.remove("data")
    assert not Volume.objects.exists()
    assert not (engine / "volumes" / "data").exists()


def test_rm_of_a_missing_volume_is_not_found(engine: Path) -> None:
    with pytest.raises(VolumeNotFound):
        volumes.remove("missing")


def test_rm_force_of_a_missing_volume_is_fine(engine: Path) -> None:
    volumes.remove("missing", force=True)


def test_rm_of_a_volume_in_use_is_refused(engine: Path) -> None:
    volume = volumes.create("data")
    mount_in_a_container(volume)
    with pytest.raises(InUse, match="user"):
        volumes.remove("data", force=True)
    assert (engine / "volumes" / "data" / "_data").is_dir()


def test_prune_removes_only_unused_anonymous_volumes(engine: Path) -> None:
    anonymous = volumes.create()
    volumes.create("named")
    used = volumes.create()
    mount_in_a_container(used)

    result = volumes.prune()

    assert result.removed == [anonymous.name]
    assert names(volumes.list_volumes()) == {"named", used.name}
    assert not (engine / "volumes" / anonymous.name).exists()


def test_prune_all_removes_named_volumes_too_but_never_used_ones(engine: Path) -> None:
    volumes.create()
    volumes.create("named")
    used = volumes.create("used")
    mount_in_a_container(used)

    result = volumes.prune(all=True)

    assert len(result.removed) == 2 and "named" in result.removed
    assert names(volumes.list_volumes()) == {"used"}
