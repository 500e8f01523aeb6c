"""Volume backup and restore: a volume's tree as a (compressed) tar, out of the engine and back in.

Export walks the volume from a descriptor of its directory, entering every subdirectory with
``O_NOFOLLOW`` (store/tarstream.write_tree): a symlink is stored as a link and never followed, so a
container that swaps a directory for a link to ``/etc`` mid-walk gets its link archived, not the
host's files (SECURITY.md 1.7 item 4, issue 10 item 2). Owners, modes, times (to the second, as tar
keeps them), xattrs and hard links are kept. Device nodes (and sockets, which tar cannot hold) are left
out and reported: a restore refuses device nodes as hostile input, so storing them would make a backup
that cannot come back.

Import treats the archive as hostile: it is extracted by the image layers' extractor (traversal,
absolute names, links out, devices, whiteouts, sparse members, sizes that the data contradicts and a
total cap are all refused) into a staging directory beside ``_data`` (``volumes/NAME/.restore-*``,
which no container mounts), and only a complete extraction is exchanged with ``_data`` in one
``renameat2(RENAME_EXCHANGE)``; on any failure the staging directory is removed and the volume is
as it was (a volume the import created is removed again).

Both stream: memory stays flat whatever the volume's size (bounded queues of 1 MiB chunks).

Over 400 lines because export and import share the running-user checks, the staging and exchange protocol and
the progress wording; the compressing writer lives in store.compressingwriter.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from dataclasses import dataclass
from typing import BinaryIO

from engine import conf, events, locks
from engine.errors import (
    EngineError,
    InUse,
    InvalidArgument,
    InvalidState,
    RuntimeFailure,
    UnsafeArchive,
    VolumeNotFound,
)
from engine.models import Container, ContainerState, Volume
from engine.progress import CountingReader, LayerProgress, OutputLine, Progress, ignore
from engine.services import lifecycle, volumes
from engine.store import fsops, tarstream
from engine.store import volumes as volume_store
from engine.store.compressingwriter import CompressingWriter
from engine.store.compression import detect as detect_compression

COMPRESSIONS = ("none", "gzip", "zstd")
SUFFIXES = {".tar": "none", ".tar.gz": "gzip", ".tgz": "gzip", ".tar.zst": "zstd", ".tar.zstd": "zstd"}
# Uncompressed tar bytes one restore may write. Disk space is the practical bound: a full disk stops
# the extraction (ENOSPC) and the staging directory is removed.
RESTORE_MAX_BYTES = 1 << 40
STAGING_PREFIX = ".restore-"
_BATCH = 1 << 20
_SKIPPED_SHOWN = 20
_LIVE = (ContainerState.RUNNING, ContainerState.PAUSED, ContainerState.RESTARTING)


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote. ``running``: containers using the volume that ran during the copy (the
    copy may be inconsistent); ``paused``: those paused for it and unpaused after."""

    volume: str
    compression: str
    tar_bytes: int
    written: int
    skipped: tuple[str, ...]
    skipped_count: int
    running: tuple[str, ...]
    paused: tuple[str, ...]


@dataclass(frozen=True)
class ImportResult:
    volume: str
    compression: str
    entries: int
    created: bool
    replaced: bool


def compression_for(filename: str) -> str:
    """Return the compression a backup file name asks for by its suffix; InvalidArgument otherwise."""
    lower = filename.lower()
    for suffix, compression in sorted(SUFFIXES.items(), key=lambda item: -len(item[0])):
        if lower.endswith(suffix):
            return compression
    raise InvalidArgument(
        f"cannot tell the format from {filename!r}: name it .tar, .tar.gz, .tgz or .tar.zst"
    )


def running_users(volume: Volume | str) -> list[str]:
    """Names of the running (or paused, restarting) containers that mount the volume."""
    volume = volumes.get(volume) if isinstance(volume, str) else volume
    return sorted(
        Container.objects.filter(mounts__volume=volume, state__in=_LIVE)
        .values_list("name", flat=True)
        .distinct()
    )


# -- export ---------------------------------------------------------------------------------------


