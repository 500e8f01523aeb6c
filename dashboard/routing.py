"""Websocket routes. Each consumer checks the user and the object before it accepts."""

from __future__ import annotations

websocket_urlpatterns: list = []
