"""Progress bars for the CLI, drawn only when stderr is a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from engine.cli.render import human_size
from engine.progress import LayerProgress, OutputLine, ProgressEvent, RowProgress, StepProgress

WIDTH = 40


class Bars:
    """A progress listener: one bar per layer id, redrawn in place, at most ~10 times a second."""

    def __init__(self, out: TextIO | None = None, *, enabled: bool | None = None) -> None:
        self.out = out or sys.stderr
        self.enabled = self.out.isatty() if enabled is None else enabled
        self._current: str | None = None
        self._last_draw = 0.0

    def __call__(self, event: ProgressEvent) -> None:
        if isinstance(event, OutputLine):
            self._newline()
            self.out.write(event.text.rstrip("\n") + "\n")
            return
        if isinstance(event, StepProgress):
            self._newline()
            self.out.write(f"Step {event.step}/{event.total} : {event.text}\n")
            return
        if isinstance(event, RowProgress):
            return  # bulk rows are drawn by the dashboard; the CLI prints each result itself
        if not self.enabled:
            return
        if event.id != self._current:
            self._newline()
            self._current = event.id
        finished = event.total and event.done >= event.total
        now = time.monotonic()
        if not finished and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        self.out.write("\r" + render_bar(event))
        self.out.flush()

    def _newline(self) -> None:
        if self._current is not None and self.enabled:
            self.out.write("\n")
            self.out.flush()
        self._current = None

    def close(self) -> None:
        self._newline()


def render_bar(event: LayerProgress) -> str:
    if event.total:
        fraction = min(1.0, event.done / event.total)
        filled = int(fraction * WIDTH)
        arrow = ">" if filled < WIDTH else ""
        bar = "[" + "=" * filled + arrow + " " * (WIDTH - filled - len(arrow)) + "]"
        return f"{event.id}: {event.status} {bar} {human_size(event.done)}/{human_size(event.total)}"
    return f"{event.id}: {event.status} {human_size(event.done)}"
