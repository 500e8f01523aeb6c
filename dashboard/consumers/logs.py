"""Placeholder: filled in by the containers dashboard work."""

from __future__ import annotations

from dashboard.consumers.base import GatedConsumer


class LogsConsumer(GatedConsumer):
    action = "admin"
