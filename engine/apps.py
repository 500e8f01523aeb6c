from __future__ import annotations

from django.apps import AppConfig


class EngineConfig(AppConfig):
    name = "engine"
    verbose_name = "Engine"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from engine import checks  # noqa: F401  (registers the system checks)
