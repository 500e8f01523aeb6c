"""The pure parts of the Files tab's service: path normalising, upload names, binary detection."""

from __future__ import annotations

import pytest

from engine.errors import InvalidArgument
from engine.services import filebrowser


@pytest.mark.parametrize(
    ("given", "expected"),
    [("", "/"), ("etc", "/etc"), ("/etc/", "/etc"), ("//etc//ssh/.", "/etc/ssh"), ("/../../etc", "/etc")],
)
def test_normalise_gives_an_absolute_path_that_cannot_climb_above_the_root(given: str, expected: str) -> None:
    assert filebrowser.normalise(given) == expected


def test_normalise_refuses_a_nul_byte() -> None:
    with pytest.raises(InvalidArgument, match="NUL"):
        filebrowser.normalise("/etc/\x00passwd")


@pytest.mark.parametrize(
    ("given", "expected"), [("a.txt", "a.txt"), ("dir/a.txt", "a.txt"), ("C:\\x\\b.txt", "b.txt")]
)
def test_upload_names_keep_only_the_base_name(given: str, expected: str) -> None:
    assert filebrowser.check_upload_name(given) == expected


@pytest.mark.parametrize("bad", ["", ".", "..", "x/..", "a\x00b", ".berth-upload-1234", "n" * 256])
def test_upload_names_that_could_escape_or_collide_are_refused(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        filebrowser.check_upload_name(bad)


def test_text_cut_in_the_middle_of_a_character_is_not_binary() -> None:
    assert not filebrowser._looks_binary("héllo wörld €".encode()[:-1])
    assert filebrowser._looks_binary(b"ELF\x00\x01")
    assert filebrowser._looks_binary(b"\xff\xfe" + b"x" * 20)
