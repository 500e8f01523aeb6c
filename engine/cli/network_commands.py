"""CLI network commands: network create/ls/inspect/rm/prune/connect/disconnect."""

from __future__ import annotations

import argparse
import sys

from engine.cli import render
from engine.cli.args import confirm, for_each, group, json_format, parse_filters, parse_labels
from engine.services import networks


def register(sub: argparse._SubParsersAction) -> None:
    network = group(sub, "network", "Manage networks")
    p = network.add_parser("create", help="Create a bridge network")
    p.add_argument("name")
    p.add_argument("-d", "--driver", default="bridge")
    p.add_argument("--subnet", default="", help="CIDR, e.g. 10.20.0.0/24")
    p.add_argument("--gateway", default="")
    p.add_argument("--ip-range", default="")
    p.add_argument("--internal", action="store_true", help="no route out of the network")
    p.add_argument("-l", "--label", action="append", help="KEY=VALUE")
    p.add_argument("-o", "--opt", action="append", help="driver option KEY=VALUE")
    p.set_defaults(handler=cmd_create)

    for name in ("ls", "list"):
        p = network.add_parser(name, help="List networks")
        p.add_argument("-q", "--quiet", action="store_true")
        p.add_argument("--no-trunc", action="store_true")
        p.add_argument(
            "-f", "--filter", action="append", help="name=…, id=…, driver=…, type=custom|builtin, label=…"
        )
        p.add_argument("--format", help="json for one JSON object per line")
        p.set_defaults(handler=cmd_ls)

    p = network.add_parser("inspect", help="Show network details as JSON")
    p.add_argument("networks", nargs="+")
    p.add_argument("-f", "--format")
    p.set_defaults(handler=cmd_inspect)

    for name in ("rm", "remove"):
        p = network.add_parser(name, help="Remove networks")
        p.add_argument("networks", nargs="+")
        p.add_argument("-f", "--force", action="store_true", help="no error when a network does not exist")
        p.set_defaults(handler=cmd_rm)

    p = network.add_parser("prune", help="Remove all networks no container uses")
    p.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    p.add_argument("--filter", action="append")
    p.set_defaults(handler=cmd_prune)

    p = network.add_parser("connect", help="Connect a container to a network")
    p.add_argument("network")
    p.add_argument("container")
    p.add_argument("--ip")
    p.add_argument("--alias", action="append", default=[])
    p.set_defaults(handler=cmd_connect)

    p = network.add_parser("disconnect", help="Disconnect a container from a network")
    p.add_argument("network")
    p.add_argument("container")
    p.add_argument("-f", "--force", action="store_true")
    p.set_defaults(handler=cmd_disconnect)

    p = network.add_parser(
        "teardown", help="Remove this engine's bridges, firewall table and DNS server from the host"
    )
    p.set_defaults(handler=cmd_teardown)


def cmd_teardown(args: argparse.Namespace) -> int:
    for bridge in networks.teardown_host():
        sys.stdout.write(bridge + "\n")
    return 0


def cmd_create(args: argparse.Namespace) -> int:
    network = networks.create(
        args.name,
        driver=args.driver,
        subnet=args.subnet,
        gateway=args.gateway,
        ip_range=args.ip_range,
        internal=args.internal,
        labels=parse_labels(args.label),
        options=parse_labels(args.opt),
    )
    sys.stdout.write(network.id + "\n")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    found = networks.list_networks(filters=parse_filters(args.filter))
    if args.quiet:
        sys.stdout.write("".join(f"{n.id if args.no_trunc else n.short_id}\n" for n in found))
        return 0
    if json_format(args.format):
        render.json_lines(
            [
                {
                    "CreatedAt": render.iso(n.created),
                    "Driver": n.driver,
                    "ID": n.short_id,
                    "IPv6": "false",
                    "Internal": str(n.internal).lower(),
                    "Labels": ",".join(f"{k}={v}" for k, v in n.labels.items()),
                    "Name": n.name,
                    "Scope": "local",
                    "Subnet": n.subnet,
                }
                for n in found
            ]
        )
        return 0
    render.table(
        ["NETWORK ID", "NAME", "DRIVER", "SCOPE"],
        [[n.id if args.no_trunc else n.short_id, n.name, n.driver, "local"] for n in found],
    )
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    json_format(args.format)
    render.print_json([networks.inspect(ref) for ref in args.networks])
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    return for_each("network rm", args.networks, networks.remove, missing_ok=args.force)


def cmd_prune(args: argparse.Namespace) -> int:
    if not confirm(
        "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue?",
        args.force,
    ):
        return 1
    removed = networks.prune(filters=parse_filters(args.filter))
    if removed:
        sys.stdout.write("Deleted Networks:\n" + "".join(f"{n}\n" for n in removed))
    return 0


def cmd_connect(args: argparse.Namespace) -> int:
    networks.connect(args.network, args.container, ip=args.ip, aliases=tuple(args.alias))
    return 0


def cmd_disconnect(args: argparse.Namespace) -> int:
    networks.disconnect(args.network, args.container, force=args.force)
    return 0
