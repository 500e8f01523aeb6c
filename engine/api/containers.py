"""Docker API: containers endpoints."""

from __future__ import annotations
