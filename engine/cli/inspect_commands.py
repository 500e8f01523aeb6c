"""CLI commands that read containers: ps, inspect, top, stats, diff, logs, port (and `container …` aliases).

They add their verbs to the `container` group that container_commands makes (engine/cli/main.py MODULES order).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

from engine.cli import render, stats_history
from engine.cli.args import container_group_parsers, json_format, parse_filters, parse_time
from engine.errors import ContainerNotFound, EngineError
from engine.models import Container, ContainerState
from engine.services import containerinfo, containers, healthconfig, lifecycle


def register(sub: argparse._SubParsersAction) -> None:
    parents = container_group_parsers(sub)
    for parent in parents:
        p = parent.add_parser("top", help="Show the processes of a container")
        p.add_argument("container")
        p.set_defaults(handler=cmd_top)
        p = parent.add_parser("stats", help="Show resource use (live unless --no-stream)")
        p.add_argument("containers", nargs="*")
        p.add_argument("-a", "--all", action="store_true")
        p.add_argument("--no-stream", action="store_true")
        p.add_argument("--format")
        stats_history.add_arguments(p)
        p.set_defaults(handler=cmd_stats)
        p = parent.add_parser("diff", help="Show changes to a container's filesystem")
        p.add_argument("container")
        p.set_defaults(handler=cmd_diff)
        p = parent.add_parser("logs", help="Show a container's logs")
        p.add_argument("container")
        p.add_argument("-f", "--follow", action="store_true")
        p.add_argument("-n", "--tail", default="all")
        p.add_argument("--since")
        p.add_argument("--until")
        p.add_argument("-t", "--timestamps", action="store_true")
        p.set_defaults(handler=cmd_logs)
        p = parent.add_parser("port", help="List a container's published ports")
        p.add_argument("container")
        p.add_argument("private_port", nargs="?", help="PORT[/PROTO]")
        p.set_defaults(handler=cmd_port)
    for parent, name in [(sub, "ps")] + [(group, alias) for group in parents[1:] for alias in ("ls", "list")]:
        p = parent.add_parser(name, help="List containers")
        p.add_argument("-a", "--all", action="store_true")
        p.add_argument("-q", "--quiet", action="store_true")
        p.add_argument("-n", "--last", type=int, default=0)
        p.add_argument("-l", "--latest", action="store_true")
        p.add_argument("--no-trunc", action="store_true")
        p.add_argument("-s", "--size", action="store_true")
        p.add_argument("-f", "--filter", action="append")
        p.add_argument("--format")
        p.set_defaults(handler=cmd_ps)
    for group in parents[1:]:
        p = group.add_parser("inspect", help="Show container details as JSON")
        p.add_argument("containers", nargs="+")
        p.add_argument("-f", "--format")
        p.set_defaults(handler=cmd_inspect)
    p = sub.add_parser("inspect", help="Show details of containers, images or volumes as JSON")
    p.add_argument("objects", nargs="+")
    p.add_argument("-f", "--format")
    p.add_argument("--type", choices=["container", "image", "volume"])
    p.set_defaults(handler=cmd_inspect_any)


def status_text(c: Container) -> str:
    if c.state == ContainerState.RUNNING:
        return f"Up {render.human_duration(_since(c.started_at))}{healthconfig.status_suffix(c)}"
    if c.state == ContainerState.PAUSED:
        return f"Up {render.human_duration(_since(c.started_at))} (Paused)"
    if c.state == ContainerState.RESTARTING:
        return f"Restarting ({c.exit_code}) {render.ago(c.finished_at)}"
    if c.state == ContainerState.EXITED:
        return f"Exited ({c.exit_code}) {render.ago(c.finished_at)}"
    if c.state == ContainerState.CREATED:
        return "Created"
    return c.state.capitalize()


def _since(when) -> float:  # type: ignore[no-untyped-def]
    from django.utils import timezone

    return (timezone.now() - when).total_seconds() if when else 0.0


def _command_text(c: Container, no_trunc: bool) -> str:
    text = " ".join((c.config.get("Entrypoint") or []) + (c.config.get("Cmd") or []))
    if not no_trunc and len(text) > 20:
        text = text[:19] + "…"
    return f'"{text}"'


def cmd_ps(args: argparse.Namespace) -> int:
    last = 1 if args.latest else args.last
    found = containers.list_containers(all=args.all, filters=parse_filters(args.filter), last=last)
    found = [lifecycle.refresh(c) for c in found]
    if not args.all and not args.filter and not last:
        found = [c for c in found if c.state in lifecycle.ACTIVE]
    if args.quiet:
        sys.stdout.write("".join(f"{c.id if args.no_trunc else c.short_id}\n" for c in found))
        return 0
    if json_format(args.format):
        render.json_lines(
            [
                {
                    "Command": _command_text(c, True),
                    "CreatedAt": render.iso(c.created),
                    "ID": c.short_id,
                    "Image": c.image_ref,
                    "Labels": ",".join(f"{k}={v}" for k, v in c.labels.items()),
                    "Mounts": ",".join(m.source or m.destination for m in c.mounts.all()),
                    "Names": c.name,
                    "Ports": containerinfo.ports_text(c),
                    "RunningFor": render.ago(c.created),
                    "State": c.state,
                    "Status": status_text(c),
                }
                for c in found
            ]
        )
        return 0
    render.table(
        ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"],
        [
            [
                c.id if args.no_trunc else c.short_id,
                c.image_ref,
                _command_text(c, args.no_trunc),
                render.ago(c.created),
                status_text(c),
                containerinfo.ports_text(c),
                c.name,
            ]
            for c in found
        ],
    )
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    json_format(args.format)
    render.print_json([containerinfo.inspect(ref) for ref in args.containers])
    return 0


def cmd_inspect_any(args: argparse.Namespace) -> int:
    from engine.services import images, volumes

    out: list[object] = []
    for ref in args.objects:
        found = None
        for kind, lookup in (
            ("container", containerinfo.inspect),
            ("image", images.inspect),
            ("volume", volumes.inspect),
        ):
            if args.type and args.type != kind:
                continue
            try:
                found = lookup(ref)
                break
            except EngineError:
                continue
        if found is None:
            render.print_json(out)
            raise ContainerNotFound(f"no such object: {ref}")
        out.append(found)
    render.print_json(out)
    return 0


def cmd_top(args: argparse.Namespace) -> int:
    rows = [
        [p.uid, p.pid, p.ppid, p.c, p.stime, p.tty, p.time, p.cmd] for p in containerinfo.top(args.container)
    ]
    render.table(["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"], rows)
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    if args.since or args.host:
        return stats_history.cmd_history(args)  # the recorded history (issue 12)
    refs = args.containers or [c.id for c in containers.list_containers(all=args.all)]
    previous: dict[str, containerinfo.StatsSample] = {}
    while True:
        samples = []
        for ref in refs:
            try:
                samples.append(containerinfo.stats(ref))
            except ContainerNotFound:
                if args.containers:
                    raise
        if not previous:
            time.sleep(0.5)  # CPU % needs two samples
            previous = {s.container_id: s for s in samples}
            samples = [containerinfo.stats(s.container_id) for s in samples]
        rows = []
        for s in samples:
            before = previous.get(s.container_id)
            cpu = 0.0
            if before and s.time > before.time:
                cpu = (s.cpu_ns - before.cpu_ns) / ((s.time - before.time) * 1e9) * 100
            mem_pct = (s.memory_usage / s.memory_limit * 100) if s.memory_limit else 0.0
            rows.append(
                [
                    s.container_id[:12],
                    s.name,
                    f"{max(cpu, 0):.2f}%",
                    f"{_binary_size(s.memory_usage)} / {_binary_size(s.memory_limit)}",
                    f"{mem_pct:.2f}%",
                    f"{render.human_size(s.net_rx)} / {render.human_size(s.net_tx)}",
                    f"{render.human_size(s.block_read)} / {render.human_size(s.block_write)}",
                    str(s.pids),
                ]
            )
        previous = {s.container_id: s for s in samples}
        if args.format == "json":
            render.json_lines(
                [
                    dict(
                        zip(
                            ["ID", "Name", "CPUPerc", "MemUsage", "MemPerc", "NetIO", "BlockIO", "PIDs"],
                            r,
                            strict=True,
                        )
                    )
                    for r in rows
                ]
            )
        else:
            if not args.no_stream:
                sys.stdout.write("\x1b[2J\x1b[H")
            render.table(
                [
                    "CONTAINER ID",
                    "NAME",
                    "CPU %",
                    "MEM USAGE / LIMIT",
                    "MEM %",
                    "NET I/O",
                    "BLOCK I/O",
                    "PIDS",
                ],
                rows,
            )
        sys.stdout.flush()
        if args.no_stream:
            return 0
        time.sleep(1)


def _binary_size(size: float) -> str:
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    i = 0
    while size >= 1024 and i < len(units) - 1:
        size /= 1024
        i += 1
    return f"{size:.4g}{units[i]}"


def cmd_diff(args: argparse.Namespace) -> int:
    for kind, path in containerinfo.diff(args.container):
        sys.stdout.write(f"{kind} {path}\n")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    tail = None if args.tail in ("all", "-1") else int(args.tail)
    query = containerinfo.LogQuery(
        follow=args.follow,
        tail=tail,
        since=parse_time(args.since) if args.since else None,
        until=parse_time(args.until) if args.until else None,
    )
    stop = threading.Event()
    try:
        for line in containerinfo.logs(args.container, query, stop=stop):
            out = sys.stdout.buffer if line.stream == "stdout" else sys.stderr.buffer
            prefix = (line.time.strftime("%Y-%m-%dT%H:%M:%S.%fZ") + " ").encode() if args.timestamps else b""
            out.write(prefix + line.data + b"\n")
            out.flush()
    finally:
        stop.set()
    return 0


def cmd_port(args: argparse.Namespace) -> int:
    for line in containerinfo.port_lines(args.container, args.private_port):
        sys.stdout.write(line + "\n")
    return 0
