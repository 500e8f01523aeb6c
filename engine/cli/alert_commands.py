"""CLI alert commands: `berth alerts` (open alerts), and rules, rule-add, rule-rm, ack, deliveries."""

from __future__ import annotations

import argparse
import sys

from engine.cli import render
from engine.cli.args import Parser, for_each, json_format
from engine.errors import InvalidArgument
from engine.services import alertrules, alerts, notify


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("alerts", help="List open alerts (* marks unseen ones); manage alert rules")
    parser.add_argument("-a", "--all", action="store_true", help="resolved alerts too")
    parser.add_argument("-n", "--last", type=int, default=100, help="at most this many (default 100)")
    parser.add_argument("--format", help="json for one JSON object per line")
    parser.set_defaults(handler=cmd_list, subparser=parser)
    commands = parser.add_subparsers(dest="alerts_command", metavar="COMMAND", parser_class=Parser)

    p = commands.add_parser("rules", help="List alert rules")
    p.add_argument("--format", help="json for one JSON object per line")
    p.set_defaults(handler=cmd_rules)

    p = commands.add_parser("rule-add", help="Add an alert rule")
    p.add_argument("name")
    p.add_argument("--kind", required=True, help=", ".join(alertrules.KINDS))
    p.add_argument("--threshold", help="percent (cpu, memory, disk) or restarts (restart_loop)")
    p.add_argument("--minutes", help="how long (cpu, memory) or the window (restart_loop)")
    p.add_argument("--scope", default="all", help="all, label=KEY=VALUE or name=NAME")
    p.add_argument("--webhook", default="", help="http(s) URL to POST to")
    p.add_argument("--secret", default="", help="shared secret that signs webhook bodies")
    p.add_argument("--email", action="append", help="an address to mail (repeatable)")
    p.add_argument("--no-dashboard", action="store_true", help="do not light the dashboard's bell")
    p.add_argument("--disabled", action="store_true", help="create it switched off")
    p.set_defaults(handler=cmd_rule_add)

    p = commands.add_parser("rule-rm", help="Remove alert rules (and their alerts)")
    p.add_argument("rules", nargs="+")
    p.set_defaults(handler=cmd_rule_rm)

    for name, enabled in (("rule-enable", True), ("rule-disable", False)):
        p = commands.add_parser(name, help=f"{'Enable' if enabled else 'Disable'} alert rules")
        p.add_argument("rules", nargs="+")
        p.set_defaults(handler=cmd_rule_toggle, enabled=enabled)

    p = commands.add_parser("ack", help="Mark alerts as seen (all when no ID is given)")
    p.add_argument("ids", nargs="*")
    p.set_defaults(handler=cmd_ack)

    p = commands.add_parser("deliveries", help="List recent notifications (webhook, e-mail) and their state")
    p.add_argument("-n", "--last", type=int, default=50)
    p.set_defaults(handler=cmd_deliveries)


def cmd_list(args: argparse.Namespace) -> int:
    found = alerts.list_alerts(None if args.all else "open", limit=max(args.last, 1))
    if json_format(args.format):
        render.json_lines(
            [
                {
                    "ID": a.id,
                    "Rule": a.rule.name,
                    "Kind": a.rule.kind,
                    "SubjectType": a.subject_type,
                    "SubjectID": a.subject_id,
                    "Subject": a.subject_name,
                    "State": a.state,
                    "Message": a.message,
                    "Opened": render.iso(a.opened),
                    "Resolved": render.iso(a.resolved),
                    "Seen": a.seen,
                }
                for a in found
            ]
        )
        return 0
    headers = [
        "ID",
        "RULE",
        "KIND",
        "SUBJECT",
        "STATE",
        "OPENED",
        *(["RESOLVED"] if args.all else []),
        "MESSAGE",
    ]
    rows = []
    for a in found:
        row = [
            str(a.id) + ("" if a.seen else " *"),
            a.rule.name,
            a.rule.kind,
            a.subject_name or a.subject_type,
        ]
        row += [a.state, render.ago(a.opened)]
        if args.all:
            row.append(render.ago(a.resolved) if a.resolved else "-")
        rows.append([*row, a.message])
    render.table(headers, rows)
    return 0


