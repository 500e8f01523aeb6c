"""Placeholder: filled in by the containers dashboard work."""

from __future__ import annotations

from dashboard.consumers.base import GatedConsumer


class TerminalConsumer(GatedConsumer):
    action = "admin"
