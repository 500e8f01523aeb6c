"""CLI volume commands: volume create/ls/inspect/rm/prune, and export/import (backup and restore)."""

from __future__ import annotations

import argparse
import os
import sys

from engine.cli import render
from engine.cli.args import confirm, for_each, group, json_format, parse_filters, parse_labels
from engine.cli.progressbar import Bars
from engine.errors import InvalidArgument
from engine.services import volumebackup, volumes


def register(sub: argparse._SubParsersAction) -> None:
    volume = group(sub, "volume", "Manage volumes")
    p = volume.add_parser("create", help="Create a volume")
    p.add_argument("name", nargs="?")
    p.add_argument("--name", dest="name_option")
    p.add_argument("-d", "--driver", default="local")
    p.add_argument("-l", "--label", action="append", help="KEY=VALUE")
    p.add_argument("-o", "--opt", action="append", help="driver option KEY=VALUE")
    p.set_defaults(handler=cmd_create)

    for name in ("ls", "list"):
        p = volume.add_parser(name, help="List volumes")
        p.add_argument("-q", "--quiet", action="store_true")
        p.add_argument("-f", "--filter", action="append", help="dangling=true, name=…, label=…")
        p.add_argument("--format", help="json for one JSON object per line")
        p.set_defaults(handler=cmd_ls)

    p = volume.add_parser("inspect", help="Show volume details as JSON")
    p.add_argument("volumes", nargs="+")
    p.add_argument("-f", "--format")
    p.set_defaults(handler=cmd_inspect)

    for name in ("rm", "remove"):
        p = volume.add_parser(name, help="Remove volumes")
        p.add_argument("volumes", nargs="+")
        p.add_argument("-f", "--force", action="store_true", help="no error when a volume does not exist")
        p.set_defaults(handler=cmd_rm)

    p = volume.add_parser("prune", help="Remove unused anonymous volumes (-a: all unused volumes)")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    p.add_argument("--filter", action="append")
    p.set_defaults(handler=cmd_prune)

    p = volume.add_parser("export", help="Back up a volume as a tar (.tar, .tar.gz/.tgz or .tar.zst)")
    p.add_argument("name")
    p.add_argument(
        "-o", "--output", required=True, help="FILE (its suffix picks the format), or - for stdout"
    )
    p.add_argument("--compression", choices=volumebackup.COMPRESSIONS, help="format for -o - (default none)")
    p.add_argument("--pause", action="store_true", help="pause running containers that use it meanwhile")
    p.set_defaults(handler=cmd_export)

    p = volume.add_parser("import", help="Restore a volume from a backup (FILE or - for stdin)")
    p.add_argument("name")
    p.add_argument("file")
    p.add_argument("--force", action="store_true", help="replace the contents of a non-empty volume")
    p.set_defaults(handler=cmd_import)


def cmd_create(args: argparse.Namespace) -> int:
    name = args.name or args.name_option
    volume = volumes.create(
        name, labels=parse_labels(args.label), options=parse_labels(args.opt), driver=args.driver
    )
    sys.stdout.write(volume.name + "\n")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    found = volumes.list_volumes(filters=parse_filters(args.filter))
    if args.quiet:
        sys.stdout.write("".join(f"{v.name}\n" for v in found))
        return 0
    if json_format(args.format):
        render.json_lines(
            [
                {
                    "Driver": v.driver,
                    "Labels": ",".join(f"{k}={val}" for k, val in v.labels.items()),
                    "Mountpoint": volumes.mountpoint(v),
                    "Name": v.name,
                    "Scope": "local",
                }
                for v in found
            ]
        )
        return 0
    render.table(["DRIVER", "VOLUME NAME"], [[v.driver, v.name] for v in found])
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    json_format(args.format)
    render.print_json([volumes.inspect(name) for name in args.volumes])
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    return for_each("volume rm", args.volumes, lambda name: volumes.remove(name, force=args.force))


def cmd_prune(args: argparse.Namespace) -> int:
    what = (
        "all volumes not used by at least one container"
        if args.all
        else "all anonymous local volumes not used by at least one container"
    )
    if not confirm(f"WARNING! This will remove {what}.\nAre you sure you want to continue?", args.force):
        return 1
    result = volumes.prune(all=args.all, filters=parse_filters(args.filter))
    if result.removed:
        sys.stdout.write("Deleted Volumes:\n" + "".join(f"{n}\n" for n in result.removed) + "\n")
    sys.stdout.write(f"Total reclaimed space: {render.human_size(result.reclaimed)}\n")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    volumes.get(args.name)  # an unknown volume is an error before any file is made
    bars = Bars()  # also prints the service's warnings (a running container, skipped devices)
    try:
        if args.output == "-":
            if sys.stdout.isatty():
                raise InvalidArgument("refusing to write a backup to a terminal: use -o FILE or redirect")
            volumebackup.export(
                args.name,
                sys.stdout.buffer,
                compression=args.compression or "none",
                pause=args.pause,
                progress=bars,
            )
            sys.stdout.buffer.flush()
            return 0
        compression = volumebackup.compression_for(args.output)
        if args.compression and args.compression != compression:
            raise InvalidArgument(
                f"--compression {args.compression} does not match the file name {args.output}"
            )
        tmp = f"{args.output}.tmp-{os.getpid()}"
        try:
            with open(tmp, "wb") as out:
                volumebackup.export(args.name, out, compression=compression, pause=args.pause, progress=bars)
            os.replace(tmp, args.output)
        except OSError as exc:
            raise InvalidArgument(f"cannot write {args.output}: {exc.strerror}") from exc
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    finally:
        bars.close()
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    bars = Bars()
    try:
        if args.file == "-":
            volumebackup.import_(args.name, sys.stdin.buffer, force=args.force, progress=bars)
        else:
            try:
                stream = open(args.file, "rb")
            except OSError as exc:
                raise InvalidArgument(f"cannot open {args.file}: {exc.strerror}") from exc
            with stream:
                volumebackup.import_(args.name, stream, force=args.force, progress=bars)
    finally:
        bars.close()
    sys.stdout.write(args.name + "\n")
    return 0
