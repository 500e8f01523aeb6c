"""The terminal's command chooser (issue 9 item 4): known shells, a custom line split like a shell's,
and one readable sentence for a command that cannot start."""

from __future__ import annotations

import pytest

from dashboard import terminals
from engine.errors import CommandNotRunnable, InvalidArgument


def test_a_known_shell_is_its_own_command() -> None:
    assert terminals.command_for("/bin/ash") == ("/bin/ash",)
    assert terminals.command_for("") == ("/bin/sh",)


def test_an_unknown_choice_is_refused_with_a_pointer_to_custom() -> None:
    with pytest.raises(InvalidArgument, match="choose Custom"):
        terminals.command_for("/usr/bin/python")


def test_a_custom_line_keeps_quoted_words_together() -> None:
    assert terminals.command_for("custom", "ls -l '/a dir'") == ("ls", "-l", "/a dir")


@pytest.mark.parametrize("line", ["", "   ", "echo 'unclosed", "x" * 2000, "a\x00b"])
def test_an_unusable_custom_line_is_one_clear_error(line: str) -> None:
    with pytest.raises(InvalidArgument):
        terminals.parse_custom(line)


def test_a_missing_command_is_explained_without_runcs_words() -> None:
    raw = 'exec failed: unable to start container process: exec: "/bin/bash": stat /bin/bash: no such file'
    exc = CommandNotRunnable(raw, reason=raw, exit_status=127)
    text = terminals.start_failure(exc, ("/bin/bash",), "web")
    assert text.startswith("/bin/bash was not found in web.") and "stat" not in text
    denied = CommandNotRunnable("permission denied", reason="permission denied", exit_status=126)
    assert "cannot be executed" in terminals.start_failure(denied, ("/etc/passwd",), "web")
