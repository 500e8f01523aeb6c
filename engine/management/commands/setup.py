"""`manage.py setup`: migrate, create the first admin, the role groups, and seed busybox:latest."""

from __future__ import annotations

import os
import secrets

from django.core.management import call_command
from django.core.management.base import BaseCommand

from engine.services import system


class Command(BaseCommand):
    help = "Prepare an engine root: migrate, create the admin user and groups, seed busybox:latest."

    def handle(self, *args: object, **options: object) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        password = os.environ.get("BERTH_ADMIN_PASSWORD") or secrets.token_urlsafe(15)
        created = system.initialise(admin_password=password)
        if created and not os.environ.get("BERTH_ADMIN_PASSWORD"):
            self.stdout.write(f"Created user 'admin' with password: {password}")
            self.stdout.write(f"(also written to {system.initial_password_path()}, mode 0600)")
        image = system.seed()
        self.stdout.write(f"Ready: busybox:latest is {image.short_id}")
