from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import InvalidArgument
from engine.store.overlay import MAX_LOWERS, _unescape, build_options, is_mounted, mount_overlay, option_limit


def test_options_list_lowers_top_most_first():
    assert build_options(["/l/top", "/l/base"], upper="/c/upper", work="/c/work") == (
        "lowerdir=/l/top:/l/base,upperdir=/c/upper,workdir=/c/work"
    )


def test_option_limit_is_one_page_minus_the_nul():
    assert option_limit() in (4095, 16383, 65535)


@pytest.mark.parametrize("bad", ["relative/dir", "/has,comma", "/has:colon", "/back\\slash"])
def test_mount_refuses_paths_the_option_parser_would_misread(tmp_path, bad):
    # A comma or colon in a path would inject extra overlay options or layers.
    with pytest.raises(InvalidArgument):
        mount_overlay([Path(bad)], upper=tmp_path / "u", work=tmp_path / "w", target=tmp_path / "m")


def test_mount_refuses_no_lowers_and_more_than_the_kernel_allows(tmp_path):
    kwargs = {"upper": tmp_path / "u", "work": tmp_path / "w", "target": tmp_path / "m"}
    with pytest.raises(InvalidArgument, match="at least one"):
        mount_overlay([], **kwargs)
    with pytest.raises(InvalidArgument, match="too many"):
        mount_overlay([tmp_path] * (MAX_LOWERS + 1), **kwargs)


def test_mountinfo_octal_escapes_are_decoded():
    assert _unescape(r"/mnt/with\040space") == "/mnt/with space"
    assert _unescape(r"/a\134b") == "/a\\b"
    assert _unescape("/plain") == "/plain"


def test_is_mounted_sees_the_root_and_not_a_plain_directory(tmp_path):
    assert is_mounted(Path("/"))
    assert not is_mounted(tmp_path)
