"""Docker API: execs endpoints."""

from __future__ import annotations
