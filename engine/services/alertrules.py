"""Alert rules: validation, create/update/delete (each an "alertrule" event), and scope matching.

`clean(fields)` checks every field and raises one `InvalidArgument` naming the first bad one; the
CRUD functions run it on the merged values, so an update is held to the same rules as a create.
"""

from __future__ import annotations

import os
import re
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from engine import events
from engine.errors import AlreadyExists, InvalidArgument, NotFound
from engine.models import AlertRule, Event, MonitorState
from engine.net import webhook

KINDS = tuple(AlertRule.Kind.values)
SCOPES = tuple(AlertRule.Scope.values)
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
# Kinds whose threshold means something, with (default, lowest, highest, what it is).
THRESHOLDS: dict[str, tuple[float, float, float, str]] = {
    "cpu": (90.0, 0.0, 100.0 * (os.cpu_count() or 1), "a CPU percent"),
    "memory": (90.0, 0.0, 100.0, "a memory percent"),
    "disk": (10.0, 0.0, 100.0, "a free-disk percent"),
    "restart_loop": (3.0, 0.0, 1000.0, "a restart count"),
}
TIMED = ("cpu", "memory", "restart_loop")
MAX_MINUTES = 7 * 24 * 60
FIELDS = (
    "name",
    "kind",
    "scope",
    "scope_value",
    "threshold",
    "minutes",
    "notify_dashboard",
    "email_to",
    "webhook_url",
    "webhook_secret",
    "enabled",
)
CURSOR_KEY = "alerts.cursor"


def clean(fields: dict[str, Any]) -> dict[str, Any]:
    """Validate a rule's fields (all of them, defaults filled in); return them normalised.

    Raises InvalidArgument naming the first bad field: unknown kind or scope, a threshold out of
    range, a label scope that is not key=value, a webhook URL that is not http(s), a bad e-mail address.
    """
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise InvalidArgument(f"unknown alert rule field: {sorted(unknown)[0]}")
    out = dict(fields)
    name = str(out.get("name") or "").strip()
    if not NAME_RE.fullmatch(name):
        raise InvalidArgument(
            f"invalid rule name {name!r}: use letters, digits, '.', '_' or '-' (up to 100, not starting with a sign)"
        )
    out["name"] = name
    kind = str(out.get("kind") or "")
    if kind not in KINDS:
        raise InvalidArgument(f"unknown alert kind {kind!r} (use {', '.join(KINDS)})")
    out["threshold"] = _threshold(kind, out.get("threshold"))
    out["minutes"] = _minutes(kind, out.get("minutes"))
    out["scope"], out["scope_value"] = _scope(kind, out.get("scope") or "all", out.get("scope_value") or "")
    out["email_to"] = _emails(out.get("email_to") or "")
    out["webhook_url"] = str(out.get("webhook_url") or "").strip()
    out["webhook_secret"] = str(out.get("webhook_secret") or "")
    if out["webhook_url"]:
        problem = webhook.check_url(out["webhook_url"])
        if problem:
            raise InvalidArgument(problem)
        if len(out["webhook_url"]) > 2000:
            raise InvalidArgument("webhook URL is longer than 2000 characters")
    elif out["webhook_secret"]:
        raise InvalidArgument("a webhook secret needs a webhook URL")
    if len(out["webhook_secret"]) > 200:
        raise InvalidArgument("webhook secret is longer than 200 characters")
    out["notify_dashboard"] = bool(out.get("notify_dashboard", True))
    out["enabled"] = bool(out.get("enabled", True))
    return out


def _threshold(kind: str, value: Any) -> float:
    if kind not in THRESHOLDS:
        return 0.0
    default, low, high, what = THRESHOLDS[kind]
    if value in (None, ""):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidArgument(f"threshold {value!r} is not a number ({what})") from None
    if not low < number <= high or number != number:
        raise InvalidArgument(
            f"threshold {value} out of range for {kind}: {what} above {low:g}, at most {high:g}"
        )
    if kind == "restart_loop" and number != int(number):
        raise InvalidArgument(f"threshold {value} for restart_loop must be a whole number of restarts")
    return number


def _minutes(kind: str, value: Any) -> int:
    if kind not in TIMED:
        return 0
    if value in (None, ""):
        return 5
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidArgument(f"minutes {value!r} is not a whole number") from None
    if not 1 <= number <= MAX_MINUTES:
        raise InvalidArgument(f"minutes {value} out of range: 1 to {MAX_MINUTES}")
    return number


