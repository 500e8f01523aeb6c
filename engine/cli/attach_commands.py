"""CLI: `berth attach CONTAINER` — the terminal of a running container started with -t.

The dashboard's terminal tab offers the same as *Attach to main process*; both go through
services.attach.open_console (an "attach" event) and close_console (a "detach" event). Keys go to the
main process when it was run with -i; Ctrl-P Ctrl-Q (Docker's default) detaches and leaves it running.
"""

from __future__ import annotations

import argparse
import sys

from engine.cli.attach import _raw_terminal, _watch_window, relay
from engine.services import attach as attaching
from engine.services import lifecycle

DETACH_KEYS = b"\x10\x11"  # Ctrl-P Ctrl-Q


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("attach", help="Attach to the terminal of a running container run with -t")
    p.add_argument("container")
    p.add_argument("--no-stdin", action="store_true", help="do not send keys to the container")
    p.set_defaults(handler=cmd_attach)


def cmd_attach(args: argparse.Namespace) -> int:
    container, sock = attaching.open_console(args.container)
    detached = False
    try:
        with sock, _raw_terminal(True):
            _watch_window(container)
            send_keys = not args.no_stdin and sys.stdin.isatty()
            detached = relay(sock, stdin_fd=sys.stdin.fileno() if send_keys else -1, detach_keys=DETACH_KEYS)
    finally:
        attaching.close_console(container, sock)
    return 0 if detached else lifecycle.wait(container)
