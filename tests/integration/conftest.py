"""Every integration test runs under the leak guard."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_leaks(leak_guard):  # type: ignore[no-untyped-def]
    yield
