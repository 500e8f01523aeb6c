"""The Run form's "Health check" group: command, interval, retries and the action on failure.

RunForm (dashboard/forms_containers.py) inherits these fields. They are parsed by
engine.services.healthoptions, the parser behind `berth run --health-*`, so the form and the CLI accept
the same values and word mistakes the same way. Empty fields leave the image's HEALTHCHECK as it is.
"""

from __future__ import annotations

import shlex
from typing import Any

from django import forms

from engine.errors import InvalidArgument
from engine.services import healthoptions
from engine.services import options as opts

ON_FAILURE_CHOICES = [
    ("none", "none (only report it)"),
    ("restart", "restart the container"),
    ("stop", "stop the container"),
    ("kill", "kill the container"),
]
FIELDS = ("health_cmd", "health_interval", "health_retries", "health_on_failure")


class HealthFields(forms.Form):
    health_cmd = forms.CharField(
        label="Health check command",
        max_length=4096,
        required=False,
        widget=forms.TextInput(attrs={"spellcheck": "false"}),
        help_text="Run by /bin/sh in the container; exit 0 means healthy. Empty keeps the image's check.",
    )
    health_interval = forms.CharField(
        label="Check interval", max_length=32, required=False, help_text="e.g. 30s, 1m30s (default 30s)"
    )
    health_retries = forms.IntegerField(
        label="Retries",
        required=False,
        min_value=0,
        max_value=1000,
        help_text="Failures in a row before it is unhealthy (default 3).",
    )
    health_on_failure = forms.ChoiceField(
        label="When unhealthy", choices=ON_FAILURE_CHOICES, initial="none", required=False
    )

    def clean_health_interval(self) -> int | None:
        value = self.cleaned_data["health_interval"].strip()
        if not value:
            return None
        try:
            return healthoptions.parse_duration(value, "interval") or None
        except InvalidArgument as exc:
            raise forms.ValidationError(str(exc)) from None

    def health_values(self, base: opts.ContainerOptions | None = None) -> dict[str, Any]:
        """The ContainerOptions health fields the form sets (call after is_valid()).

        With `base` (an edit), a command the form shows unchanged keeps its stored form (["CMD", …]
        stays exec form), and the fields the form has no input for are kept from it.
        """
        d = self.cleaned_data
        command = d["health_cmd"].strip()
        test: tuple[str, ...] | None = ("CMD-SHELL", command) if command else None
        if base is not None and command == command_text(base.health_test):
            test = base.health_test
        return {
            "health_test": test,
            "health_interval": d["health_interval"],
            "health_retries": d["health_retries"] or None,
            "health_on_failure": d["health_on_failure"] or "none",
        }


def command_text(test: tuple[str, ...] | None) -> str:
    """A stored test as the form's one-line command ("" for none, the image's, or NONE)."""
    if not test or test[0] == "NONE":
        return ""
    if test[0] == "CMD-SHELL":
        return test[1] if len(test) > 1 else ""
    return shlex.join(test[1:])


def initial(options: opts.ContainerOptions) -> dict[str, Any]:
    """The group's initial data for `options` (Edit and Duplicate)."""
    return {
        "health_cmd": command_text(options.health_test),
        "health_interval": healthoptions.format_duration(options.health_interval),
        "health_retries": options.health_retries,
        "health_on_failure": options.health_on_failure,
    }


def cli_args(get: Any) -> list[str]:
    """The `berth run` flags for the group's (raw) form data."""
    argv: list[str] = []
    for key, flag in (
        ("health_cmd", "--health-cmd"),
        ("health_interval", "--health-interval"),
        ("health_retries", "--health-retries"),
    ):
        value = str(get(key) or "").strip()
        if value:
            argv += [flag, value]
    action = get("health_on_failure") or "none"
    if action != "none":
        argv += ["--health-on-failure", action]
    return argv
