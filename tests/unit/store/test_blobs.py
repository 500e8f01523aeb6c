from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine.errors import InvalidArgument, NotFound
from engine.store.blobs import BlobStore

REPO = Path(__file__).resolve().parents[3]


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def files_in(store: BlobStore) -> list[str]:
    return sorted(os.listdir(store.root / "sha256"))


def test_put_bytes_stores_a_blob_under_its_digest(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    digest, size = store.put_bytes(b"hello", expected=digest_of(b"hello"))
    assert (digest, size) == (digest_of(b"hello"), 5)
    assert store.path(digest) == tmp_path / "blobs" / "sha256" / digest.split(":")[1]
    assert store.exists(digest)
    with store.open(digest) as handle:
        assert handle.read() == b"hello"
    assert store.size(digest) == 5
    assert store.verify(digest)
    assert store.digests() == [digest]


def test_store_directories_are_private(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    store.put_bytes(b"x")
    # Layer blobs may carry setuid binaries and secrets: only root may look inside.
    assert stat.S_IMODE((tmp_path / "blobs").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "blobs" / "sha256").stat().st_mode) == 0o700


def test_writer_streams_and_commits_once(tmp_path):
    store = BlobStore(tmp_path)
    with store.writer() as writer:
        for _ in range(3):
            writer.write(b"abc" * 1000)
        assert writer.temp_path.name.startswith(".tmp-")
        assert writer.temp_path.parent == tmp_path / "sha256"
        digest, size = writer.commit()
    assert (digest, size) == (digest_of(b"abc" * 3000), 9000)
    assert files_in(store) == [digest.split(":")[1]]


def test_a_digest_mismatch_leaves_nothing_behind(tmp_path):
    store = BlobStore(tmp_path)
    with pytest.raises(InvalidArgument, match="digest mismatch"):
        store.put_bytes(b"evil", expected=digest_of(b"good"))
    # A30: neither the expected name nor the real digest nor a temp file may exist.
    assert files_in(store) == []


def test_an_exception_mid_write_leaves_no_file(tmp_path):
    store = BlobStore(tmp_path)
    with pytest.raises(RuntimeError), store.writer(expected=digest_of(b"ab")) as writer:
        writer.write(b"a")
        raise RuntimeError("connection reset")
    assert files_in(store) == []


def test_a_writer_killed_mid_write_never_leaves_a_blob_under_its_final_name(tmp_path):
    data = b"partial" * 1000
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from engine.store.blobs import BlobStore
        writer = BlobStore(Path({str(tmp_path)!r})).writer()
        writer.write({data!r})
        print(writer.temp_path, flush=True)
        time.sleep(60)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=REPO,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        temp = Path(child.stdout.readline().decode().strip())
        assert temp.exists()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    store = BlobStore(tmp_path)
    assert not store.exists(digest_of(data))
    assert files_in(store) == [temp.name]
    # After the crash, start-up sweeps the orphan: its flock died with the process.
    assert store.sweep_temp() == 1
    assert files_in(store) == []


def test_sweep_keeps_the_temp_file_of_a_live_writer(tmp_path):
    store = BlobStore(tmp_path)
    with store.writer() as writer:
        writer.write(b"in progress")
        # Another process (the CLI starting up) sweeping now must not break this pull.
        assert store.sweep_temp() == 0
        assert writer.temp_path.exists()
        digest, _ = writer.commit()
    assert store.exists(digest)


def test_committing_a_blob_that_already_exists_is_fine(tmp_path):
    store = BlobStore(tmp_path)
    first = store.put_bytes(b"same")
    second = store.put_bytes(b"same", expected=first[0])
    assert first == second
    assert files_in(store) == [first[0].split(":")[1]]


def test_delete_removes_a_blob_and_ignores_a_missing_one(tmp_path):
    store = BlobStore(tmp_path)
    digest, _ = store.put_bytes(b"bye")
    store.delete(digest)
    store.delete(digest)
    assert not store.exists(digest)
    with pytest.raises(NotFound):
        store.open(digest)
    assert not store.verify(digest)


def test_verify_notices_a_corrupted_blob(tmp_path):
    store = BlobStore(tmp_path)
    digest, _ = store.put_bytes(b"original")
    store.path(digest).write_bytes(b"tampered")
    assert not store.verify(digest)


@pytest.mark.parametrize("method", ["path", "exists", "delete", "open"])
def test_every_method_refuses_a_digest_that_could_be_a_path(tmp_path, method):
    store = BlobStore(tmp_path)
    (tmp_path / "secret").write_text("x")
    with pytest.raises(InvalidArgument):
        getattr(store, method)("sha256:../secret")
    assert (tmp_path / "secret").exists()
