"""Dashboard pages: volumes."""

from __future__ import annotations

urlpatterns: list = []
