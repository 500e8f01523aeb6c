"""Volumes and networks through the real docker CLI (and raw HTTP for the error answers)."""

from __future__ import annotations

import ipaddress
import json
import secrets

from tests.api.conftest import ApiServer


def _name(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(3)}"


def _subnet() -> str:
    # A random /24 far from Berth's pools, so parallel sessions on this host do not collide.
    return f"10.{200 + secrets.randbelow(50)}.{secrets.randbelow(256)}.0/24"


# -- volumes ---------------------------------------------------------------------------------------


def test_volume_create_ls_inspect_rm(api: ApiServer) -> None:
    name = _name("vol")
    assert api.docker("volume", "create", "--label", "team=blue", name).stdout.strip() == name
    listed = api.docker("volume", "ls", "--format", "{{.Driver}} {{.Name}}").stdout.split("\n")
    assert f"local {name}" in listed
    dangling = api.docker("volume", "ls", "-q", "--filter", "dangling=true").stdout.split()
    assert name in dangling  # nothing uses it yet
    labelled = api.docker("volume", "ls", "-q", "--filter", "label=team=red").stdout.split()
    assert name not in labelled
    shown = api.docker("volume", "inspect", "-f", "{{.Scope}} {{.Labels.team}} {{.Mountpoint}}", name).stdout
    scope, team, mountpoint = shown.split()
    assert (scope, team) == ("local", "blue")
    assert mountpoint.startswith(str(api.root))
    api.docker("volume", "rm", name)
    gone = api.docker("volume", "inspect", name, check=False)
    assert gone.returncode != 0 and "no such volume" in gone.stderr.lower()


def test_creating_an_existing_volume_returns_it(api: ApiServer) -> None:
    name = _name("vol")
    status, _, first = api.request("POST", "/v1.44/volumes/create", {"Name": name, "Labels": {"a": "1"}})
    assert status == 201, first
    status, _, again = api.request("POST", "/v1.44/volumes/create", {"Name": name})
    # Docker answers with the volume that exists (same creation time, labels kept), not a conflict.
    assert status == 201
    assert json.loads(again)["CreatedAt"] == json.loads(first)["CreatedAt"]
    assert json.loads(again)["Labels"] == {"a": "1"}


def test_volume_in_use_cannot_be_removed_and_survives_prune(api: ApiServer) -> None:
    used, unused = _name("vol"), _name("vol")
    api.docker("volume", "create", unused)
    api.berth("create", "--name", _name("c"), "-v", f"{used}:/data", "busybox", "true")
    failed = api.docker("volume", "rm", used, check=False)
    assert failed.returncode != 0 and "in use" in failed.stderr
    status, _, _ = api.request("DELETE", f"/v1.44/volumes/{used}")
    assert status == 409
    dangling = api.docker("volume", "ls", "-q", "--filter", "dangling=true").stdout.split()
    assert unused in dangling and used not in dangling
    pruned = api.docker("volume", "prune", "-f", "-a").stdout
    assert unused in pruned and "Total reclaimed space" in pruned
    assert api.docker("volume", "ls", "-q").stdout.split() == [used]


def test_volume_prune_without_all_keeps_named_volumes_since_api_1_42(api: ApiServer) -> None:
    name = _name("vol")
    api.docker("volume", "create", name)
    status, _, body = api.request("POST", "/v1.44/volumes/prune")
    assert status == 200
    assert json.loads(body) == {"VolumesDeleted": [], "SpaceReclaimed": 0}
    assert name in api.docker("volume", "ls", "-q").stdout.split()
    # Clients of API 1.41 and older (compose 1.29 through docker-py) get the old meaning: all unused.
    status, _, body = api.request("POST", "/v1.41/volumes/prune")
    assert status == 200 and json.loads(body)["VolumesDeleted"] == [name]


def test_volume_bad_input_is_a_4xx(api: ApiServer) -> None:
    status, _, body = api.request("POST", "/v1.44/volumes/create", {"Name": "bad/name"})
    assert status == 400 and "invalid characters" in json.loads(body)["message"]
    status, _, body = api.request("POST", "/v1.44/volumes/create", {"Name": _name("v"), "Labels": ["x"]})
    assert status == 400 and "Labels" in json.loads(body)["message"]
    status, _, body = api.request("GET", "/v1.44/volumes/nosuchvolume")
    assert status == 404 and "no such volume" in json.loads(body)["message"].lower()
    status, _, body = api.request("GET", "/v1.44/volumes?filters=" + '{"colour":["red"]}')
    assert status == 400 and "colour" in json.loads(body)["message"]


# -- networks --------------------------------------------------------------------------------------