def _scope(kind: str, scope: str, value: str) -> tuple[str, str]:
    value = str(value).strip()
    if scope not in SCOPES:
        raise InvalidArgument(f"unknown scope {scope!r} (use all, label or name)")
    if kind == "disk" and scope != "all":
        raise InvalidArgument("a disk rule watches the host: its scope must be all")
    if scope == "all":
        return scope, ""
    if scope == "label":
        key, sep, _ = value.partition("=")
        if not sep or not key.strip():
            raise InvalidArgument(f"label scope {value!r} is not key=value")
        return scope, value
    if not value:
        raise InvalidArgument("name scope needs a container name")
    return scope, value


def _emails(value: str) -> str:
    addresses = [a.strip() for a in str(value).split(",") if a.strip()]
    for address in addresses:
        try:
            validate_email(address)
        except ValidationError:
            raise InvalidArgument(f"invalid e-mail address {address!r}") from None
    joined = ", ".join(addresses)
    if len(joined) > 1000:
        raise InvalidArgument("too many e-mail addresses (1000 characters at most)")
    return joined


def parse_scope(text: str) -> tuple[str, str]:
    """The CLI's --scope: `all`, `label=KEY=VALUE` or `name=NAME` → (scope, scope_value)."""
    if text in ("", "all"):
        return "all", ""
    scope, sep, value = text.partition("=")
    if not sep or scope not in ("label", "name"):
        raise InvalidArgument(f"invalid scope {text!r}: use all, label=KEY=VALUE or name=NAME")
    return scope, value


def matches(scope: str, scope_value: str, *, name: str, labels: dict[str, str] | None) -> bool:
    """Does a container (by name and labels) fall under a rule's scope? Pure."""
    if scope == "all":
        return True
    if scope == "name":
        return name.lstrip("/") == scope_value.lstrip("/")
    key, _, value = scope_value.partition("=")
    return labels is not None and key in labels and str(labels[key]) == value


def describe_scope(rule: AlertRule) -> str:
    return "all" if rule.scope == "all" else f"{rule.scope}={rule.scope_value}"


# -- CRUD -------------------------------------------------------------------------------------------


def get_rule(name_or_id: str | int) -> AlertRule:
    """A rule by name, or by id; NotFound otherwise."""
    text = str(name_or_id)
    rule = AlertRule.objects.filter(name=text).first()
    if rule is None and text.isdigit():
        rule = AlertRule.objects.filter(id=int(text)).first()
    if rule is None:
        raise NotFound(f"no such alert rule: {text}")
    return rule


def list_rules() -> list[AlertRule]:
    return list(AlertRule.objects.all())


def create_rule(*, actor: str | None = None, **fields: Any) -> AlertRule:
    """Create a rule from validated fields; AlreadyExists if the name is taken. Records an event."""
    values = clean(fields)
    try:
        with transaction.atomic():
            if values["enabled"]:
                _start_cursor()
            rule = AlertRule.objects.create(created_by=actor or events.current_actor(), **values)
            events.record("alertrule", "create", **_event_fields(rule), actor=actor)
    except IntegrityError:
        raise AlreadyExists(f"alert rule {values['name']} already exists") from None
    return rule


def update_rule(name_or_id: str | int, *, actor: str | None = None, **fields: Any) -> AlertRule:
    """Change some fields of a rule (validated together with the rest). Records an event."""
    rule = get_rule(name_or_id)
    values = clean({**{f: getattr(rule, f) for f in FIELDS}, **fields})
    enabling = values["enabled"] and not rule.enabled
    for key, value in values.items():
        setattr(rule, key, value)
    try:
        with transaction.atomic():
            if enabling:
                _start_cursor()
            rule.save(update_fields=list(FIELDS))
            events.record("alertrule", "update", **_event_fields(rule), actor=actor)
    except IntegrityError:
        raise AlreadyExists(f"alert rule {values['name']} already exists") from None
    return rule


def delete_rule(name_or_id: str | int, *, actor: str | None = None) -> None:
    """Delete a rule with its alerts and their pending deliveries. Records an event."""
    rule = get_rule(name_or_id)
    fields = _event_fields(rule)
    with transaction.atomic():
        rule.delete()
        events.record("alertrule", "delete", **fields, actor=actor)


def _event_fields(rule: AlertRule) -> dict[str, Any]:
    return {
        "object_id": str(rule.id),
        "object_name": rule.name,
        "attributes": {"kind": rule.kind, "scope": describe_scope(rule), "enabled": rule.enabled},
    }


def _start_cursor() -> None:
    """With no rule enabled yet, evaluation starts from now: past events never open new alerts.

    While rules are enabled the cursor belongs to the monitor (it resumes where it stopped).
    """
    if AlertRule.objects.filter(enabled=True).exists():
        return
    last = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
    MonitorState.objects.update_or_create(key=CURSOR_KEY, defaults={"value": {"id": last}})
