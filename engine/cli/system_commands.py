"""CLI system commands: info, version, events, system check/reconcile/df/prune."""

from __future__ import annotations

import argparse
import sys
import time

from engine.cli import event_commands, render
from engine.cli.args import group, json_format, parse_filters, parse_time
from engine.errors import InvalidArgument
from engine.services import audit as event_service
from engine.services import metrics, monitor, supervision, system


def register(sub: argparse._SubParsersAction) -> None:
    system_group = group(sub, "system", "Manage the engine")
    p = system_group.add_parser("check", help="Look for damage in the image store")
    p.add_argument("--quick", action="store_true", help="do not re-hash blobs")
    p.set_defaults(handler=cmd_check)
    p = system_group.add_parser("df", help="Show disk usage by images, containers and volumes")
    p.add_argument("-v", "--verbose", action="store_true", help="one line per image, container and volume")
    p.set_defaults(handler=cmd_df)
    p = system_group.add_parser(
        "prune", help="Remove stopped containers, unused networks, dangling images and crash leftovers"
    )
    p.add_argument(
        "-a", "--all", action="store_true", help="remove all unused images, not just dangling ones"
    )
    p.add_argument("--volumes", action="store_true", help="remove unused anonymous volumes too")
    p.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    p.set_defaults(handler=cmd_prune)
    for parent in (sub, system_group):
        p = parent.add_parser("info", help="Show engine-wide information")
        p.add_argument("--format", help="json for the whole summary as JSON")
        p.set_defaults(handler=cmd_info)
    p = sub.add_parser("version", help="Show the versions of Berth, runc and conmon")
    p.add_argument("--format", help="json for the versions as JSON")
    p.set_defaults(handler=cmd_version)
    p = system_group.add_parser(
        "reconcile", help="Do what the server does when it starts: match records, rules and names to reality"
    )
    p.set_defaults(handler=cmd_reconcile)
    p = sub.add_parser("monitor")  # the engine's supervisor process (services/monitor), not for users
    p.add_argument("run_dir", nargs="?", help=argparse.SUPPRESS)  # names the engine in `ps` only
    p.set_defaults(handler=cmd_monitor)
    p = sub.add_parser("serve-api", help="Serve the Docker Engine API on $BERTH_RUN/docker.sock")
    p.add_argument("--socket", help="listen on this path instead")
    p.set_defaults(handler=cmd_serve_api)
    for parent, name in ((sub, "events"), (system_group, "events")):
        p = parent.add_parser(name, help="Show the engine's events (the audit log)")
        p.add_argument("--since", help="events after this time (RFC 3339, Unix time or a duration like 10m)")
        p.add_argument("--until", help="events before this time")
        p.add_argument("-f", "--filter", action="append", help="type=…, action=…, actor=…, object=…")
        p.add_argument("--follow", action="store_true", help="keep printing new events")
        p.add_argument("-n", "--tail", type=int, default=0, help="only the last N events")
        p.add_argument("--format", help="json for one JSON object per line")
        p.set_defaults(handler=cmd_events)
        event_commands.register_prune(p)


def cmd_check(args: argparse.Namespace) -> int:
    problems = system.check(verify_blobs=not args.quick)
    for line in problems:
        sys.stdout.write(line + "\n")
    sys.stdout.write(f"{len(problems)} problem(s) found\n" if problems else "no problems found\n")
    return 1 if problems else 0


