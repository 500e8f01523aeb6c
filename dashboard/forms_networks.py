"""Forms of the network pages: create (`berth network create`) and connect a container.

Addresses are checked by the engine (engine.net.ipam via networks.create); the forms only trim,
split labels and route the engine's message to the field it is about.
"""

from __future__ import annotations

from typing import Any

from django import forms

from dashboard.forms_volumes import PairsField
from engine.errors import EngineError

# Which field an engine message from networks.create is about, by the words in it (first match wins).
_ERROR_FIELDS: tuple[tuple[str, str], ...] = (
    ("need a --subnet", "subnet"),
    ("name", "name"),
    ("gateway", "gateway"),
    ("ip-range", "ip_range"),
    ("ip range", "ip_range"),
    ("subnet", "subnet"),
)


def _address(max_length: int, help_text: str) -> forms.CharField:
    return forms.CharField(
        required=False,
        max_length=max_length,
        help_text=help_text,
        widget=forms.TextInput(attrs={"spellcheck": "false", "autocomplete": "off"}),
    )


class NetworkCreateForm(forms.Form):
    """`berth network create [--subnet …] [--gateway …] [--ip-range …] [--internal] [--label k=v]… NAME`."""

    name = forms.CharField(
        label="Name",
        max_length=255,
        help_text="Letters, digits, _ . - ; containers on it find each other by name.",
        widget=forms.TextInput(attrs={"spellcheck": "false", "autocomplete": "off"}),
    )
    subnet = _address(43, "e.g. 172.30.0.0/24. Left empty, a free subnet is chosen.")
    gateway = _address(39, "e.g. 172.30.0.1. Needs a subnet; the first address by default.")
    ip_range = _address(
        43, "Containers get addresses from this part of the subnet only, e.g. 172.30.0.128/25."
    )
    internal = forms.BooleanField(label="Internal (no access to the outside)", required=False)
    labels = PairsField(label="Labels", what="label")

    def clean_name(self) -> str:
        return self.cleaned_data["name"].strip()

    def clean_subnet(self) -> str:
        return self.cleaned_data["subnet"].strip()

    def clean_gateway(self) -> str:
        return self.cleaned_data["gateway"].strip()

    def clean_ip_range(self) -> str:
        return self.cleaned_data["ip_range"].strip()

    def engine_error(self, exc: EngineError) -> None:
        """Put an error from networks.create next to the field it is about (else above the form)."""
        text = str(exc).lower()
        for words, field in _ERROR_FIELDS:
            if words in text:
                self.add_error(field, str(exc))
                return
        self.add_error(None, str(exc))


class ConnectForm(forms.Form):
    """`berth network connect [--ip …] [--alias …] NETWORK CONTAINER` (one side chosen by the page)."""

    network = forms.CharField(max_length=255, required=False)
    container = forms.CharField(max_length=255, required=False)
    ip = forms.CharField(label="IP address", max_length=39, required=False)
    alias = forms.CharField(label="Alias", max_length=255, required=False)

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data  # what Form.clean returns (typed as optional by the stubs)
        for key in ("network", "container", "ip", "alias"):
            data[key] = (data.get(key) or "").strip()
        return data
