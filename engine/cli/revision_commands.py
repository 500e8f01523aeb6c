"""CLI commands for a container's edit history: `container revisions NAME`, `container rollback NAME [N]`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from engine.cli import render
from engine.cli.args import container_group_parsers
from engine.services import revisions


def register(sub: argparse._SubParsersAction) -> None:
    for parent in container_group_parsers(sub)[1:]:  # the `container` group only
        p = parent.add_parser("revisions", help="List the revisions of a container's spec (newest first)")
        p.add_argument("container")
        p.add_argument("--format", choices=("table", "json"), default="table")
        p.set_defaults(handler=cmd_revisions)
        p = parent.add_parser(
            "rollback", help="Recreate a container from an earlier revision (default: the previous one)"
        )
        p.add_argument("container")
        p.add_argument("revision", nargs="?", type=int, help="revision number (see `container revisions`)")
        p.set_defaults(handler=cmd_rollback)


def _changes(row: Any) -> str:
    if row.action == "create":
        return "first recorded spec"
    if row.action == "rollback" and row.restored:
        return f"back to {row.restored}: " + (", ".join(str(change[0]) for change in row.changes) or "-")
    return ", ".join(str(change[0]) for change in row.changes) or "-"


def cmd_revisions(args: argparse.Namespace) -> int:
    rows = revisions.revisions(args.container)
    current = rows[0].number if rows else None
    if args.format == "json":
        render.print_json(
            [
                {
                    "Number": r.number,
                    "Current": r.number == current,
                    "Action": r.action,
                    "Restored": r.restored,
                    "Actor": r.actor,
                    "Created": render.iso(r.created),
                    "ContainerID": r.container_id,
                    "Changes": r.changes,
                    "Spec": r.spec,
                }
                for r in rows
            ]
        )
        return 0
    if not rows:
        sys.stdout.write(f"{args.container} has no revisions: it was never edited\n")
        return 0
    render.table(
        ("REVISION", "ACTION", "BY", "CREATED", "CHANGED"),
        [
            (
                f"{r.number}{' (current)' if r.number == current else ''}",
                r.action,
                r.actor or "-",
                render.ago(r.created),
                _changes(r),
            )
            for r in rows
        ],
    )
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    before = revisions.revisions(args.container)
    target = args.revision if args.revision is not None else (before[1].number if len(before) > 1 else 0)
    container = revisions.rollback(args.container, args.revision)
    latest = revisions.revisions(container.id)[0]
    sys.stdout.write(
        f"{container.name}: rolled back to revision {target}, recorded as revision "
        f"{latest.number} (container {container.short_id})\n"
    )
    return 0
