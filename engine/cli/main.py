"""The `berth` CLI: parse docker-like arguments, call one service, render the result.

User errors print one line, `Error: …`, on stderr and exit non-zero; never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from engine.cli import (
    alert_commands,
    attach_commands,
    build_commands,
    container_commands,
    file_commands,
    image_commands,
    inspect_commands,
    network_commands,
    registry_commands,
    revision_commands,
    system_commands,
    user_commands,
    volume_commands,
)
from engine.cli.args import Parser, failed_object, report_error
from engine.errors import CommandNotRunnable, EngineError
from engine.services.disk import full_disk

Handler = Callable[[argparse.Namespace], int]
MODULES = [
    container_commands,
    inspect_commands,
    image_commands,
    system_commands,
    volume_commands,
    network_commands,
    registry_commands,
    build_commands,
    file_commands,
    revision_commands,
    alert_commands,
    user_commands,
    attach_commands,
]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="berth", description="Berth: a container engine with a web dashboard.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for module in MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str]) -> int:
    parser = build_parser()
    if not argv:
        parser.print_help()
        return 0
    args = parser.parse_args(list(argv))
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        (getattr(args, "subparser", None) or parser).print_help()
        return 0
    try:
        return handler(args)
    except EngineError as exc:
        report_error(_command_name(argv), exc, **_failed_on(argv, args))
        return exc.exit_status if isinstance(exc, CommandNotRunnable) else 1
    except KeyboardInterrupt:
        sys.stderr.write("Error: interrupted\n")
        return 130
    except BrokenPipeError:
        return 141
    except Exception as exc:
        # A full disk surfaces raw (ENOSPC, SQLite's "database or disk is full") from anywhere.
        full = full_disk(exc)
        if full is None:
            raise
        report_error(_command_name(argv), full, **_failed_on(argv, args))
        return 1


def _failed_on(argv: Sequence[str], args: argparse.Namespace) -> dict[str, str]:
    object_type, object_name = failed_object(argv, args)
    return {"object_type": object_type, "object_name": object_name}


def _command_name(argv: Sequence[str]) -> str:
    """`rm`, or `volume rm` for the management groups: what the event records as the action."""
    words = [a for a in argv if not a.startswith("-")][:2]
    return " ".join(
        words
        if words and words[0] in ("image", "volume", "network", "container", "system", "alerts", "user")
        else words[:1]
    )
