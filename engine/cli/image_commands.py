"""CLI image commands: images, image inspect/history/tag/rm/prune, import, load, save."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from engine import conf
from engine.cli import render
from engine.cli.args import confirm, for_each, group, json_format, parse_filters
from engine.cli.progressbar import Bars
from engine.errors import InvalidArgument
from engine.services import images, imagetransfer


def register(sub: argparse._SubParsersAction) -> None:
    image = group(sub, "image", "Manage images")
    for parent, name in ((sub, "images"), (image, "ls"), (image, "list")):
        p = parent.add_parser(name, help="List images")
        p.add_argument("reference", nargs="?", help="show only images matching this name")
        p.add_argument(
            "-a", "--all", action="store_true", help="show all images (default hides intermediate)"
        )
        p.add_argument("-q", "--quiet", action="store_true", help="only show image IDs")
        p.add_argument("--digests", action="store_true", help="show digests")
        p.add_argument("--no-trunc", action="store_true", help="don't truncate output")
        p.add_argument("-f", "--filter", action="append", help="filter: dangling=true, reference=…, label=…")
        p.add_argument("--format", help="json for one JSON object per line")
        p.set_defaults(handler=cmd_images)

    p = image.add_parser("inspect", help="Show image details as JSON")
    p.add_argument("images", nargs="+")
    p.add_argument("-f", "--format", help="json (the default)")
    p.set_defaults(handler=cmd_inspect)

    for parent, name in ((sub, "history"), (image, "history")):
        p = parent.add_parser(name, help="Show the history of an image")
        p.add_argument("image")
        p.add_argument("-q", "--quiet", action="store_true")
        p.add_argument("--no-trunc", action="store_true")
        p.add_argument("-H", "--human", default="true", help="human-readable sizes and dates (default true)")
        p.add_argument("--format")
        p.set_defaults(handler=cmd_history)

    for parent, name in ((sub, "tag"), (image, "tag")):
        p = parent.add_parser(name, help="Create a tag TARGET that refers to SOURCE")
        p.add_argument("source")
        p.add_argument("target")
        p.set_defaults(handler=cmd_tag)

    for parent, name in ((sub, "rmi"), (image, "rm"), (image, "remove")):
        p = parent.add_parser(name, help="Remove one or more images")
        p.add_argument("images", nargs="+")
        p.add_argument("-f", "--force", action="store_true", help="force removal")
        p.set_defaults(handler=cmd_rmi)

    p = image.add_parser("prune", help="Remove unused images")
    p.add_argument("-a", "--all", action="store_true", help="remove all images not used by a container")
    p.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    p.set_defaults(handler=cmd_prune)

    for parent, name in ((sub, "import"), (image, "import")):
        p = parent.add_parser(name, help="Import a root filesystem tarball as an image")
        p.add_argument("file", help="tarball path, or - for stdin")
        p.add_argument("reference", nargs="?")
        p.add_argument("-c", "--change", action="append", default=[], help="apply a Dockerfile instruction")
        p.add_argument("-m", "--message", default="", help="commit message")
        p.set_defaults(handler=cmd_import)

    for parent, name in ((sub, "load"), (image, "load")):
        p = parent.add_parser(name, help="Load images from a tar archive (docker save or OCI layout)")
        p.add_argument("-i", "--input", help="read from this file instead of stdin")
        p.add_argument("-q", "--quiet", action="store_true", help="suppress the progress output")
        p.set_defaults(handler=cmd_load)

    for parent, name in ((sub, "save"), (image, "save")):
        p = parent.add_parser(name, help="Save images to a tar archive (OCI layout + docker manifest.json)")
        p.add_argument("images", nargs="+")
        p.add_argument("-o", "--output", help="write to this file instead of stdout")
        p.set_defaults(handler=cmd_save)


def cmd_images(args: argparse.Namespace) -> int:
    filters = parse_filters(args.filter)
    if args.reference:
        filters.setdefault("reference", []).append(args.reference)
    rows = images.list_images(all=args.all, filters=filters)
    if args.quiet:
        seen: list[str] = []
        for row in rows:
            ident = row.image.id if args.no_trunc else row.image.short_id
            if ident not in seen:
                seen.append(ident)
        sys.stdout.write("".join(f"{i}\n" for i in seen))
        return 0
    if json_format(args.format):
        render.json_lines(
            [
                {
                    "Containers": str(row.image.containers.count()),
                    "CreatedAt": render.iso(row.image.created),
                    "CreatedSince": render.ago(row.image.created),
                    "Digest": row.digest,
                    "ID": row.image.short_id,
                    "Repository": row.repository,
                    "Size": render.human_size(row.image.size),
                    "Tag": row.tag,
                }
                for row in rows
            ]
        )
        return 0
    headers = ["REPOSITORY", "TAG"] + (["DIGEST"] if args.digests else []) + ["IMAGE ID", "CREATED", "SIZE"]
    table = []
    for row in rows:
        ident = row.image.id if args.no_trunc else row.image.short_id
        cells = [row.repository, row.tag] + ([row.digest] if args.digests else [])
        table.append(cells + [ident, render.ago(row.image.created), render.human_size(row.image.size)])
    render.table(headers, table)
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    json_format(args.format)
    render.print_json([images.inspect(ref) for ref in args.images])
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    entries = images.history(args.image)
    if args.quiet:
        for entry in entries:
            sys.stdout.write((entry["Id"] if args.no_trunc else _short(entry["Id"])) + "\n")
        return 0
    if args.format == "json":
        render.json_lines(entries)
        return 0
    human = args.human.lower() != "false"
    rows = []
    for entry in entries:
        created_by = entry["CreatedBy"]
        if not args.no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        created = entry["Created"]
        if human:
            from django.utils.dateparse import parse_datetime

            parsed = parse_datetime(created) if created else None
            created = render.ago(parsed) if parsed else "N/A"
        size = render.human_size(entry["Size"]) if human else str(entry["Size"])
        rows.append(
            [
                _short(entry["Id"]) if not args.no_trunc else entry["Id"],
                created,
                created_by,
                size,
                entry["Comment"],
            ]
        )
    render.table(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], rows)
    return 0


def _short(ident: str) -> str:
    return ident[7:19] if ident.startswith("sha256:") else ident


def cmd_tag(args: argparse.Namespace) -> int:
    images.tag(args.source, args.target)
    return 0


def cmd_rmi(args: argparse.Namespace) -> int:
    def remove(ref: str) -> None:
        for item in images.remove(ref, force=args.force):
            sys.stdout.write("".join(f"{key}: {value}\n" for key, value in item.items()))

    return for_each("rmi", args.images, remove, echo=False)


def cmd_prune(args: argparse.Namespace) -> int:
    what = (
        "all images without at least one container associated to them" if args.all else "all dangling images"
    )
    if not confirm(f"WARNING! This will remove {what}.\nAre you sure you want to continue?", args.force):
        return 1
    result = images.prune(all=args.all)
    if result.deleted:
        sys.stdout.write("Deleted Images:\n")
        for item in result.deleted:
            for key, value in item.items():
                sys.stdout.write(f"{key.lower()}: {value}\n")
        sys.stdout.write("\n")
    sys.stdout.write(f"Total reclaimed space: {render.human_size(result.reclaimed)}\n")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    bars = Bars()
    try:
        if args.file == "-":
            image = imagetransfer.import_tarball(
                sys.stdin.buffer, args.reference, changes_=args.change, message=args.message, progress=bars
            )
        else:
            path = Path(args.file)
            try:
                stream = path.open("rb")
            except OSError as exc:
                raise InvalidArgument(f"cannot open {args.file}: {exc.strerror}") from exc
            with stream:
                image = imagetransfer.import_tarball(
                    stream,
                    args.reference,
                    changes_=args.change,
                    message=args.message,
                    size=os.fstat(stream.fileno()).st_size,
                    progress=bars,
                )
    finally:
        bars.close()
    sys.stdout.write(image.id + "\n")
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    bars = Bars(enabled=False if args.quiet else None)
    try:
        if args.input:
            if not Path(args.input).is_file():
                raise InvalidArgument(f"cannot open {args.input}: no such file")
            loaded = imagetransfer.load(Path(args.input), progress=bars)
        else:
            if sys.stdin.isatty():
                raise InvalidArgument("requested load from stdin, but stdin is a terminal (use -i FILE)")
            conf.ensure_dirs()
            # The archive is read with random access, so stdin is spooled to a private temp file first.
            with tempfile.NamedTemporaryFile(dir=conf.tmp_dir(), prefix="load-") as tmp:
                reserve = conf.disk_reserve()
                while chunk := sys.stdin.buffer.read(1 << 20):
                    tmp.write(chunk)
                    reserve.written(len(chunk))
                tmp.flush()
                loaded = imagetransfer.load(Path(tmp.name), progress=bars)
    finally:
        bars.close()
    for image, tags in loaded:
        if tags:
            for tag in tags:
                sys.stdout.write(f"Loaded image: {tag}\n")
        else:
            sys.stdout.write(f"Loaded image ID: {image.id}\n")
    return 0


def cmd_save(args: argparse.Namespace) -> int:
    bars = Bars()
    try:
        if args.output:
            target = Path(args.output)
            tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
            try:
                with tmp.open("wb") as out:
                    imagetransfer.save(args.images, out, progress=bars)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
        else:
            if sys.stdout.isatty():
                raise InvalidArgument("refusing to write an archive to a terminal (use -o FILE or redirect)")
            imagetransfer.save(args.images, sys.stdout.buffer, progress=bars)
    finally:
        bars.close()
    return 0
