"""The engine as a whole: first-run set-up, start-up reconciliation, versions and disk use."""

from __future__ import annotations

import os
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from engine import conf
from engine.models import Image
from engine.services import imagestore, imagetransfer

ROLE_GROUPS = ("viewers", "operators", "admins")


def initial_password_path() -> Path:
    return conf.root() / "initial-admin-password"


def initialise(*, admin_password: str) -> bool:
    """Create the engine directories, the role groups and, on first run, the `admin` superuser.

    Returns True when the admin user was created now. Its password is written to
    $BERTH_ROOT/initial-admin-password (mode 0600) unless it came from BERTH_ADMIN_PASSWORD.
    """
    conf.ensure_dirs()
    for name in ROLE_GROUPS:
        Group.objects.get_or_create(name=name)
    users = get_user_model()
    with transaction.atomic():
        if users.objects.filter(username="admin").exists():
            return False
        admin = users.objects.create_superuser("admin", "", admin_password)
        admin.groups.add(Group.objects.get(name="admins"))
    if not os.environ.get("BERTH_ADMIN_PASSWORD"):
        path = initial_password_path()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(admin_password + "\n")
    return True


def seed() -> Image:
    """Collect what a crash left behind, then make sure busybox:latest exists."""
    imagestore.collect_garbage()
    return imagetransfer.seed_busybox()
