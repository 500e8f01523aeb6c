"""CLI commands that change a container in place or move its files: update, cp, export
(and their `container …` aliases)."""

from __future__ import annotations

import argparse
import os
import sys

from engine.cli.args import container_group_parsers, report_error
from engine.errors import EngineError, InvalidArgument
from engine.services import filecopy, files, updates
from engine.services import options as opts


def register(sub: argparse._SubParsersAction) -> None:
    for parent in container_group_parsers(sub):
        p = parent.add_parser("update", help="Update the resource limits or restart policy of containers")
        p.add_argument("containers", nargs="+")
        p.add_argument("-m", "--memory", help="memory limit (e.g. 256m)")
        p.add_argument("--memory-swap", help="memory plus swap limit (-1 for unlimited swap)")
        p.add_argument("--cpus", help="number of CPUs (e.g. 0.5)")
        p.add_argument("-c", "--cpu-shares", type=int, help="CPU shares (relative weight)")
        p.add_argument("--cpu-quota", type=int, help="CFS quota in microseconds")
        p.add_argument("--cpu-period", type=int, help="CFS period in microseconds")
        p.add_argument("--pids-limit", type=int, help="process limit (-1 for unlimited)")
        p.add_argument("--restart", help="restart policy: no, on-failure[:N], always, unless-stopped")
        p.set_defaults(handler=cmd_update)

        p = parent.add_parser(
            "cp",
            help="Copy files between a container and the host",
            description="berth cp [-a] [-L] CONTAINER:SRC DEST|-  or  berth cp [-a] [-L] SRC|- CONTAINER:DEST",
        )
        p.add_argument("source")
        p.add_argument("destination")
        p.add_argument("-a", "--archive", action="store_true", help="keep uid/gid of the source")
        p.add_argument("-L", "--follow-link", action="store_true", help="follow a symlink in SRC")
        p.set_defaults(handler=cmd_cp)

        p = parent.add_parser("export", help="Export a container's filesystem as a tar archive")
        p.add_argument("container")
        p.add_argument("-o", "--output", help="write to this file instead of standard output")
        p.set_defaults(handler=cmd_export)


def changes_from_args(args: argparse.Namespace) -> updates.Changes:
    return updates.Changes(
        memory=opts.parse_size(args.memory, "--memory") if args.memory else None,
        memory_swap=(-1 if args.memory_swap == "-1" else opts.parse_size(args.memory_swap, "--memory-swap"))
        if args.memory_swap
        else None,
        nano_cpus=int(opts.parse_cpus(args.cpus) * 1e9) if args.cpus else None,
        cpu_shares=args.cpu_shares,
        cpu_quota=args.cpu_quota,
        cpu_period=args.cpu_period,
        pids_limit=args.pids_limit,
        restart=opts.parse_restart(args.restart) if args.restart else None,
    )


def cmd_update(args: argparse.Namespace) -> int:
    changes = changes_from_args(args)
    failed = False
    for ref in args.containers:
        try:
            _, warnings = updates.update(ref, changes)
        except EngineError as exc:
            report_error("update", exc)
            failed = True
            continue
        for warning in warnings:
            sys.stderr.write(f"WARNING: {warning}\n")
        sys.stdout.write(ref + "\n")
    return 1 if failed else 0


def _container_part(spec: str) -> tuple[str, str] | None:
    """Split `CONTAINER:PATH`; None for a host path (one starting with / or . is never a container)."""
    if spec.startswith(("/", ".")):
        return None
    name, sep, path = spec.partition(":")
    if not sep or not name:
        return None
    return name, path


def cmd_cp(args: argparse.Namespace) -> int:
    src = _container_part(args.source)
    dst = _container_part(args.destination)
    if src and dst:
        raise InvalidArgument("copying between containers is not supported")
    if not src and not dst:
        raise InvalidArgument("must specify at least one container source (CONTAINER:PATH)")
    if src:
        ref, path = src
        if not path:
            raise InvalidArgument("filesystem path in the container cannot be empty")
        if args.destination == "-":
            sys.stdout.flush()
            filecopy.copy_from_container(
                ref, path, "-", follow_link=args.follow_link, keep_owner=args.archive, out=sys.stdout.buffer
            )
            sys.stdout.buffer.flush()
        else:
            filecopy.copy_from_container(
                ref, path, args.destination, follow_link=args.follow_link, keep_owner=args.archive
            )
        return 0
    assert dst is not None
    ref, path = dst
    if not path:
        raise InvalidArgument("filesystem path in the container cannot be empty")
    filecopy.copy_to_container(
        ref,
        args.source,
        path,
        follow_link=args.follow_link,
        keep_owner=args.archive,
        stdin=sys.stdin.buffer if args.source == "-" else None,
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    if not args.output and sys.stdout.isatty():
        raise InvalidArgument("refusing to write a tar archive to a terminal: use -o FILE or redirect")
    stream = files.export(args.container)
    try:
        if args.output:
            tmp = f"{args.output}.tmp-{os.getpid()}"
            try:
                with open(tmp, "wb") as out:
                    for chunk in stream:
                        out.write(chunk)
                os.replace(tmp, args.output)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        else:
            for chunk in stream:
                sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
    finally:
        stream.close()
    return 0
