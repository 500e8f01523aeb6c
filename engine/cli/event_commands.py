"""CLI: `berth events prune` — delete audit events older than the retention (or --older-than DAYS).

The dashboard's Events page offers the same prune (admins); both go through services.audit.prune,
which records the prune as an event.
"""

from __future__ import annotations

import argparse
import sys

from engine import conf
from engine.cli.args import confirm
from engine.services import audit


def register_prune(events_parser: argparse.ArgumentParser) -> None:
    """Give `berth events` (and `berth system events`) the optional subcommand `prune`."""
    sub = events_parser.add_subparsers(dest="events_command", metavar="{prune}", required=False)
    p = sub.add_parser("prune", help="Delete events older than the retention (BERTH_EVENTS_RETENTION_DAYS)")
    p.add_argument("--older-than", type=int, metavar="DAYS", help="delete events older than DAYS days")
    p.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    p.set_defaults(handler=cmd_prune)


def cmd_prune(args: argparse.Namespace) -> int:
    days = args.older_than if args.older_than is not None else conf.events_retention_days()
    if not confirm(f"WARNING! This deletes every event older than {days} days.\nContinue?", args.force):
        return 1
    result = audit.prune(older_than_days=args.older_than)
    sys.stdout.write(
        f"Deleted {result.deleted} event(s) from before {result.before.isoformat(timespec='seconds')}\n"
    )
    return 0