def cmd_info(args: argparse.Namespace) -> int:
    facts = system.summary()
    if json_format(args.format):
        render.print_json(facts)
        return 0
    n = facts["counts"]
    runtime, conmon = facts["runtime"], facts["conmon"]
    lines = [
        f"Containers: {n['containers']}",
        f" Running: {n['running']}",
        f" Paused: {n['paused']}",
        f" Stopped: {n['stopped']}",
        f"Images: {n['images']}",
        f"Volumes: {n['volumes']}",
        f"Server Version: {system.VERSION}",
        f"Storage Driver: overlay (backing file system: {facts['backing_fs']})",
        f"Cgroup Driver: {facts['cgroup_driver']}",
        f"Cgroup Version: {facts['cgroup_mode']}",
        f"Runtime: {runtime['binary']} ({runtime['version'] or 'not found'})",
        f"Conmon: {conmon['binary']} ({conmon['version'] or 'not found'})",
        f"Security Options: {', '.join(facts['security'])}",
        f"Kernel Version: {facts['kernel']}",
        f"Operating System: {facts['os']}",
        f"Architecture: {facts['arch']}",
        f"CPUs: {facts['cpus']}",
        f"Total Memory: {render.human_size(facts['memory'])}",
        f"Name: {facts['name']}",
        f"ID: {facts['id']}",
        f"Root Dir: {facts['root']}",
    ]
    sys.stdout.write("".join(line + "\n" for line in lines))
    for warning in facts["warnings"]:
        sys.stderr.write(warning + "\n")
    return 0


def cmd_version(args: argparse.Namespace) -> int:
    host = system.info()
    found = {
        "Berth": system.VERSION,
        "runc": host["runtime"]["version"] or f"not found ({host['runtime']['error']})",
        "conmon": host["conmon"]["version"] or f"not found ({host['conmon']['error']})",
        "Kernel": host["kernel"],
    }
    if json_format(args.format):
        render.print_json(found)
        return 0
    render.table(["COMPONENT", "VERSION"], list(found.items()))
    return 0


