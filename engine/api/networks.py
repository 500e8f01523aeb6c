"""Docker API: networks endpoints."""

from __future__ import annotations
