"""Forms of the registries page and of Commit: `berth login SERVER -u USER` and `berth commit`.

The password field never renders a value back: a re-shown form (after a refusal) is empty there.
"""

from __future__ import annotations

from django import forms

from engine.errors import InvalidArgument
from engine.services import refs
from engine.services.registry import normalise_server


class LoginForm(forms.Form):
    """`berth login SERVER -u USER --password-stdin`."""

    server = forms.CharField(
        label="Registry",
        max_length=255,
        help_text="A host such as ghcr.io or registry.example.com:5000; docker.io for Docker Hub.",
        widget=forms.TextInput(
            attrs={"placeholder": "docker.io", "autocomplete": "off", "spellcheck": "false"}
        ),
    )
    username = forms.CharField(
        label="User name", max_length=255, widget=forms.TextInput(attrs={"autocomplete": "off"})
    )
    password = forms.CharField(
        label="Password or token",
        max_length=4096,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}, render_value=False),
    )

    def clean_server(self) -> str:
        try:
            return normalise_server(self.cleaned_data["server"])
        except InvalidArgument as exc:
            raise forms.ValidationError(str(exc)) from None


class CommitForm(forms.Form):
    """`berth commit [-a AUTHOR] [-m MESSAGE] [--pause] CONTAINER [REPOSITORY[:TAG]]`."""

    reference = forms.CharField(
        label="Repository and tag",
        required=False,
        max_length=512,
        help_text="For example myapp:1.0. Left empty, the image has no name (only its ID).",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    message = forms.CharField(label="Message", required=False, max_length=1000)
    author = forms.CharField(label="Author", required=False, max_length=255)
    pause = forms.BooleanField(
        label="Pause the container while its files are copied",
        required=False,
        initial=True,
        help_text="Keeps the copy consistent; the container is unpaused afterwards.",
    )

    def clean_reference(self) -> str:
        value = self.cleaned_data["reference"].strip()
        if not value:
            return ""
        try:
            parsed = refs.parse_image(value)
        except InvalidArgument as exc:
            raise forms.ValidationError(str(exc)) from None
        if parsed.digest:
            raise forms.ValidationError("a commit is named by a tag, not a digest")
        return value