def test_network_create_ls_inspect_and_duplicate(api: ApiServer) -> None:
    name, subnet = _name("net"), _subnet()
    network_id = api.docker(
        "network", "create", "--subnet", subnet, "--label", "tier=db", name
    ).stdout.strip()
    assert len(network_id) == 64
    listed = api.docker("network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}").stdout.split("\n")
    assert f"{name} bridge local" in listed
    assert "bridge bridge local" in listed and "host host local" in listed and "none null local" in listed
    shown = api.docker(
        "network", "inspect", "-f", '{{range .IPAM.Config}}{{.Subnet}}{{end}} {{index .Labels "tier"}}', name
    ).stdout.split()
    assert shown == [subnet, "db"]
    custom = api.docker("network", "ls", "-q", "--no-trunc", "--filter", "type=custom").stdout.split()
    assert custom == [network_id]
    again = api.docker("network", "create", name, check=False)
    assert again.returncode != 0 and "already exists" in again.stderr
    status, _, _ = api.request("POST", "/v1.44/networks/create", {"Name": name, "CheckDuplicate": True})
    assert status == 409


def test_network_keeps_compose_labels(api: ApiServer) -> None:
    # compose 1.29 reads these labels back on inspect to decide whether the network is its own.
    labels = {
        "com.docker.compose.network": "default",
        "com.docker.compose.project": "demo",
        "com.docker.compose.version": "1.29.2",
    }
    status, _, body = api.request(
        "POST", "/v1.41/networks/create", {"Name": _name("demo_"), "Driver": "bridge", "Labels": labels}
    )
    assert status == 201, body
    created = json.loads(body)
    assert created["Warning"] == ""
    shown = api.get_json(f"/v1.41/networks/{created['Id']}")
    assert shown["Labels"] == labels
    assert shown["Driver"] == "bridge" and shown["Scope"] == "local"
    found = api.get_json('/v1.41/networks?filters={"label":["com.docker.compose.project=demo"]}')
    assert [n["Id"] for n in found] == [created["Id"]]


def test_network_connect_disconnect_and_remove_in_use(api: ApiServer) -> None:
    name, subnet, container = _name("net"), _subnet(), _name("c")
    api.docker("network", "create", "--subnet", subnet, name)
    api.berth("run", "-d", "--name", container, "busybox", "sleep", "300")
    api.docker("network", "connect", "--alias", "db", name, container)
    members = api.docker(
        "network", "inspect", "-f", "{{range .Containers}}{{.Name}} {{.IPv4Address}}{{end}}", name
    ).stdout.split()
    assert members[0] == container
    assert ipaddress.ip_interface(members[1]).ip in ipaddress.ip_network(subnet)
    # The running container really got an interface in that subnet.
    addresses = api.berth("exec", container, "ip", "-4", "-o", "addr").stdout
    assert str(ipaddress.ip_interface(members[1]).ip) in addresses

    refused = api.docker("network", "rm", name, check=False)
    assert refused.returncode != 0 and "has active endpoints" in refused.stderr
    status, _, _ = api.request("DELETE", f"/v1.44/networks/{name}")
    assert status == 403  # moby's answer for a network with active endpoints

    api.docker("network", "disconnect", name, container)
    assert api.docker("network", "inspect", "-f", "{{len .Containers}}", name).stdout.strip() == "0"
    assert (
        str(ipaddress.ip_interface(members[1]).ip)
        not in api.berth("exec", container, "ip", "-4", "-o", "addr").stdout
    )
    api.docker("network", "rm", name)
    assert name not in api.docker("network", "ls", "--format", "{{.Name}}").stdout.split()


def test_network_prune_removes_unused_networks_only(api: ApiServer) -> None:
    unused, used, container = _name("net"), _name("net"), _name("c")
    api.docker("network", "create", "--subnet", _subnet(), unused)
    api.docker("network", "create", "--subnet", _subnet(), used)
    api.berth("create", "--name", container, "--network", used, "busybox", "true")
    pruned = api.docker("network", "prune", "-f").stdout
    assert "Deleted Networks:" in pruned and unused in pruned and used not in pruned
    remaining = api.docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert used in remaining and unused not in remaining and "bridge" in remaining


def test_predefined_network_cannot_be_removed(api: ApiServer) -> None:
    status, _, body = api.request("DELETE", "/v1.44/networks/bridge")
    assert status == 403 and "pre-defined" in json.loads(body)["message"]


def test_network_bad_input_is_a_4xx(api: ApiServer) -> None:
    status, _, body = api.request(
        "POST",
        "/v1.44/networks/create",
        {"Name": _name("n"), "IPAM": {"Config": [{"Subnet": "10.300.0.0/24"}]}},
    )
    assert status == 400 and "10.300.0.0/24" in json.loads(body)["message"]
    status, _, body = api.request("POST", "/v1.44/networks/create", {"Driver": "bridge"})
    assert status == 400 and "Name" in json.loads(body)["message"]
    status, _, body = api.request("POST", "/v1.44/networks/create", {"Name": _name("n"), "Driver": "overlay"})
    assert status == 400 and "overlay" in json.loads(body)["message"]
    status, _, body = api.request("GET", "/v1.44/networks/nosuchnetwork")
    assert status == 404 and "not found" in json.loads(body)["message"]
    status, _, _ = api.request("POST", "/v1.44/networks/nosuchnetwork/connect", {"Container": "x"})
    assert status == 404
    status, _, _ = api.request("POST", "/v1.44/networks/bridge/connect", {"Container": 5})
    assert status == 400
    missing = api.docker("network", "inspect", "nosuchnetwork", check=False)
    assert missing.returncode != 0 and "not found" in missing.stderr
