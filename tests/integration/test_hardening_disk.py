"""Issue 10, finding 4: a full disk loses nothing, and decompression bombs cost no disk.

Each test gets a small ext4 file system (a loop device over an image in its tmp dir) holding the
engine's root and its database, so the disk really fills: writers must stop at the free-space reserve
(BERTH_DISK_RESERVE) or on ENOSPC with one clear line, remove their partial work, and leave every
record and image usable once space is freed. Zero runs in layers must become holes.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

from engine.image import formats
from engine.image.archivewriter import SaveImage, SaveLayer, write_archive
from tests.conftest import TMP_PREFIX, BerthCLI, require, require_root, unmount_under
from tests.integration.test_image_archives import tar_bytes

MiB = 1 << 20
GiB = 1 << 30
DISK = 128 * MiB
RESERVE = 8 * MiB
BLOCK = 512


# -- the small disk ------------------------------------------------------------------------------


class SmallDisk:
    """An ext4 file system of `DISK` bytes on a loop device, mounted at `mount`."""

    def __init__(self, image: Path) -> None:
        require(shutil.which("mkfs.ext4", path="/usr/sbin:/sbin") is not None, "mkfs.ext4 is missing")
        subprocess.run(["truncate", "-s", str(DISK), str(image)], check=True)
        # -m 0: no blocks kept for root (the engine runs as root and would fill them too).
        subprocess.run(["mkfs.ext4", "-q", "-m", "0", "-F", str(image)], check=True, capture_output=True)
        self.device = subprocess.run(
            ["losetup", "--find", "--show", str(image)], check=True, capture_output=True, text=True
        ).stdout.strip()
        self.mount = Path(tempfile.mkdtemp(prefix=TMP_PREFIX + "disk-", dir="/tmp"))
        try:
            subprocess.run(["mount", self.device, str(self.mount)], check=True, capture_output=True)
        except BaseException:
            self.close()
            raise
        self.filler = self.mount / "filler"

    def free(self) -> int:
        st = os.statvfs(self.mount)
        return st.f_bavail * st.f_frsize

    def used(self) -> int:
        st = os.statvfs(self.mount)
        return (st.f_blocks - st.f_bfree) * st.f_frsize

    def fill(self, *, leave: int = 0) -> None:
        """Take all free space but `leave` bytes (0: the disk is really full, ENOSPC)."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            size = self.free() - leave
            while size > 0:
                try:
                    os.posix_fallocate(fd, os.fstat(fd).st_size, size)
                    break
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    size -= MiB
            if leave == 0:
                while True:  # the last blocks, one by one
                    try:
                        os.write(fd, b"\xff" * 4096)
                    except OSError as exc:
                        if exc.errno == errno.ENOSPC:
                            break
                        raise
        finally:
            os.close(fd)

    def release(self) -> None:
        self.filler.unlink(missing_ok=True)

    def close(self) -> None:
        if os.path.ismount(self.mount):
            unmount_under(self.mount)
            subprocess.run(["umount", str(self.mount)], check=False, capture_output=True)
            if os.path.ismount(self.mount):
                subprocess.run(["umount", "-l", str(self.mount)], check=False, capture_output=True)
        subprocess.run(["losetup", "-d", self.device], check=False, capture_output=True)
        shutil.rmtree(self.mount, ignore_errors=True)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    require_root()
    small = SmallDisk(tmp_path / "disk.img")
    try:
        yield small
    finally:
        small.close()


@pytest.fixture
def cli(disk: SmallDisk, _berth_template: Path) -> Iterator[BerthCLI]:
    """The CLI against a seeded engine whose root (and database) live on the small disk."""
    root = disk.mount / "root"
    run = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir="/run" if os.access("/run", os.W_OK) else "/tmp"))
    # cp -a keeps busybox's hard links (copytree would store each applet as a full copy).
    subprocess.run(["cp", "-a", str(_berth_template), str(root)], check=True)
    berth = BerthCLI(root, run)
    berth.env["BERTH_DISK_RESERVE"] = str(RESERVE)
    try:
        yield berth
    finally:
        disk.release()
        try:
            berth.cleanup()
        finally:
            unmount_under(root)
            unmount_under(run)
            shutil.rmtree(run, ignore_errors=True)


# -- archives ------------------------------------------------------------------------------------


def _tar_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode = size, 0o644
    return info.tobuf(tarfile.PAX_FORMAT)


def streamed_layer(name: str, size: int, byte: bytes, *, compress: str = "gzip") -> tuple[bytes, str]:
    """A compressed one-file layer of `size` bytes of `byte`, made without holding it: (blob, diff_id)."""
    digest = hashlib.sha256()
    if compress == "gzip":
        packer = zlib.compressobj(6, zlib.DEFLATED, 31)
        pack, finish = packer.compress, packer.flush
    else:
        zpacker = zstandard.ZstdCompressor(level=3).compressobj()
        pack, finish = zpacker.compress, zpacker.flush
    out = bytearray()

    def feed(data: bytes) -> None:
        digest.update(data)
        out.extend(pack(data))

    feed(_tar_header(name, size))
    chunk = byte * MiB
    left = size
    while left:
        step = min(left, MiB)
        feed(chunk[:step])
        left -= step
    feed(b"\0" * (-size % BLOCK) + b"\0" * (2 * BLOCK))
    out.extend(finish())
    return bytes(out), f"sha256:{digest.hexdigest()}"