def cmd_df(args: argparse.Namespace) -> int:
    detail = system.disk_usage_detail()
    images, containers, volumes = detail["images"], detail["containers"], detail["volumes"]
    if args.verbose:
        return _df_verbose(images, containers, volumes)
    unused_images = [r for r in images if not r["containers"]]
    stopped = [r for r in containers if r["container"].state not in ("running", "paused", "restarting")]
    unused_volumes = [r for r in volumes if not r["ref_count"]]
    image_total = detail["layers_size"]
    rows = [
        [
            "Images",
            len(images),
            len(images) - len(unused_images),
            render.human_size(image_total),
            _reclaimable(sum(r["size"] - r["shared"] for r in unused_images), image_total),
        ],
        [
            "Containers",
            len(containers),
            len(containers) - len(stopped),
            render.human_size(sum(r["size_rw"] for r in containers)),
            _reclaimable(sum(r["size_rw"] for r in stopped), sum(r["size_rw"] for r in containers)),
        ],
        [
            "Local Volumes",
            len(volumes),
            len(volumes) - len(unused_volumes),
            render.human_size(sum(r["size"] for r in volumes)),
            _reclaimable(sum(r["size"] for r in unused_volumes), sum(r["size"] for r in volumes)),
        ],
    ]
    left = detail["leftovers"]
    if left:
        # Not a Docker row: blobs, layer dirs and temp files a crashed write left; `prune` frees them.
        size = sum(item.size for item in left)
        rows.append(["Leftovers", len(left), 0, render.human_size(size), _reclaimable(size, size)])
    render.table(["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], rows)
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from engine.cli.args import confirm
    from engine.services import housekeeping

    what = ["all stopped containers", "all networks not used by at least one container"]
    what.append(
        "all images without at least one container associated to them" if args.all else "all dangling images"
    )
    if args.volumes:
        what.append("all anonymous volumes not used by at least one container")
    what.append("blobs, layers and temp files a crashed write left behind")
    prompt = (
        "WARNING! This will remove:\n"
        + "".join(f"  - {w}\n" for w in what)
        + "\nAre you sure you want to continue?"
    )
    if not confirm(prompt, args.force):
        return 1
    result = housekeeping.prune(all=args.all, volumes=args.volumes)
    sections = [
        ("Deleted Containers", result.containers),
        ("Deleted Networks", result.networks),
        ("Deleted Volumes", result.volumes),
        ("Deleted Images", [f"{k.lower()}: {v}" for item in result.images for k, v in item.items()]),
    ]
    for title, lines in sections:
        if lines:
            sys.stdout.write(f"{title}:\n" + "".join(f"{line}\n" for line in lines) + "\n")
    sys.stdout.write(f"Total reclaimed space: {render.human_size(result.reclaimed)}\n")
    return 0


def _reclaimable(part: int, total: int) -> str:
    percent = f" ({part * 100 // total}%)" if total else ""
    return render.human_size(part) + percent


def _df_verbose(images: list, containers: list, volumes: list) -> int:
    from engine.services.images import familiar_tags

    sys.stdout.write("Images space usage:\n\n")
    render.table(
        ["IMAGE", "IMAGE ID", "SIZE", "SHARED SIZE", "UNIQUE SIZE", "CONTAINERS"],
        [
            [
                ", ".join(familiar_tags(r["image"])) or "<none>",
                r["image"].short_id,
                render.human_size(r["size"]),
                render.human_size(r["shared"]),
                render.human_size(r["size"] - r["shared"]),
                r["containers"],
            ]
            for r in images
        ],
    )
    sys.stdout.write("\nContainers space usage:\n\n")
    render.table(
        ["CONTAINER ID", "IMAGE", "SIZE", "STATUS", "NAMES"],
        [
            [
                r["container"].short_id,
                r["container"].image_ref,
                render.human_size(r["size_rw"]),
                r["container"].state,
                r["container"].name,
            ]
            for r in containers
        ],
    )
    sys.stdout.write("\nLocal Volumes space usage:\n\n")
    render.table(
        ["VOLUME NAME", "LINKS", "SIZE"],
        [[r["volume"].name, r["ref_count"], render.human_size(r["size"])] for r in volumes],
    )
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    supervision.reconcile_all()
    return 0


def cmd_monitor(args: argparse.Namespace) -> int:
    monitor.serve()
    return 0


def cmd_serve_api(args: argparse.Namespace) -> int:
    import signal
    from pathlib import Path

    from engine.api.server import Server

    server = Server(Path(args.socket) if args.socket else None)
    signal.signal(signal.SIGTERM, lambda *_: server.close())
    supervision.reconcile_all()
    monitor.announce_server()  # health checks and alerts keep running while this server is up
    metrics.ensure_sampler()
    sys.stderr.write(f"Docker API listening on unix://{server.path}\n")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.close()
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    filters = parse_filters(args.filter)
    query = event_service.EventQuery(
        since=parse_time(args.since) if args.since else None,
        until=parse_time(args.until) if args.until else None,
        types=filters.pop("type", []),
        actions=filters.pop("action", []) + filters.pop("event", []),
        actors=filters.pop("actor", []) + filters.pop("user", []),
        objects=filters.pop("object", []) + filters.pop("container", []) + filters.pop("image", []),
        tail=args.tail or None,
    )
    if filters:
        raise InvalidArgument(f"invalid filter {next(iter(filters))!r} (use type, action, actor or object)")
    last_id = 0
    while True:
        for event in event_service.list_events(query, after_id=last_id):
            last_id = max(last_id, event.pk)
            _print(event, args.format == "json")
        if not args.follow:
            return 0
        sys.stdout.flush()
        query = event_service.EventQuery(**{**query.__dict__, "tail": None, "since": None})
        time.sleep(0.5)


def _print(event, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    if as_json:
        render.json_lines([event_service.as_dict(event)])
        return
    attributes = ", ".join(f"{k}={v}" for k, v in sorted((event.attributes or {}).items()))
    ident = event.object_id.removeprefix("sha256:")[:12] or "-"
    name = event.object_name or ident
    extra = f" ({attributes})" if attributes else ""
    result = "" if event.result == "ok" else f" [{event.result}: {event.message}]"
    sys.stdout.write(
        f"{event.time.isoformat()} {event.object_type} {event.action} {ident} "
        f"{name} by {event.actor}{extra}{result}\n"
    )
