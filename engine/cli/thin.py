"""The `berth` command's fast path: everyday commands as a thin client of the API server.

When a server listens on `$BERTH_RUN/docker.sock`, `ps`, `images`, `volume ls`, `network ls`, `logs`,
`run` (non-interactive, common flags), `start`, `stop`, `rm` and `inspect` are answered through it,
which saves the ~0.4 s that importing Django costs. Anything else — no server, an option not handled
here, `BERTH_NO_THIN=1`, or an error whose exact wording only the in-process CLI knows — is handed to
`manage.py berth …` with `os.execv`, so output and exit codes stay those of the in-process CLI.
Read-only commands are simply re-run in-process on an error; a failing `start`/`stop`/`rm` of one
container re-runs that one in-process (so the error line and its event are the in-process ones).

The modules: thinclient (HTTP over the socket, and the way back to the in-process CLI),
thinformat (pure: JSON on the wire, arguments, render's formats), thincontainers (run, start, stop,
rm, logs, inspect); this one has the list commands and the dispatch. None of them imports Django, or
the standard modules that cost as much again to import (json, re, socket, typing, http.client):
thinformat says how.
"""

from __future__ import annotations

import os
import sys
import time

from engine.cli.thinclient import Client, fall_back, socket_path
from engine.cli.thincontainers import cmd_inspect, cmd_logs, cmd_rm, cmd_run, cmd_start, cmd_stop
from engine.cli.thinformat import Fallback, Spec, ago, filters_json, parse, query, table
from engine.humanize import human_size

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# The in-process `ps` passes its filters to containers.list_containers, which knows only these; the
# API knows more and matches names as regular expressions, so anything else is answered in-process.
PS_FILTERS = ("status", "name", "label", "ancestor", "id", "exited", "health")
REGEX_CHARS = set("^$.*+?[](){}|\\")


# --- list commands -----------------------------------------------------------------------------


def _command_text(command: str, no_trunc: bool) -> str:
    if not no_trunc and len(command) > 20:
        command = command[:19] + "…"
    return f'"{command}"'


def _ports_text(ports: list[dict[str, Any]]) -> str:
    return ", ".join(
        f"{p.get('IP') or '0.0.0.0'}:{p['PublicPort']}->{p['PrivatePort']}/{p.get('Type', 'tcp')}"
        for p in ports
        if p.get("PublicPort")
    )


def _name(c: dict[str, Any]) -> str:
    names = c.get("Names") or [""]
    return str(names[0]).lstrip("/")


def cmd_ps(client: Client, argv: list[str]) -> int:
    opts, positional = parse(
        argv, Spec(flags="-a|--all -q|--quiet --no-trunc", values="--format", lists="-f|--filter")
    )
    if positional or opts.get("format") not in (None, "table"):
        raise Fallback  # --format json needs sub-second CreatedAt, which the list endpoint lacks
    for item in opts.get("filter") or []:
        key, _, value = item.partition("=")
        if key.strip() not in PS_FILTERS or (key.strip() == "name" and REGEX_CHARS & set(value)):
            raise Fallback
    found = client.get_json(
        "/containers/json",
        query(all=1 if opts.get("all") else None, filters=filters_json(opts.get("filter"))),
    )
    no_trunc = bool(opts.get("no_trunc"))
    if opts.get("quiet"):
        sys.stdout.write("".join(f"{c['Id'] if no_trunc else c['Id'][:12]}\n" for c in found))
        return 0
    now = time.time()
    out = table(
        ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"],
        [
            [
                c["Id"] if no_trunc else c["Id"][:12],
                c.get("Image", ""),
                _command_text(c.get("Command", ""), no_trunc),
                ago(c.get("Created"), now),
                c.get("Status", ""),
                _ports_text(c.get("Ports") or []),
                _name(c),
            ]
            for c in found
        ],
    )
    sys.stdout.write(out)
    return 0


