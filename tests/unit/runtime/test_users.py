from __future__ import annotations

import os

import pytest

from engine.errors import InvalidArgument
from engine.runtime import users

PASSWD = "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/var/www:/bin/sh\n#c\nbad line\nbig:x:99999999999:1::/:/bin/sh\n"
GROUP = "root:x:0:\nwww:x:33:\nadm:x:4:www,other\nstaff:x:50:www\n"


def resolve(spec):
    return users.resolve(spec, users.parse_passwd(PASSWD), users.parse_group(GROUP))


def test_default_is_root_with_home():
    assert resolve("") == users.ResolvedUser(0, 0, (), "/root")


def test_named_user_gets_primary_and_supplementary_groups():
    assert resolve("www") == users.ResolvedUser(33, 33, (4, 50), "/var/www")


def test_explicit_group_replaces_supplementary_groups():
    assert resolve("www:adm") == users.ResolvedUser(33, 4, (), "/var/www")
    assert resolve("www:1234").gid == 1234


def test_numeric_ids_need_no_files():
    assert users.resolve("1000:1000", [], []) == users.ResolvedUser(1000, 1000, (), "/")
    assert users.resolve("1000", [], []) == users.ResolvedUser(1000, 0, (), "/")


def test_unknown_names_are_refused():
    with pytest.raises(InvalidArgument):
        resolve("nobody")
    with pytest.raises(InvalidArgument):
        resolve("www:nogroup")


def test_out_of_range_ids_are_refused_but_skipped_in_files():
    with pytest.raises(InvalidArgument):
        resolve("4294967295")
    assert [e.name for e in users.parse_passwd(PASSWD)] == ["root", "www"]


def make_rootfs(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text(PASSWD)
    (tmp_path / "etc/group").write_text(GROUP)
    return tmp_path


def test_resolve_in_rootfs_reads_the_images_files(tmp_path):
    assert users.resolve_in_rootfs(make_rootfs(tmp_path), "www").uid == 33


def test_symlinked_passwd_is_not_followed_to_the_host(tmp_path):
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    host = tmp_path / "host_passwd"
    host.write_text("secret:x:7:7::/:/bin/sh\n")
    os.symlink(host, root / "etc/passwd")
    assert users.read_image_file(root, "etc/passwd") is None
    with pytest.raises(InvalidArgument):
        users.resolve_in_rootfs(root, "secret")


def test_symlinked_etc_directory_is_not_followed(tmp_path):
    root = tmp_path / "rootfs"
    root.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    make_rootfs(elsewhere)
    os.symlink(tmp_path / "elsewhere/etc", root / "etc")
    assert users.read_image_file(root, "etc/passwd") is None


def test_fifo_passwd_does_not_hang(tmp_path):
    (tmp_path / "etc").mkdir()
    os.mkfifo(tmp_path / "etc/passwd")
    assert users.read_image_file(tmp_path, "etc/passwd") is None