def cmd_rules(args: argparse.Namespace) -> int:
    rules = alertrules.list_rules()
    if json_format(args.format):
        render.json_lines(
            [
                {
                    "Name": r.name,
                    "Kind": r.kind,
                    "Scope": alertrules.describe_scope(r),
                    "Threshold": r.threshold,
                    "Minutes": r.minutes,
                    "Dashboard": r.notify_dashboard,
                    "Email": r.email_to,
                    "Webhook": r.webhook_url,
                    "Enabled": r.enabled,
                    "CreatedBy": r.created_by,
                }
                for r in rules
            ]
        )
        return 0
    render.table(
        ["NAME", "KIND", "SCOPE", "CONDITION", "NOTIFY", "ENABLED"],
        [
            [
                r.name,
                r.kind,
                alertrules.describe_scope(r),
                _condition(r),
                _channels(r),
                "yes" if r.enabled else "no",
            ]
            for r in rules
        ],
    )
    return 0


def _condition(rule) -> str:  # type: ignore[no-untyped-def]
    if rule.kind in ("cpu", "memory"):
        return f"> {rule.threshold:g} % for {rule.minutes} min"
    if rule.kind == "disk":
        return f"free < {rule.threshold:g} %"
    if rule.kind == "restart_loop":
        return f"> {rule.threshold:g} restarts in {rule.minutes} min"
    return "-"


def _channels(rule) -> str:  # type: ignore[no-untyped-def]
    channels = [name for name, on in (("dashboard", rule.notify_dashboard), ("email", rule.email_to)) if on]
    if rule.webhook_url:
        channels.append("webhook")
    return ",".join(channels) or "-"


def cmd_rule_add(args: argparse.Namespace) -> int:
    scope, scope_value = alertrules.parse_scope(args.scope)
    rule = alerts.create_rule(
        name=args.name,
        kind=args.kind,
        threshold=args.threshold,
        minutes=args.minutes,
        scope=scope,
        scope_value=scope_value,
        webhook_url=args.webhook,
        webhook_secret=args.secret,
        email_to=",".join(args.email or []),
        notify_dashboard=not args.no_dashboard,
        enabled=not args.disabled,
    )
    sys.stdout.write(rule.name + "\n")
    return 0


def cmd_rule_rm(args: argparse.Namespace) -> int:
    return for_each("alerts rule-rm", args.rules, lambda ref: alerts.delete_rule(ref))


def cmd_rule_toggle(args: argparse.Namespace) -> int:
    return for_each(
        "alerts rule-enable", args.rules, lambda ref: alerts.update_rule(ref, enabled=args.enabled)
    )


def cmd_ack(args: argparse.Namespace) -> int:
    ids = []
    for value in args.ids:
        if not value.isdigit():
            raise InvalidArgument(f"invalid alert ID {value!r}: expected a number")
        ids.append(int(value))
    changed = alerts.mark_seen(ids or None)
    sys.stdout.write(f"{changed} alert{'s' if changed != 1 else ''} marked as seen\n")
    return 0


def cmd_deliveries(args: argparse.Namespace) -> int:
    rows = [
        [
            str(d.id),
            str(d.alert_id),
            d.alert.rule.name,
            d.channel,
            d.transition,
            d.state,
            str(d.attempts),
            render.ago(d.sent) if d.sent else "-",
            d.last_error[:60],
        ]
        for d in notify.list_deliveries(limit=max(args.last, 1))
    ]
    render.table(
        ["ID", "ALERT", "RULE", "CHANNEL", "TRANSITION", "STATE", "ATTEMPTS", "SENT", "LAST ERROR"], rows
    )
    return 0
