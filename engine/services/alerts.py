"""Alerts: rules, their evaluation by the monitor, and notifications. (Stub; the alerts part fills it in.)"""

from __future__ import annotations


def tick() -> None:
    """One evaluation round, called by the monitor process (services/monitor.py) about twice a second."""
