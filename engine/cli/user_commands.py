"""CLI user commands: `berth user ls|create|set-role|activate|deactivate|passwd`.

The same service as the dashboard's Users pages (engine/services/users.py), so both apply the same
rules and record the same events. A password is read from stdin (`--password-stdin`) or a terminal
prompt (asked twice), never from argv, and never printed.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from engine.cli.args import group, json_format
from engine.cli.render import ago, print_json, table
from engine.errors import InvalidArgument
from engine.services import users


def register(sub: argparse._SubParsersAction) -> None:
    user_group = group(sub, "user", "Manage dashboard users and their roles")
    p = user_group.add_parser("ls", aliases=["list"], help="List users with their role and state")
    p.add_argument("--format", help="json for machine-readable output")
    p.set_defaults(handler=cmd_ls)

    p = user_group.add_parser("create", help="Create a user with a role")
    p.add_argument("username")
    p.add_argument(
        "--role", choices=users.ROLES, default="viewer", help="viewer (default), operator or admin"
    )
    p.add_argument("--email", default="", help="e-mail address (optional)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.set_defaults(handler=cmd_create)

    p = user_group.add_parser("set-role", help="Make a user a viewer, operator or admin")
    p.add_argument("username")
    p.add_argument("role", choices=users.ROLES)
    p.set_defaults(handler=cmd_set_role)

    for name, active in (("activate", True), ("deactivate", False)):
        p = user_group.add_parser(name, help=f"{name.capitalize()} a user (deactivated users cannot log in)")
        p.add_argument("username")
        p.set_defaults(handler=cmd_set_active, active=active)

    p = user_group.add_parser("passwd", help="Set a user's password")
    p.add_argument("username")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.set_defaults(handler=cmd_passwd)


def cmd_ls(args: argparse.Namespace) -> int:
    found = users.list_users()
    if json_format(args.format):
        print_json(
            [
                {
                    "Username": u.username,
                    "Role": u.role or "",
                    "Active": u.is_active,
                    "LastLogin": u.last_login.isoformat() if u.last_login else None,
                    "Joined": u.date_joined.isoformat(),
                }
                for u in found
            ]
        )
        return 0
    rows = [
        (
            u.username,
            u.role or "none",
            "active" if u.is_active else "deactivated",
            ago(u.last_login) if u.last_login else "never",
        )
        for u in found
    ]
    table(("USERNAME", "ROLE", "STATE", "LAST LOGIN"), rows)
    return 0


def cmd_create(args: argparse.Namespace) -> int:
    password = _read_password(args.password_stdin)
    user = users.create(args.username, password, role=args.role, email=args.email)
    sys.stdout.write(f"Created user {user.username} ({args.role})\n")
    return 0


def cmd_set_role(args: argparse.Namespace) -> int:
    users.set_role(args.username, args.role)
    sys.stdout.write(f"{args.username} is now {'an' if args.role[0] in 'aeiou' else 'a'} {args.role}\n")
    return 0


def cmd_set_active(args: argparse.Namespace) -> int:
    users.set_active(args.username, args.active)
    sys.stdout.write(f"{'Activated' if args.active else 'Deactivated'} {args.username}\n")
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    users.get(args.username)  # an unknown user is reported before asking for a password
    users.set_password(args.username, _read_password(args.password_stdin))
    sys.stdout.write(f"Password of {args.username} changed\n")
    return 0


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif not sys.stdin.isatty():
        raise InvalidArgument("cannot prompt for a password without a terminal (use --password-stdin)")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != password:
            raise InvalidArgument("the two passwords differ")
    if not password:
        raise InvalidArgument("the password is empty")
    return password
