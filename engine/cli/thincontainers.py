"""The thin client's container commands: run, start, stop, rm, logs, inspect (see engine/cli/thin.py)."""

from __future__ import annotations

import sys

from engine.cli.thinclient import MULTIPLEXED, Client, Reply, in_process, relay
from engine.cli.thinformat import Fallback, Spec, env_values, parse, query, quote

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def cmd_inspect(client: Client, argv: list[str], *, any_kind: bool) -> int:
    spec = Spec(values="-f|--format" + (" --type" if any_kind else ""))
    opts, refs = parse(argv, spec)
    if not refs or opts.get("format") not in (None, "json") or opts.get("type") not in (None, "container"):
        raise Fallback
    found = [_engine_inspect(client.get_json(f"/containers/{quote(ref)}/json")) for ref in refs]
    from engine.cli import render  # json and its indentation exactly as the in-process CLI prints

    render.print_json(found)
    return 0


# Keys the API handler adds to containerinfo.inspect() for Docker clients; the in-process CLI prints
# the service's dict without them (tests/api/test_thin_cli.py compares the two outputs).
API_ONLY_KEYS = ("ExecIDs", "MountLabel", "ProcessLabel", "AppArmorProfile", "SizeRw", "SizeRootFs")
API_ONLY_CONFIG_KEYS = ("Domainname", "AttachStdout", "AttachStderr", "OnBuild")


def _engine_inspect(data: dict[str, Any]) -> dict[str, Any]:
    for key in API_ONLY_KEYS:
        data.pop(key, None)
    for key in API_ONLY_CONFIG_KEYS:
        (data.get("Config") or {}).pop(key, None)
    # The engine always records its capped log file as k8s-file; the API calls it json-file for
    # docker-py and compose (engine/api/containers.py inspect).
    log_config = (data.get("HostConfig") or {}).get("LogConfig") or {}
    if log_config.get("Type") == "json-file":
        log_config["Type"] = "k8s-file"
    return data


def cmd_logs(client: Client, argv: list[str]) -> int:
    opts, positional = parse(argv, Spec(flags="-f|--follow -t|--timestamps", values="-n|--tail"))
    if len(positional) != 1:
        raise Fallback
    tail = opts.get("tail", "all")
    if tail not in ("all", "-1") and not tail.isdigit():
        raise Fallback
    ref = quote(positional[0])
    reply = client.send(
        "GET",
        f"/containers/{ref}/logs",
        query(
            stdout=1,
            stderr=1,
            follow=1 if opts.get("follow") else None,
            tail=tail,
            timestamps=1 if opts.get("timestamps") else None,
        ),
    )
    try:
        if reply.status != 200:
            raise Fallback
        multiplexed = reply.headers.get("content-type") == MULTIPLEXED  # raw for a TTY container
        relay(reply, multiplexed=multiplexed, timestamps=bool(opts.get("timestamps")))
    finally:
        reply.close()
    return 0


def _each(client: Client, command: str, argv: list[str], spec: Spec, request) -> int:  # type: ignore[no-untyped-def]
    """start/stop/rm of one container: one request; a failure re-runs it in-process."""
    opts, refs = parse(argv, spec)
    if len(refs) != 1:
        raise Fallback  # several run concurrently in-process (services/bulk.each), as docker does
    options = []  # the options again, for re-running one container in-process
    for name, (kind, dest) in spec.kind.items():
        if name.startswith("--") and dest in opts and name[2:].replace("-", "_") == dest:
            options += [name] if kind == "flag" else [f"{name}={opts[dest]}"]
    ref = refs[0]
    method, path, query = request(quote(ref), opts)
    reply = client.call(method, path, query)
    if reply.status not in (200, 201, 204, 304):
        return 1 if in_process([command, *options, ref]) != 0 else 0
    sys.stdout.write(ref + "\n")
    sys.stdout.flush()
    return 0


def cmd_start(client: Client, argv: list[str]) -> int:
    return _each(client, "start", argv, Spec(), lambda ref, o: ("POST", f"/containers/{ref}/start", None))


