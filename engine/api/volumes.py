"""Docker API: volumes endpoints."""

from __future__ import annotations