def export(
    name: str,
    out: BinaryIO,
    *,
    compression: str = "zstd",
    pause: bool = False,
    progress: Progress = ignore,
) -> ExportResult:
    """Write volume ``name`` as a tar (compressed with ``compression``) to ``out``.

    With ``pause``, running containers that use the volume are paused for the copy and unpaused
    after, whatever happens. Raise VolumeNotFound, InvalidArgument for an unknown compression,
    RuntimeFailure when the volume cannot be read or ``out`` cannot be written.
    """
    if compression not in COMPRESSIONS:
        raise InvalidArgument(f"unknown compression {compression!r} (use {', '.join(COMPRESSIONS)})")
    volume = volumes.get(name)
    live = list(Container.objects.filter(mounts__volume=volume, state__in=_LIVE).distinct())
    paused: list[Container] = []
    stopped: list[Container] = []
    try:
        if pause:
            for container in live:
                if container.state != ContainerState.RUNNING:
                    continue
                try:
                    lifecycle.pause(container.id)
                except InvalidState:
                    stopped.append(container)  # it stopped since we looked: nothing to pause
                    continue
                paused.append(container)
        running = tuple(
            sorted(
                c.name
                for c in live
                if c not in paused and c not in stopped and c.state != ContainerState.PAUSED
            )
        )
        for container_name in running:
            progress(
                OutputLine(
                    f"WARNING: container {container_name} uses the volume and is running: files may change "
                    "during the copy (pause it for a consistent copy)"
                )
            )
        tar_bytes, written, skipped, skipped_count = _write(volume, out, compression, progress)
    except EngineError as exc:
        events.record("volume", "backup", object_id=name, object_name=name, result="error", message=str(exc))
        raise
    finally:
        _unpause(paused, progress)
    for path in skipped:
        progress(OutputLine(f"skipped {path}: device nodes and sockets are not backed up"))
    if skipped_count > len(skipped):
        progress(OutputLine(f"skipped {skipped_count - len(skipped)} more device node(s) or socket(s)"))
    events.record(
        "volume",
        "backup",
        object_id=name,
        object_name=name,
        attributes={"compression": compression, "bytes": written, "paused": [c.name for c in paused]},
    )
    return ExportResult(
        volume=name,
        compression=compression,
        tar_bytes=tar_bytes,
        written=written,
        skipped=tuple(skipped),
        skipped_count=skipped_count,
        running=running,
        paused=tuple(c.name for c in paused),
    )


def _unpause(paused: list[Container], progress: Progress) -> None:
    for container in paused:
        try:
            lifecycle.unpause(container.id)
        except EngineError as exc:  # the backup itself is done; say so rather than hide it
            progress(OutputLine(f"warning: could not unpause {container.name}: {exc}"))


def _write(
    volume: Volume, out: BinaryIO, compression: str, progress: Progress
) -> tuple[int, int, list[str], int]:
    skipped: list[str] = []
    count = 0

    def keep(rel: str, st: os.stat_result) -> bool:
        nonlocal count
        if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISSOCK(st.st_mode):
            count += 1
            if len(skipped) < _SKIPPED_SHOWN:
                skipped.append(rel)
            return False
        return True

    parent = _open_volume_dir(volume)
    try:
        total = fsops.tree_size(f"/proc/self/fd/{parent}/_data") if progress is not ignore else 0
        chunks = tarstream.write_tree(parent, "_data", ".", keep=keep)
        sink = CompressingWriter(out, compression)
        done = 0
        reported = 0
        pending = bytearray()
        try:
            for chunk in chunks:
                done += len(chunk)
                # Small files come as small chunks: batch them, so the two threads hand over (and
                # contend for the GIL) once a MiB rather than twice a file.
                if not pending and len(chunk) >= _BATCH:
                    sink.write(chunk)
                else:
                    pending += chunk
                    if len(pending) >= _BATCH:
                        sink.write(bytes(pending))
                        pending.clear()
                if done - reported >= 1 << 20:
                    reported = done
                    progress(LayerProgress(volume.name, min(done, total), total, "Backing up"))
            if pending:
                sink.write(bytes(pending))
            sink.close()
        except OSError as exc:
            raise RuntimeFailure(f"cannot back up volume {volume.name}: {exc.strerror or exc}") from exc
        finally:
            chunks.close()  # type: ignore[attr-defined]  # a generator
            sink.abort()
        progress(LayerProgress(volume.name, max(done, total), max(done, total), "Backed up"))
        return done, sink.written, skipped, count
    finally:
        os.close(parent)


# -- import ---------------------------------------------------------------------------------------


def import_(
    name: str,
    source: BinaryIO,
    *,
    force: bool = False,
    size: int | None = None,
    progress: Progress = ignore,
) -> ImportResult:
    """Restore the backup read from ``source`` (tar, gzip, zstd, xz or bzip2, told by its magic bytes)
    into volume ``name``, creating it if missing.

    A volume with contents is refused unless ``force`` (its contents are then replaced); a volume
    used by a running container is refused (it would keep seeing the old directory). Raise
    UnsafeArchive/InvalidArgument for a refused or corrupt archive, InUse, RuntimeFailure; on any
    error nothing is left: no staging files, and no volume if this call created it.
    """
    volumes.validate_name(name)
    if size is None:
        size = _size_of(source)
    with locks.locked("volume", name):
        created = False
        try:
            try:
                volume = volumes.get(name)
            except VolumeNotFound:
                volume = volumes.create(name)
                created = True
            result = _restore(volume, source, force=force, size=size, created=created, progress=progress)
        except BaseException as exc:
            if created:
                _remove_quietly(name)
            if isinstance(exc, EngineError):
                events.record(
                    "volume", "restore", object_id=name, object_name=name, result="error", message=str(exc)
                )
            raise
    events.record(
        "volume",
        "restore",
        object_id=name,
        object_name=name,
        attributes={
            "compression": result.compression,
            "entries": result.entries,
            "replaced": result.replaced,
        },
    )
    return result


