"""An undo stack: every step that creates something registers how to take it back.

On success the stack is dropped; on any exception it unwinds in reverse order and the first error
propagates. This is how "nothing half-done" is kept (no orphan mounts, runc containers, rows).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


class UndoStack:
    def __init__(self) -> None:
        self._steps: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def push(self, func: Callable[..., Any], *args: Any) -> None:
        self._steps.append((func, args))

    def unwind(self) -> None:
        while self._steps:
            func, args = self._steps.pop()
            try:
                func(*args)
            except Exception:  # noqa: BLE001 — keep unwinding; the original error is what matters
                logger.warning("undo step %s failed", getattr(func, "__name__", func), exc_info=True)

    def discard(self) -> None:
        self._steps.clear()

    def __enter__(self) -> UndoStack:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.unwind()
        else:
            self.discard()
