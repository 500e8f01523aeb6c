"""Every integration test runs under the leak guard; dashboard tests share the three role users."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group

USER_PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _no_leaks(leak_guard):  # type: ignore[no-untyped-def]
    yield


@pytest.fixture
def users(django_user_model: Any, settings: Any) -> dict[str, Any]:
    """An admin (superuser), an operator and a viewer, all with USER_PASSWORD."""
    from dashboard import policy

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins
    policy.ensure_groups()
    made = {"admin": django_user_model.objects.create_superuser("admin", "a@example.invalid", USER_PASSWORD)}
    for name, group in (("operator", "operators"), ("viewer", "viewers")):
        made[name] = django_user_model.objects.create_user(name, password=USER_PASSWORD)
        made[name].groups.add(Group.objects.get(name=group))
    return made
