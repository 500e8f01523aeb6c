"""The audit row of a failed CLI command names what it acted on, not just "cli"."""

from __future__ import annotations

from engine.cli.args import failed_object
from engine.cli.main import build_parser


def _described(*argv: str) -> tuple[str, str]:
    args = build_parser().parse_args(list(argv))
    return failed_object(argv, args)


def test_a_group_command_is_typed_by_its_group_and_names_its_object() -> None:
    assert _described("volume", "rm", "data") == ("volume", "data")
    assert _described("network", "rm", "-f", "front", "back") == ("network", "front, back")


def test_a_top_level_container_verb_is_a_container_action() -> None:
    assert _described("stop", "-t", "5", "web") == ("container", "web")


def test_an_image_verb_is_an_image_action() -> None:
    assert _described("rmi", "busybox:latest") == ("image", "busybox:latest")


def test_a_command_without_object_stays_a_cli_row() -> None:
    assert _described("info") == ("cli", "")
