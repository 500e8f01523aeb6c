"""A check's output is capped like Docker's, and its timeout ends the wait."""

from __future__ import annotations

import os
import time

from engine.runtime.execproc import Terminal
from engine.services import health


def _terminal(payload: bytes, *, exited: bool) -> Terminal:
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    os.write(out_write, payload)
    os.close(out_write)
    os.close(err_write)
    terminal = Terminal(
        session_id="s", container_id="c", master_fd=-1, pid=0, stdout_fd=out_read, stderr_fd=err_read
    )
    if exited:
        terminal.reaped.set()
    return terminal


def _close(terminal: Terminal) -> None:
    os.close(terminal.stdout_fd)
    os.close(terminal.stderr_fd)


def test_output_past_4096_bytes_is_cut_and_marked():
    terminal = _terminal(b"x" * 5000, exited=True)
    try:
        output, timed_out = health._collect(terminal, timeout=5)
    finally:
        _close(terminal)
    assert not timed_out
    assert output == "x" * 4096 + "..."


def test_a_process_that_does_not_exit_times_out():
    terminal = _terminal(b"begun\n", exited=False)
    began = time.monotonic()
    try:
        output, timed_out = health._collect(terminal, timeout=0.3)
    finally:
        _close(terminal)
    assert timed_out
    assert output == "begun\n"
    assert time.monotonic() - began < 2
