"""Issue 10, the house kept in order: errors are classified by type, parsed once where they arise."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from engine.errors import CommandNotRunnable, DigestMismatch, InvalidArgument, RuntimeFailure
from engine.runtime import conmon
from engine.store.blobs import BlobStore

RUNC_NOT_FOUND = (
    'runc create failed: unable to start container process: exec: "nope": executable file not found in $PATH'
)


def test_a_missing_command_is_command_not_runnable_with_docker_s_127() -> None:
    error = conmon.create_failure("abc", RUNC_NOT_FOUND, ["conmon"])
    assert isinstance(error, CommandNotRunnable)
    assert error.exit_status == 127
    # The reason is runc's own words without its framing: what the container's row and `inspect` show.
    assert error.reason == 'exec: "nope": executable file not found in $PATH'


def test_a_command_that_is_not_executable_is_command_not_runnable_with_126() -> None:
    text = 'runc create failed: unable to start container process: exec: "/etc/passwd": permission denied'
    error = conmon.create_failure("abc", text, ["conmon"])
    assert isinstance(error, CommandNotRunnable)
    assert error.exit_status == 126


def test_any_other_create_failure_stays_a_plain_runtime_failure() -> None:
    error = conmon.create_failure("abc", "runc create failed: cgroup: device or resource busy", ["conmon"])
    assert type(error) is RuntimeFailure
    assert "device or resource busy" in str(error)


def test_a_blob_that_does_not_hash_to_its_digest_is_a_digest_mismatch(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    with pytest.raises(DigestMismatch) as caught:
        store.put_bytes(b"evil", expected="sha256:" + hashlib.sha256(b"good").hexdigest())
    # Still an InvalidArgument (400) for the front ends; the pull classifies it by this type, not its text.
    assert isinstance(caught.value, InvalidArgument)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]