def cmd_images(client: Client, argv: list[str]) -> int:
    opts, positional = parse(argv, Spec(flags="-a|--all -q|--quiet --no-trunc", lists="-f|--filter"))
    if len(positional) > 1:
        raise Fallback
    filters = list(opts.get("filter") or []) + [f"reference={p}" for p in positional]
    found = client.get_json(
        "/images/json", query(all=1 if opts.get("all") else None, filters=filters_json(filters))
    )
    no_trunc = bool(opts.get("no_trunc"))
    rows = []
    for image in found:
        ident = image["Id"] if no_trunc else image["Id"].partition(":")[2][:12]
        digests = [d for d in image.get("RepoDigests") or [] if "@" in d]
        digest = digests[0].partition("@")[2] if digests else "<none>"
        tags = [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"] or ["<none>:<none>"]
        for tag in tags:
            repository, _, name = tag.rpartition(":")
            rows.append((repository, name, digest, ident, image))
    if opts.get("quiet"):
        seen: list[str] = []
        for row in rows:
            if row[3] not in seen:
                seen.append(row[3])
        sys.stdout.write("".join(f"{i}\n" for i in seen))
        return 0
    now = time.time()
    out = table(
        ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
        [
            [r, t, i, ago(img.get("Created"), now), human_size(img.get("Size") or 0)]
            for r, t, _, i, img in rows
        ],
    )
    sys.stdout.write(out)
    return 0


def cmd_volume_ls(client: Client, argv: list[str]) -> int:
    opts, positional = parse(argv, Spec(flags="-q|--quiet", values="--format", lists="-f|--filter"))
    if positional or opts.get("format") not in (None, "table", "json"):
        raise Fallback
    found = client.get_json("/volumes", query(filters=filters_json(opts.get("filter")))).get("Volumes") or []
    if opts.get("quiet"):
        sys.stdout.write("".join(f"{v['Name']}\n" for v in found))
    elif opts.get("format") == "json":
        from engine.cli import render

        render.json_lines(
            [
                {
                    "Driver": v.get("Driver", "local"),
                    "Labels": ",".join(f"{k}={val}" for k, val in (v.get("Labels") or {}).items()),
                    "Mountpoint": v.get("Mountpoint", ""),
                    "Name": v["Name"],
                    "Scope": "local",
                }
                for v in found
            ]
        )
    else:
        sys.stdout.write(
            table(["DRIVER", "VOLUME NAME"], [[v.get("Driver", "local"), v["Name"]] for v in found])
        )
    return 0


def cmd_network_ls(client: Client, argv: list[str]) -> int:
    opts, positional = parse(
        argv, Spec(flags="-q|--quiet --no-trunc", values="--format", lists="-f|--filter")
    )
    if positional or opts.get("format") not in (None, "table"):
        raise Fallback
    found = client.get_json("/networks", query(filters=filters_json(opts.get("filter"))))
    no_trunc = bool(opts.get("no_trunc"))
    if opts.get("quiet"):
        sys.stdout.write("".join(f"{n['Id'] if no_trunc else n['Id'][:12]}\n" for n in found))
        return 0
    rows = [[n["Id"] if no_trunc else n["Id"][:12], n["Name"], n.get("Driver", ""), "local"] for n in found]
    sys.stdout.write(table(["NETWORK ID", "NAME", "DRIVER", "SCOPE"], rows))
    return 0


# --- dispatch ----------------------------------------------------------------------------------

COMMANDS = {
    ("ps",): cmd_ps,
    ("container", "ls"): cmd_ps,
    ("container", "list"): cmd_ps,
    ("images",): cmd_images,
    ("image", "ls"): cmd_images,
    ("image", "list"): cmd_images,
    ("volume", "ls"): cmd_volume_ls,
    ("volume", "list"): cmd_volume_ls,
    ("network", "ls"): cmd_network_ls,
    ("network", "list"): cmd_network_ls,
    ("logs",): cmd_logs,
    ("container", "logs"): cmd_logs,
    ("run",): cmd_run,
    ("container", "run"): cmd_run,
    ("start",): cmd_start,
    ("container", "start"): cmd_start,
    ("stop",): cmd_stop,
    ("container", "stop"): cmd_stop,
    ("rm",): cmd_rm,
    ("container", "rm"): cmd_rm,
    ("inspect",): lambda client, argv: cmd_inspect(client, argv, any_kind=True),
    ("container", "inspect"): lambda client, argv: cmd_inspect(client, argv, any_kind=False),
}


def dispatch(argv: list[str]) -> int:
    """Run `argv` through the server if this is a command handled here; raise Fallback otherwise."""
    if os.environ.get("BERTH_NO_THIN") == "1":
        raise Fallback
    handler = COMMANDS.get(tuple(argv[:1])) or COMMANDS.get(tuple(argv[:2]))
    if handler is None:
        raise Fallback
    words = 1 if tuple(argv[:1]) in COMMANDS else 2
    path = socket_path()
    if not os.path.exists(path):
        raise Fallback
    return handler(Client(path), argv[words:])


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return dispatch(argv)
    except Fallback:
        fall_back(argv)
        return 1  # not reached
    except KeyboardInterrupt:
        sys.stderr.write("Error: interrupted\n")
        return 130
    except BrokenPipeError:
        return 141
    except OSError as exc:
        sys.stderr.write(f"Error: lost the connection to the Berth API server: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
