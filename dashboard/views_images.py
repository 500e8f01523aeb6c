"""Dashboard pages: images."""

from __future__ import annotations

urlpatterns: list = []
