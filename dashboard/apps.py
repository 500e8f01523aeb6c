from __future__ import annotations

from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "dashboard"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_out

        user_logged_out.connect(_close_terminals, dispatch_uid="berth-close-terminals")


def _close_terminals(sender, request, user, **kwargs) -> None:  # type: ignore[no-untyped-def]
    """Logging out ends the user's terminal sessions (SECURITY.md web checklist 3)."""
    if user is not None:
        from dashboard.terminals import manager

        manager.close_for_user(user.pk)