def save_archive(path: Path, tag: str, layers: list[tuple[bytes, str]], media: str) -> Path:
    """Write a docker-save archive of one image made of `layers` ((blob, diff_id) pairs)."""
    config = formats.image_config(
        architecture="amd64",
        os="linux",
        config={"Cmd": ["sh"]},
        diff_ids=[diff_id for _, diff_id in layers],
        history=[{"created_by": "test"} for _ in layers],
        created="2024-01-01T00:00:00Z",
    )
    blobs = {"sha256:" + hashlib.sha256(blob).hexdigest(): blob for blob, _ in layers}
    image = SaveImage(
        "sha256:" + hashlib.sha256(config).hexdigest(),
        config,
        [SaveLayer(d, len(b), media) for d, b in blobs.items()],
        [tag],
    )
    with path.open("wb") as out:
        write_archive(out, [image], open_blob=lambda d: io.BytesIO(blobs[d]))
    return path


def leftovers(root: Path) -> list[str]:
    """Partial work a writer left: temp blobs and layer dirs, spooled uploads, restore staging."""
    found = [str(p) for p in root.rglob(".tmp-*")]
    found += [str(p) for p in (root / "tmp").iterdir()] if (root / "tmp").is_dir() else []
    found += [str(p) for p in (root / "volumes").rglob(".restore*")]
    return found


def one_disk_line(berth: BerthCLI, *args: str) -> str:
    line = berth.fail(*args)
    assert "disk space" in line, line
    return line


# -- a full disk ---------------------------------------------------------------------------------


def fails_cleanly_or_works(berth: BerthCLI, *args: str) -> bool:
    """Run a command on a (nearly) full disk: it works, or fails with one line about disk space."""
    proc = berth(*args)  # BerthCLI asserts there is no traceback
    if proc.returncode == 0:
        return True
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "disk space" in errors[0], proc.stderr
    return False


