"""The Alerts page: open and recent alerts, the rules, and (admins only) the rule form and its actions.

Every change goes through engine.services.alerts, which records the events (object type "alertrule").
Opening the page marks the alerts seen, so the bell (templates/dashboard/layout.html, static/js/bell.js)
goes back to zero; the alerts table re-fetches itself when an "alert" event arrives (live.js) and
marks those seen too, because they are on screen.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from dashboard import policy
from dashboard.errors import is_htmx
from dashboard.forms_alerts import MINUTES_KINDS, PERCENT_KINDS, AlertRuleForm
from dashboard.responses import go
from engine.errors import EngineError, NotFound
from engine.models import AlertRule
from engine.services import alerts

RECENT = 100


def _rule(rule_id: int) -> AlertRule:
    for rule in alerts.list_rules():
        if rule.pk == rule_id:
            return rule
    raise NotFound(f"no such alert rule: {rule_id}")


def _describe(rule: AlertRule) -> str:
    """The rule's condition in words: "cpu above 90 % for 5 min", "disk free below 10 %"."""
    if rule.kind in ("cpu", "memory"):
        return f"{rule.kind} above {rule.threshold:g} % for {rule.minutes} min"
    if rule.kind == "disk":
        return f"free disk below {rule.threshold:g} %"
    if rule.kind == "restart_loop":
        return f"more than {rule.threshold:g} restarts in {rule.minutes} min"
    return str(rule.get_kind_display())


def _scope(rule: AlertRule) -> str:
    if rule.kind == "disk":
        return "the host"
    if rule.scope == "all":
        return "all containers"
    return f"{'label' if rule.scope == 'label' else 'name'} {rule.scope_value}"


def _targets(rule: AlertRule) -> list[str]:
    targets = ["dashboard"] if rule.notify_dashboard else []
    if rule.email_to:
        targets.append(f"e-mail {rule.email_to}")
    if rule.webhook_url:
        targets.append("webhook" + (" (signed)" if rule.webhook_secret else ""))
    return targets


def _alerts_context(request: HttpRequest) -> dict[str, Any]:
    """Open alerts and the recent ones; marks what it shows as seen (the bell counts the rest)."""
    recent = list(alerts.list_alerts(limit=RECENT))
    open_alerts = [a for a in recent if a.state == "open"]
    unseen_ids = [a.pk for a in recent if not a.seen]
    if unseen_ids:
        alerts.mark_seen(unseen_ids)
    return {
        "open_alerts": open_alerts,
        "recent_alerts": [a for a in recent if a.state != "open"],
        "unseen_ids": set(unseen_ids),
    }


def _unseen_trigger(response: HttpResponse) -> HttpResponse:
    """Tell bell.js the count after this page marked alerts seen."""
    response["HX-Trigger"] = json.dumps({"berth:unseen": {"count": alerts.unseen_count()}})
    return response


@login_required
@require_GET
def alert_list(request: HttpRequest) -> HttpResponse:
    policy.check(request.user, "view")
    context = _alerts_context(request)
    if is_htmx(request) and request.GET.get("part") == "alerts":
        return _unseen_trigger(render(request, "dashboard/partials/_alerts_table.html", context))
    rules = list(alerts.list_rules())
    context.update(
        {
            "rules": [
                {"rule": r, "condition": _describe(r), "scope": _scope(r), "targets": _targets(r)}
                for r in rules
            ],
            "can_manage": policy.allowed(request.user, "alert.manage"),
        }
    )
    return render(request, "dashboard/alerts.html", context)


@login_required
@require_GET
def alert_unseen(request: HttpRequest) -> HttpResponse:
    """The bell's count as JSON, for pages that missed an event (bell.js asks after a reconnect)."""
    policy.check(request.user, "view")
    response = JsonResponse({"unseen": alerts.unseen_count()})
    response["Cache-Control"] = "no-store"
    return response


def _form_page(
    request: HttpRequest, form: AlertRuleForm, rule: AlertRule | None, status: int = 200
) -> HttpResponse:
    context = {
        "form": form,
        "rule": rule,
        "percent_kinds": ",".join(PERCENT_KINDS),
        "minutes_kinds": ",".join(MINUTES_KINDS),
    }
    return render(request, "dashboard/alert_rule_form.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def rule_create(request: HttpRequest) -> HttpResponse:
    policy.check(request.user, "alert.manage")
    if request.method == "GET":
        return _form_page(request, AlertRuleForm(), None)
    form = AlertRuleForm(request.POST)
    if form.is_valid():
        try:
            rule = alerts.create_rule(actor=request.user.get_username(), **form.fields_for_service())
        except EngineError as exc:
            form.engine_error(exc)
        else:
            messages.success(request, f"Created alert rule {rule.name}")
            return go(request, reverse("alerts"))
    return _form_page(request, form, None, status=400)


@login_required
@require_http_methods(["GET", "POST"])
def rule_edit(request: HttpRequest, rule_id: int) -> HttpResponse:
    policy.check(request.user, "alert.manage")
    rule = _rule(rule_id)
    if request.method == "GET":
        return _form_page(request, AlertRuleForm(rule=rule), rule)
    form = AlertRuleForm(request.POST, rule=rule)
    if form.is_valid():
        try:
            rule = alerts.update_rule(
                rule.name, actor=request.user.get_username(), **form.fields_for_service()
            )
        except EngineError as exc:
            form.engine_error(exc)
        else:
            messages.success(request, f"Saved alert rule {rule.name}")
            return go(request, reverse("alerts"))
    return _form_page(request, form, rule, status=400)


@login_required
@require_POST
def rule_toggle(request: HttpRequest, rule_id: int) -> HttpResponse:
    policy.check(request.user, "alert.manage")
    rule = _rule(rule_id)
    enabled = not rule.enabled
    alerts.update_rule(rule.name, actor=request.user.get_username(), enabled=enabled)
    messages.success(request, f"{'Enabled' if enabled else 'Disabled'} alert rule {rule.name}")
    return go(request, reverse("alerts"))


@login_required
@require_POST
def rule_delete(request: HttpRequest, rule_id: int) -> HttpResponse:
    policy.check(request.user, "alert.manage")
    rule = _rule(rule_id)
    alerts.delete_rule(rule.name, actor=request.user.get_username())
    messages.success(request, f"Deleted alert rule {rule.name}")
    return go(request, reverse("alerts"))


urlpatterns = [
    path("alerts/", alert_list, name="alerts"),
    path("alerts/unseen/", alert_unseen, name="alerts_unseen"),
    path("alerts/rules/new/", rule_create, name="alert_rule_create"),
    path("alerts/rules/<int:rule_id>/edit/", rule_edit, name="alert_rule_edit"),
    path("alerts/rules/<int:rule_id>/toggle/", rule_toggle, name="alert_rule_toggle"),
    path("alerts/rules/<int:rule_id>/delete/", rule_delete, name="alert_rule_delete"),
]
