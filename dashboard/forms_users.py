"""Forms of the Users pages and of "change my password": one clear error per field.

Password rules are Django's validators (settings.AUTH_PASSWORD_VALIDATORS), checked here per field
so the message sits next to the field that caused it; the service checks them again.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import PasswordChangeForm
from django.contrib.auth.password_validation import password_validators_help_texts, validate_password
from django.core.exceptions import ValidationError

from engine.services import users

ROLE_CHOICES = [(r, r.capitalize()) for r in users.ROLES]


def _password_help() -> str:
    return " ".join(password_validators_help_texts())


class _NewPassword(forms.Form):
    """Two password fields that must match and pass the validators (first complaint only)."""

    password1 = forms.CharField(
        label="New password", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )
    password2 = forms.CharField(
        label="Repeat the password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def __init__(self, *args: Any, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["password1"].help_text = _password_help()

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        first, second = data.get("password1"), data.get("password2")
        if first and "password1" not in self.errors:
            try:
                validate_password(first, self._user_for_check(data))
            except ValidationError as exc:
                self.add_error("password1", exc.messages[0])
                return data
        if first and second and first != second:
            self.add_error("password2", "The two passwords differ.")
        return data

    def _user_for_check(self, data: dict[str, Any]) -> Any:
        return self.user


class CreateUserForm(_NewPassword):
    field_order = ["username", "role", "email", "password1", "password2"]

    username = forms.CharField(
        label="User name",
        max_length=150,
        help_text="Letters, digits and @ . + - _ only.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "none"}),
    )
    role = forms.ChoiceField(label="Role", choices=ROLE_CHOICES, initial="viewer")
    email = forms.EmailField(label="E-mail", required=False)

    def _user_for_check(self, data: dict[str, Any]) -> Any:
        from django.contrib.auth import get_user_model

        # So the similarity validator (when configured) compares against the new name.
        return get_user_model()(username=data.get("username", ""), email=data.get("email", ""))


class ResetPasswordForm(_NewPassword):
    pass


class RoleForm(forms.Form):
    role = forms.ChoiceField(label="Role", choices=ROLE_CHOICES)


class OwnPasswordForm(PasswordChangeForm):
    """Django's own form (old password checked), with the one-error-per-field rule applied."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["old_password"].widget.attrs.pop("autofocus", None)
        self.fields["new_password1"].label = "New password"
        self.fields["new_password2"].label = "Repeat the new password"
        self.fields["new_password1"].help_text = _password_help()

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        # Django reports every failing validator on new_password2; keep the first, on the field typed.
        errors = self.errors.pop("new_password2", None)
        if errors:
            mismatch = self.error_messages["password_mismatch"]
            target = "new_password2" if str(errors[0]) == str(mismatch) else "new_password1"
            self.errors.setdefault(target, self.error_class()).append(errors[0])
            self.cleaned_data.pop("new_password2", None)
        return data