@pytest.mark.parametrize(
    "leave",
    [0, RESERVE // 2],
    ids=["full", "under-the-reserve"],
)
def test_a_full_disk_fails_every_command_with_one_line_and_loses_nothing(
    cli: BerthCLI, disk: SmallDisk, tmp_path: Path, leave: int
) -> None:
    cli.ok("run", "-d", "--name", "keeper", "busybox", "sleep", "600")
    cli.ok("volume", "create", "vol")
    layer = streamed_layer("data", 4 * MiB, b"\x5a")
    archive = save_archive(
        tmp_path / "img.tar", "late:1", [layer], "application/vnd.docker.image.rootfs.diff.tar.gzip"
    )
    backup = tmp_path / "backup.tar"
    backup.write_bytes(tar_bytes({"f": os.urandom(2 * MiB)}))
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM busybox\nRUN dd if=/dev/urandom of=/big bs=64k count=4\n")
    images_before = cli.ok("images", "-q", "--no-trunc")

    # leave=0: even SQLite cannot open its WAL files; under the reserve: the writers must refuse.
    disk.fill(leave=leave)
    one_disk_line(cli, "load", "-i", str(archive))
    one_disk_line(cli, "volume", "import", "vol", str(backup))
    one_disk_line(cli, "build", "-t", "built:1", str(context))
    late_ran = fails_cleanly_or_works(cli, "run", "--name", "late", "busybox", "true")
    assert late_ran == (leave > 0)  # a container's own small files are not held to the reserve
    fails_cleanly_or_works(cli, "stop", "-t", "1", "keeper")
    assert leftovers(cli.root) == []

    disk.release()
    # Records and images are intact: the old image runs, the stopped container is known and consistent.
    assert cli.ok("images", "-q", "--no-trunc") == images_before
    assert cli.ok("run", "--rm", "busybox", "echo", "still-here").strip() == "still-here"
    cli.ok("stop", "-t", "1", "keeper")
    assert cli.inspect("keeper")["State"]["Status"] == "exited"
    if not late_ran:
        assert cli("container", "inspect", "late").returncode != 0  # refused: no half-made container
    cli.ok("load", "-i", str(archive))
    cli.ok("volume", "import", "vol", str(backup))
    cli.ok("build", "-t", "built:1", str(context))
    assert leftovers(cli.root) == []


def test_a_load_stops_at_the_reserve_and_leaves_no_partial_blob(
    cli: BerthCLI, disk: SmallDisk, tmp_path: Path
) -> None:
    blobs_before = sorted(os.listdir(cli.root / "blobs" / "sha256"))
    layers_before = sorted(os.listdir(cli.root / "layers"))
    # 1 GiB of non-zero bytes in a ~1 MiB gzip: it cannot be holes, so the reserve must stop it.
    layer = streamed_layer("bomb", GiB, b"A")
    archive = save_archive(
        tmp_path / "bomb.tar", "bomb:1", [layer], "application/vnd.docker.image.rootfs.diff.tar.gzip"
    )
    line = one_disk_line(cli, "load", "-i", str(archive))
    assert "reserved" in line or "No space" in line, line
    assert sorted(os.listdir(cli.root / "blobs" / "sha256")) == blobs_before
    assert sorted(os.listdir(cli.root / "layers")) == layers_before
    assert leftovers(cli.root) == []
    assert disk.free() > 64 * MiB  # everything it wrote is gone again


# -- bombs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", ["gzip", "zstd"])
def test_a_layer_of_a_gibibyte_of_zeros_loads_as_holes(
    cli: BerthCLI, disk: SmallDisk, tmp_path: Path, compress: str
) -> None:
    media = f"application/vnd.oci.image.layer.v1.tar+{compress}"
    layer = streamed_layer("zeros", GiB, b"\0", compress=compress)
    assert len(layer[0]) < 8 * MiB
    archive = save_archive(tmp_path / "zeros.tar", "zeros:1", [layer], media)
    used = disk.used()
    cli.ok("load", "-i", str(archive))
    # The disk is 128 MiB: the file is there at full size but costs (almost) nothing.
    assert disk.used() - used < 16 * MiB
    (stored,) = [p for p in (cli.root / "layers").glob("*/zeros")]
    assert stored.stat().st_size == GiB


def test_a_small_archive_with_a_huge_truncated_member_writes_almost_nothing(
    cli: BerthCLI, disk: SmallDisk, tmp_path: Path
) -> None:
    # A member that claims 300 MiB of zeros but the tar ends at 280 MiB: ~10 KiB of zstd.
    size, present = 300 * MiB, 280 * MiB
    digest = hashlib.sha256()
    packer = zstandard.ZstdCompressor(level=19).compressobj()
    blob = bytearray()
    header = _tar_header("huge", size)
    digest.update(header)
    blob += packer.compress(header)
    zeros = bytes(MiB)
    for _ in range(present // MiB):
        digest.update(zeros)
        blob += packer.compress(zeros)
    blob += packer.flush()
    assert len(blob) < 64 * 1024
    archive = save_archive(
        tmp_path / "trunc.tar",
        "trunc:1",
        [(bytes(blob), f"sha256:{digest.hexdigest()}")],
        "application/vnd.oci.image.layer.v1.tar+zstd",
    )
    used = disk.used()
    line = cli.fail("load", "-i", str(archive))
    assert "truncated" in line or "unexpected end" in line, line
    assert disk.used() - used < 4 * MiB
    assert leftovers(cli.root) == []


@pytest.mark.parametrize(
    ("sparse_map", "expected"),
    [
        (b"1\n0\n512\n", "sparse files are not supported"),  # a valid map
        (b"512\n0\n", "not a tar archive"),  # a map that ends before its 512 entries
    ],
)
def test_a_sparse_member_is_refused_after_writing_almost_nothing(
    cli: BerthCLI, disk: SmallDisk, tmp_path: Path, sparse_map: bytes, expected: str
) -> None:
    # GNU 1.0 sparse in PAX headers: a map that claims 286 MiB of real size from a few bytes.
    info = tarfile.TarInfo("GNUSparseFile.0/sparse")
    data = sparse_map + b"\0" * (BLOCK - len(sparse_map)) + b"x" * BLOCK
    info.size = len(data)
    info.pax_headers = {
        "GNU.sparse.major": "1",
        "GNU.sparse.minor": "0",
        "GNU.sparse.name": "sparse",
        "GNU.sparse.realsize": str(286 * MiB),
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(data))
    plain = buf.getvalue()
    blob = gzip.compress(plain)
    assert len(blob) < 10 * 1024
    archive = save_archive(
        tmp_path / "sparse.tar",
        "sparse:1",
        [(blob, "sha256:" + hashlib.sha256(plain).hexdigest())],
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
    )
    used = disk.used()
    line = cli.fail("load", "-i", str(archive))
    assert expected in line, line
    assert disk.used() - used < 4 * MiB
    assert leftovers(cli.root) == []
    assert cli("image", "inspect", "sparse:1").returncode != 0


def test_a_build_context_bomb_from_stdin_stops_at_the_reserve_and_leaves_nothing(
    cli: BerthCLI, disk: SmallDisk, tmp_path: Path
) -> None:
    # 256 MiB of non-zero bytes in a small gzip tar, on a 128 MiB disk: only the reserve can stop it.
    blob, _ = streamed_layer("big", 256 * MiB, b"B")
    context = tmp_path / "ctx.tar.gz"
    context.write_bytes(blob)
    with context.open("rb") as stdin:
        proc = subprocess.run(
            [*cli.argv, "build", "-t", "ctxbomb:1", "-"],
            env=cli.env,
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=300,
        )
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error: ")]
    # The reserve stops it, not the kernel: "… free, 8 MiB reserved", never "No space left".
    assert proc.returncode != 0 and len(errors) == 1 and "reserved" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr

    assert leftovers(cli.root) == []
    assert disk.free() > 64 * MiB  # the unpacked part of the context is gone again
