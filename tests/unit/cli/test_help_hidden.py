"""Issue 10 house item: `berth --help` does not show the hidden exit-command as ==SUPPRESS==."""

from __future__ import annotations

from engine.cli.main import build_parser


def test_help_hides_the_exit_command_entirely() -> None:
    text = build_parser().format_help()
    assert "SUPPRESS" not in text
    assert "container-exited" not in text
    assert "  run " in text  # the visible commands are still listed


def test_the_hidden_command_still_parses() -> None:
    args = build_parser().parse_args(["container-exited", "abc"])
    assert args.container_id == "abc"