def cmd_stop(client: Client, argv: list[str]) -> int:
    def request(ref: str, o: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
        if o.get("timeout") is not None and not o["timeout"].lstrip("-").isdigit():
            raise Fallback
        return "POST", f"/containers/{ref}/stop", query(t=o.get("timeout"), signal=o.get("signal"))

    return _each(client, "stop", argv, Spec(values="-t|--time|--timeout=timeout -s|--signal"), request)


def cmd_rm(client: Client, argv: list[str]) -> int:
    def request(ref: str, o: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
        return (
            "DELETE",
            f"/containers/{ref}",
            query(force=1 if o.get("force") else None, v=1 if o.get("volumes") else None),
        )

    return _each(client, "rm", argv, Spec(flags="-f|--force -v|--volumes"), request)


RUN_SPEC = Spec(
    flags="--rm -d|--detach",
    values="--name -w|--workdir -u|--user --entrypoint --network|--net=network",
    lists="-e|--env=env -p|--publish=publish -v|--volume=volume -l|--label=label",
    stop_at_positional=True,
)


def create_body(opts: dict[str, Any], image: str, command: list[str]) -> dict[str, Any]:
    """The Docker create body for the run options handled here (others fall back)."""
    env = env_values(opts.get("env", []))
    labels = {}
    for item in opts.get("label", []):
        key, _, value = item.partition("=")
        if not key:
            raise Fallback
        labels[key] = value
    binds: list[str] = []
    volumes: dict[str, dict[str, Any]] = {}
    for item in opts.get("volume", []):
        if ":" in item:
            binds.append(item)
        else:
            volumes[item] = {}
    exposed: dict[str, dict[str, Any]] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for item in opts.get("publish", []):
        spec, _, proto = item.partition("/")
        parts = spec.split(":")
        if len(parts) > 3 or "-" in spec or "[" in spec or not parts[-1].isdigit():
            raise Fallback  # ranges and IPv6 are the in-process parser's business
        host_ip = parts[0] if len(parts) == 3 else ""
        host_port = parts[-2] if len(parts) >= 2 else ""
        key = f"{parts[-1]}/{proto or 'tcp'}"
        exposed[key] = {}
        bindings.setdefault(key, []).append({"HostIp": host_ip, "HostPort": host_port})
    body: dict[str, Any] = {
        "Image": image,
        "Env": env,
        "Labels": labels,
        "AttachStdout": not opts.get("detach"),
        "AttachStderr": not opts.get("detach"),
        "HostConfig": {
            "Binds": binds,
            "PortBindings": bindings,
            "NetworkMode": opts.get("network", "bridge"),
            "AutoRemove": bool(opts.get("rm")),
        },
    }
    if command:
        body["Cmd"] = command
    if "entrypoint" in opts:
        body["Entrypoint"] = [opts["entrypoint"]] if opts["entrypoint"] else [""]
    if exposed:
        body["ExposedPorts"] = exposed
    if volumes:
        body["Volumes"] = volumes
    for key, dest in (("workdir", "WorkingDir"), ("user", "User")):
        if key in opts:
            body[dest] = opts[key]
    return body


def cmd_run(client: Client, argv: list[str]) -> int:
    opts, positional = parse(argv, RUN_SPEC)
    if not positional:
        raise Fallback
    body = create_body(opts, positional[0], positional[1:])
    created = client.call("POST", "/containers/create", query(name=opts.get("name")), body)
    if created.status != 201:
        raise Fallback  # nothing was made: the in-process CLI pulls, or words the error
    cid = created.json()["Id"]
    try:
        return _start_and_attach(client, cid, opts)
    except Fallback:
        # The server could not attach or wait: undo the create so the in-process run starts afresh.
        client.call("DELETE", f"/containers/{cid}", {"force": 1, "v": 1})
        raise


def _start_and_attach(client: Client, cid: str, opts: dict[str, Any]) -> int:
    path = f"/containers/{cid}"
    if opts.get("detach"):
        started = client.call("POST", path + "/start")
        if started.status not in (204, 304):
            return _failed_start(client, cid, started, remove=bool(opts.get("rm")))
        sys.stdout.write(cid + "\n")
        return 0
    # As the docker CLI does: attach and wait before start, so no output and no exit is missed.
    attach = client.send("POST", path + "/attach", {"stream": 1, "stdout": 1, "stderr": 1}, upgrade=True)
    try:
        if attach.status not in (101, 200):
            raise Fallback
        condition = "removed" if opts.get("rm") else "next-exit"
        waiter = client.send("POST", path + "/wait", {"condition": condition})
        try:
            if waiter.status != 200:
                raise Fallback
            started = client.call("POST", path + "/start")
            if started.status not in (204, 304):
                return _failed_start(client, cid, started, remove=bool(opts.get("rm")))
            relay(attach, multiplexed=True)
            result = waiter.json() or {}
        finally:
            waiter.close()
    finally:
        attach.close()
    if opts.get("rm"):
        client.call("DELETE", path, {"force": 1, "v": 1})  # already gone unless the server kept it
    return int(result.get("StatusCode", 1))


def _failed_start(client: Client, cid: str, reply: Reply, *, remove: bool) -> int:
    """As the in-process `run`: remove an --rm container, print the error, exit 127/126 or 1."""
    message = reply.message()
    if remove:
        client.call("DELETE", f"/containers/{cid}", {"force": 1, "v": 1})
    sys.stderr.write(f"Error: {message}\n")
    lowered = message.lower()
    if "executable file not found" in lowered or "no such file or directory" in lowered:
        return 127
    if "permission denied" in lowered or "is a directory" in lowered:
        return 126
    return 1
