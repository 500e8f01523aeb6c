"""CLI system commands: events, system check, system reconcile."""

from __future__ import annotations

import argparse
import sys
import time

from engine.cli import render
from engine.cli.args import group, parse_filters, parse_time
from engine.errors import InvalidArgument
from engine.services import audit as event_service
from engine.services import supervision, system


def register(sub: argparse._SubParsersAction) -> None:
    system_group = group(sub, "system", "Manage the engine")
    p = system_group.add_parser("check", help="Look for damage in the image store")
    p.add_argument("--quick", action="store_true", help="do not re-hash blobs")
    p.set_defaults(handler=cmd_check)
    p = system_group.add_parser(
        "reconcile", help="Do what the server does when it starts: match records, rules and names to reality"
    )
    p.set_defaults(handler=cmd_reconcile)
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


def cmd_check(args: argparse.Namespace) -> int:
    problems = system.check(verify_blobs=not args.quick)
    for line in problems:
        sys.stdout.write(line + "\n")
    sys.stdout.write(f"{len(problems)} problem(s) found\n" if problems else "no problems found\n")
    return 1 if problems else 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    supervision.reconcile_all()
    return 0


def cmd_serve_api(args: argparse.Namespace) -> int:
    import signal
    from pathlib import Path

    from engine.api.server import Server

    server = Server(Path(args.socket) if args.socket else None)
    signal.signal(signal.SIGTERM, lambda *_: server.close())
    supervision.reconcile_all()
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
