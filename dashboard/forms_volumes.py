"""Forms of the volume pages: create (with labels and driver options as key=value lines) and prune."""

from __future__ import annotations

from typing import Any

from django import forms

from engine.errors import InvalidArgument
from engine.services import volumes

MAX_PAIRS = 100


def parse_pairs(text: str, what: str) -> dict[str, str]:
    """Turn `key=value` lines into a dict; blank lines are skipped. Raise ValidationError naming the line."""
    pairs: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            raise forms.ValidationError(f"line {number}: write each {what} as key=value")
        pairs[key] = value.strip()
    if len(pairs) > MAX_PAIRS:
        raise forms.ValidationError(f"at most {MAX_PAIRS} {what}s")
    return pairs


class PairsField(forms.CharField):
    """A textarea of `key=value` lines that cleans to a dict (labels, driver options)."""

    def __init__(
        self, *, label: str, what: str, rows: int = 3, help_text: str = "One key=value per line."
    ) -> None:
        super().__init__(
            label=label,
            required=False,
            max_length=20000,
            widget=forms.Textarea(attrs={"rows": rows}),
            help_text=help_text,
        )
        self.what = what

    def clean(self, value: Any) -> dict[str, str]:  # a dict of the lines, not their text
        return parse_pairs(super().clean(value) or "", self.what)


class VolumeCreateForm(forms.Form):
    """`berth volume create [--label k=v]… [--opt k=v]… [NAME]`."""

    name = forms.CharField(
        label="Name",
        required=False,
        max_length=255,
        help_text="Letters, digits, _ . - (at least two characters). Left empty, a random name is chosen.",
    )
    labels = PairsField(label="Labels", what="label")
    options = PairsField(
        label="Driver options",
        what="option",
        rows=2,
        help_text="One key=value per line (type, device, o, size).",
    )

    def clean_name(self) -> str | None:
        name = (self.cleaned_data.get("name") or "").strip() or None
        if name is not None:
            try:
                volumes.validate_name(name)
            except InvalidArgument:
                # The engine words this for `-v` on the command line ("use absolute path" for a host
                # directory); a form field that only takes volume names needs its own words.
                raise forms.ValidationError(
                    f"{name!r} is not a valid volume name: use at least two characters, letters, digits,"
                    " _ . or -, starting with a letter or digit"
                ) from None
        return name


class VolumePruneForm(forms.Form):
    all = forms.BooleanField(
        label="Also remove named volumes that no container uses", required=False, initial=False
    )
