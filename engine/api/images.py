"""Docker API: images endpoints."""

from __future__ import annotations
