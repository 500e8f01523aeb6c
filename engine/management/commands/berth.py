"""`manage.py berth …`: the docker-like CLI. Arguments go to engine.cli untouched."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Docker-like CLI for Berth: images, containers, volumes (berth --help)."

    def run_from_argv(self, argv: list[str]) -> None:
        from engine.cli.main import main

        sys.exit(main(argv[2:]))
