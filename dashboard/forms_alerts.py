"""The alert rule form: what to watch (kind, scope, threshold, minutes) and where to tell (dashboard,
e-mail, webhook with its shared secret). The alerts service validates again; its errors land next to
the field they name (`engine_error`)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.validators import validate_email

from engine.errors import EngineError
from engine.models import AlertRule
from engine.services.alertrules import FIELDS, THRESHOLDS, TIMED  # the service's own: the form cannot drift

# Kinds whose threshold is a percentage, and the ones that also need a duration/window.
PERCENT_KINDS = ("cpu", "memory", "disk")
MINUTES_KINDS = TIMED
THRESHOLD_KINDS = tuple(THRESHOLDS)


class AlertRuleForm(forms.Form):
    """An alert rule, as `alerts.create_rule` takes it; editing (`rule=`) keeps the secret when left blank.

    Empty threshold and minutes go to the service as None, which fills in its defaults.
    """

    name = forms.CharField(label="Rule name", max_length=100)
    kind = forms.ChoiceField(
        label="When a container…",
        choices=AlertRule.Kind.choices,
        help_text="Disk is about the host: free space under the engine's root.",
    )
    scope = forms.ChoiceField(label="Applies to", choices=AlertRule.Scope.choices, initial="all")
    scope_value = forms.CharField(
        label="Label or container name",
        required=False,
        max_length=512,
        help_text="key=value for a label scope, a container name for a name scope.",
    )
    threshold = forms.FloatField(
        label="Threshold",
        required=False,
        min_value=0,
        help_text="Percent for CPU, memory and disk; a number of restarts for a restart loop.",
    )
    minutes = forms.IntegerField(
        label="Minutes",
        required=False,
        min_value=1,
        max_value=10080,
        initial=5,
        help_text="How long CPU or memory stays above; the window a restart loop is counted in.",
    )
    notify_dashboard = forms.BooleanField(
        label="Show in the dashboard (the bell)", required=False, initial=True
    )
    email_to = forms.CharField(
        label="E-mail to", required=False, max_length=1000, help_text="Comma-separated addresses."
    )
    webhook_url = forms.URLField(
        label="Webhook URL",
        required=False,
        max_length=2000,
        assume_scheme="https",
        help_text="A JSON POST that Slack and Mattermost accept, signed with the secret.",
    )
    webhook_secret = forms.CharField(
        label="Webhook secret",
        required=False,
        max_length=200,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Signs each POST (X-Berth-Signature: sha256=HMAC of the body).",
    )
    enabled = forms.BooleanField(label="Enabled", required=False, initial=True)

    def __init__(self, *args: Any, rule: AlertRule | None = None, **kwargs: Any) -> None:
        if rule is not None and "initial" not in kwargs:
            kwargs["initial"] = {name: getattr(rule, name) for name in FIELDS if name != "webhook_secret"}
        super().__init__(*args, **kwargs)
        self.rule = rule
        if rule is not None and rule.webhook_secret:
            self.fields["webhook_secret"].help_text = "A secret is set; leave this empty to keep it."

    def clean_name(self) -> str:
        return str(self.cleaned_data["name"]).strip()

    def clean_scope_value(self) -> str:
        return str(self.cleaned_data.get("scope_value") or "").strip()

    def clean_email_to(self) -> str:
        addresses = [a.strip() for a in str(self.cleaned_data.get("email_to") or "").split(",") if a.strip()]
        for address in addresses:
            try:
                validate_email(address)
            except forms.ValidationError:
                raise forms.ValidationError(f"not an e-mail address: {address}") from None
        return ", ".join(addresses)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind, scope = data.get("kind"), data.get("scope")
        if scope in ("label", "name") and not data.get("scope_value"):
            self.add_error(
                "scope_value", f"a {scope} scope needs a {'key=value label' if scope == 'label' else 'name'}"
            )
        if scope == "label" and data.get("scope_value") and "=" not in data["scope_value"]:
            self.add_error("scope_value", "write the label as key=value")
        if kind in THRESHOLD_KINDS and data.get("threshold") in (None, ""):
            self.add_error("threshold", "this kind needs a threshold")
        if kind in ("memory", "disk") and (data.get("threshold") or 0) > 100:
            self.add_error("threshold", "a percentage is at most 100")
        if kind in MINUTES_KINDS and not data.get("minutes"):
            self.add_error("minutes", "this kind needs a number of minutes")
        if data.get("webhook_secret") and not data.get("webhook_url"):
            self.add_error("webhook_secret", "a secret signs webhook calls: give a webhook URL too")
        return data

    def fields_for_service(self) -> dict[str, Any]:
        """Keyword arguments for alerts.create_rule / update_rule (an empty secret keeps the rule's)."""
        data = {name: self.cleaned_data.get(name) for name in FIELDS}
        if data["kind"] == "disk":  # the host's disk: the container scope does not apply
            data["scope"] = "all"
        if data["scope"] == "all":
            data["scope_value"] = ""
        if not data["webhook_secret"] and self.rule is not None:
            data.pop("webhook_secret")
        return data

    def engine_error(self, exc: EngineError) -> None:
        """Put a service error next to the field it names, else above the form."""
        text = str(exc).lower()
        for name, words in _ERROR_WORDS:
            if any(word in text for word in words):
                self.add_error(name, str(exc))
                return
        self.add_error(None, str(exc))


# Field per words in a service error, most specific first ("scope value" before "scope").
_ERROR_WORDS = (
    ("webhook_secret", ("secret",)),
    ("webhook_url", ("webhook", "url")),
    ("email_to", ("e-mail", "email", "address")),
    ("scope_value", ("scope_value", "scope value", "label", "container name")),
    ("threshold", ("threshold", "percent")),
    ("minutes", ("minute",)),
    ("kind", ("kind",)),
    ("scope", ("scope",)),
    ("name", ("rule name", "already exists", "name")),
)
