"""CLI registry commands: pull, push, login, logout.

Output follows Docker's: per-layer lines (bars on a terminal), `Digest: …`, `Status: …`, and the full
reference last. A password is read from stdin or a terminal prompt, never from argv, and never printed.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import threading
from typing import TextIO

from engine.cli.progressbar import Bars
from engine.errors import InvalidArgument
from engine.progress import LayerProgress, ProgressEvent
from engine.services import refs, registry

# Statuses that repeat as bytes move; on a pipe each is shown once per layer, like Docker's plain output.
_NOISY = frozenset({"Downloading", "Pushing"})


def register(sub: argparse._SubParsersAction) -> None:
    image = sub.choices.get("image")
    image_sub = _subparsers(image) if image is not None else None
    for parent in (sub, image_sub):
        if parent is None:
            continue
        p = parent.add_parser("pull", help="Download an image from a registry")
        p.add_argument("reference", help="NAME[:TAG] or NAME@DIGEST")
        p.add_argument("-q", "--quiet", action="store_true", help="print only the image reference")
        p.add_argument("--platform", help="os/arch[/variant] to pick from a multi-platform image")
        p.set_defaults(handler=cmd_pull)

        p = parent.add_parser("push", help="Upload an image to a registry")
        p.add_argument("reference", help="NAME[:TAG]")
        p.add_argument("-q", "--quiet", action="store_true", help="suppress the progress output")
        p.set_defaults(handler=cmd_push)

    p = sub.add_parser("login", help="Log in to a registry")
    p.add_argument("server", nargs="?", default="docker.io", help="registry host (default docker.io)")
    p.add_argument("-u", "--username", help="user name")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument("--list", action="store_true", help="list the registries logged in to (no passwords)")
    p.set_defaults(handler=cmd_login)

    p = sub.add_parser("logout", help="Log out from a registry")
    p.add_argument("server", nargs="?", default="docker.io", help="registry host (default docker.io)")
    p.set_defaults(handler=cmd_logout)


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    """The `image` group's subcommands, so `image pull`/`image push` work as in Docker."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


class Output:
    """The progress listener of pull and push: bars on a terminal, one line per layer status otherwise."""

    def __init__(self, out: TextIO | None = None, *, quiet: bool = False) -> None:
        self.out = out or sys.stdout
        self.quiet = quiet
        self.bars = Bars(self.out) if self.out.isatty() and not quiet else None
        self._seen: dict[str, str] = {}
        self._lock = threading.Lock()  # layer bytes are reported from the decoder thread

    def __call__(self, event: ProgressEvent) -> None:
        if self.quiet:
            return
        with self._lock:
            if self.bars is not None:
                self.bars(event)
                return
            if isinstance(event, LayerProgress):
                if self._seen.get(event.id) == event.status or (
                    event.status in _NOISY and event.id in self._seen
                ):
                    return
                self._seen[event.id] = event.status
                self.out.write(f"{event.id}: {event.status}\n")
            elif hasattr(event, "text"):
                self.out.write(event.text.rstrip("\n") + "\n")

    def close(self) -> None:
        if self.bars is not None:
            self.bars.close()


def cmd_pull(args: argparse.Namespace) -> int:
    parsed = refs.parse_image(args.reference.strip())
    output = Output(quiet=args.quiet)
    try:
        registry.pull(args.reference, platform=args.platform, progress=output)
    finally:
        output.close()
    sys.stdout.write(f"{parsed}\n")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    output = Output(quiet=args.quiet)
    try:
        result = registry.push(args.reference, progress=output)
    finally:
        output.close()
    if args.quiet:
        sys.stdout.write(f"{result.reference}\n")
    return 0


def cmd_login(args: argparse.Namespace) -> int:
    if args.list:
        return _list_logins()
    username = args.username
    if args.password_stdin:
        if not username:
            raise InvalidArgument("--password-stdin needs --username")
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        if not sys.stdin.isatty():
            raise InvalidArgument("cannot prompt for a password without a terminal (use --password-stdin)")
        if not username:
            sys.stderr.write("Username: ")
            sys.stderr.flush()
            username = sys.stdin.readline().strip()
        password = getpass.getpass("Password: ")
    if not username or not password:
        raise InvalidArgument("login needs a user name and a password")
    registry.login(args.server, username, password)
    sys.stdout.write("Login Succeeded\n")
    return 0


def _list_logins() -> int:
    """`berth login --list`: one `SERVER USERNAME` line per registry, as the dashboard lists them."""
    rows = [(login.server, login.username) for login in registry.logins()]
    width = max([len("REGISTRY")] + [len(server) for server, _ in rows])
    sys.stdout.write(f"{'REGISTRY':<{width}}   USERNAME\n")
    for server, username in rows:
        sys.stdout.write(f"{server:<{width}}   {username}\n")
    return 0


def cmd_logout(args: argparse.Namespace) -> int:
    if registry.logout(args.server):
        sys.stdout.write(f"Removing login credentials for {args.server}\n")
    else:
        sys.stdout.write(f"Not logged in to {args.server}\n")
    return 0