def _restore(
    volume: Volume, source: BinaryIO, *, force: bool, size: int, created: bool, progress: Progress
) -> ImportResult:
    _refuse_running(volume)
    parent = _open_volume_dir(volume)
    try:
        _sweep_staging(parent)
        has_contents = _has_contents(parent)
        if has_contents and not force:
            raise InUse(
                f"volume {volume.name} is not empty; refusing to overwrite its contents",
                hint="import with --force to replace them, or choose a new volume name",
            )
        staging = STAGING_PREFIX + secrets.token_hex(8)
        os.mkdir(staging, 0o700, dir_fd=parent)
        try:
            stage_fd = fsops.open_dir_at(parent, staging)
            try:
                os.fchmod(stage_fd, 0o755)  # like a new volume's _data, unless the backup says otherwise
                reader = CountingReader(
                    source, progress=progress, id=volume.name, total=size, status="Restoring"
                )
                decoded_kind = _peek_kind(source)
                entries = tarstream.extract_into(
                    reader,  # type: ignore[arg-type]
                    stage_fd,
                    max_bytes=RESTORE_MAX_BYTES,
                    rename=_relative_only,
                    reserve=conf.disk_reserve(),
                )
            except InvalidArgument as exc:
                # The extractor speaks of layers; here the hostile input is a backup.
                raise type(exc)(f"backup refused: {_reworded(exc.message)}", hint=exc.hint) from None
            finally:
                os.close(stage_fd)
            _refuse_running(volume)  # a container started meanwhile would keep the old directory
            fsops.exchange_at(parent, staging, "_data")
        finally:
            # After the exchange this holds the old contents; before it, the partial extraction.
            fsops.remove_at(parent, staging)
    except OSError as exc:
        raise RuntimeFailure(f"cannot restore volume {volume.name}: {exc.strerror or exc}") from exc
    finally:
        os.close(parent)
    if size:
        progress(LayerProgress(volume.name, size, size, "Restored"))
    progress(OutputLine(f"restored {entries} entries into volume {volume.name}"))
    return ImportResult(
        volume=volume.name, compression=decoded_kind, entries=entries, created=created, replaced=has_contents
    )


def _reworded(message: str) -> str:
    """The extractor's words for image layers and `cp`, said of a backup and a volume."""
    message = re.sub(r"\blayer\b", "backup", message)
    return message.replace("copied into a container", "restored into a volume")


def _relative_only(name: str) -> str:
    # Image layers resolve "/x" inside the layer, as Docker does; a backup of a volume has no
    # reason to hold an absolute name, so one is refused rather than quietly re-rooted.
    if name.startswith("/"):
        raise UnsafeArchive.at(name, "absolute names are not allowed in a volume backup")
    return name


def _peek_kind(source: BinaryIO) -> str:
    """The compression as DecodedStream will detect it, for the report (without consuming bytes)."""
    peek = getattr(source, "peek", None)
    if peek is not None:
        head = peek(8)[:8]
    elif source.seekable():
        where = source.tell()
        head = source.read(8)
        source.seek(where)
    else:
        return "unknown"
    kind = detect_compression(head)
    return "none" if kind == "tar" else kind


def _size_of(source: BinaryIO) -> int:
    try:
        st = os.fstat(source.fileno())
    except (AttributeError, OSError, ValueError):
        return 0
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


def _refuse_running(volume: Volume) -> None:
    live = running_users(volume)
    if live:
        raise InUse(
            f"volume {volume.name} is used by running container(s): {', '.join(live)}",
            hint="stop them before restoring into it",
        )


def _open_volume_dir(volume: Volume) -> int:
    """Open volumes/NAME (engine-owned, never mounted into a container) with O_NOFOLLOW."""
    path = volume_store.data_path(conf.volumes_dir(), volume.name).parent
    try:
        return fsops.open_dir(path)
    except OSError as exc:
        raise RuntimeFailure(f"cannot open volume {volume.name}: {exc.strerror}") from exc


def _has_contents(parent: int) -> bool:
    try:
        data = fsops.open_dir_at(parent, "_data")
    except FileNotFoundError:
        os.mkdir("_data", 0o755, dir_fd=parent)
        return False
    try:
        with os.scandir(data) as entries:
            return next(iter(entries), None) is not None
    finally:
        os.close(data)


def _sweep_staging(parent: int) -> None:
    """Remove staging directories a crashed restore left (we hold the volume's lock)."""
    for entry in os.listdir(parent):
        if entry.startswith(STAGING_PREFIX):
            fsops.remove_at(parent, entry)


def _remove_quietly(name: str) -> None:
    try:
        volumes.remove(name, force=True)
    except EngineError:
        pass
