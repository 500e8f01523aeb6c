"""Dashboard pages: volume backup (download) and restore (upload), both run as jobs with live progress.

A backup is a Job that writes the archive to a file under the engine's tmp dir (`volume-backups/`),
so the page shows a progress bar while it runs and then offers the file; the download streams that
file and is allowed to the user who made it (and admins). Finished backups are kept for
BACKUP_KEEP_SECONDS, then removed by the next backup that starts; a failed one leaves no file.
A restore streams the upload to the engine's tmp dir (forms_images.EngineUploadHandler, the same as
image loads) and runs `volumebackup.import_` as a Job, whose clean-up removes the upload.

Viewers may browse a volume's files (read-only, 64 KiB per file) but neither download a whole backup
nor restore: both need `volume.backup` / `volume.restore` (operators). Pausing the containers that
use the volume for a consistent copy also needs `container.lifecycle`.
"""

from __future__ import annotations

import re
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from dashboard import policy
from dashboard.responses import go
from dashboard.views_images import job_started, refuse_upload_early, wants_json, with_upload
from engine import conf
from engine.errors import InvalidArgument, NotFound, PermissionDenied
from engine.models import Job, JobState
from engine.services import jobs, volumebackup, volumes

BACKUP_KEEP_SECONDS = 6 * 3600
EXTENSIONS = {"zstd": ".tar.zst", "gzip": ".tar.gz", "none": ".tar"}
FORMAT_CHOICES = [("zstd", "tar.zst (zstd, fast)"), ("gzip", "tar.gz (gzip)"), ("none", "tar (uncompressed)")]
_FILE = re.compile(r"^backup-[0-9a-f]{32}\.tar(\.zst|\.gz)?$")


class BackupForm(forms.Form):
    format = forms.ChoiceField(label="Format", choices=FORMAT_CHOICES, initial="zstd")
    pause = forms.BooleanField(label="Pause the running containers during the copy", required=False)


class RestoreForm(forms.Form):
    archive = forms.FileField(
        label="Backup file",
        help_text="A backup made by Berth or any tar of the volume's contents: tar, gzip or zstd.",
    )
    target = forms.CharField(
        label="Restore into volume",
        max_length=255,
        help_text="This volume, or a new name to restore into a new volume.",
    )
    force = forms.BooleanField(
        label="Replace the contents if the volume is not empty", required=False, initial=False
    )

    def clean_target(self) -> str:
        name = self.cleaned_data["target"].strip()
        try:
            volumes.validate_name(name)
        except InvalidArgument as exc:
            raise forms.ValidationError(str(exc)) from None
        return name


def backups_dir() -> Path:
    directory = conf.tmp_dir() / "volume-backups"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return directory


def _sweep_old_backups() -> None:
    cutoff = time.time() - BACKUP_KEEP_SECONDS
    for item in backups_dir().iterdir():
        try:
            if item.stat().st_mtime < cutoff:
                item.unlink()
        except FileNotFoundError:
            pass


# ---------- the panel on the volume page ----------


@login_required
@require_GET
def backup_panel(request: HttpRequest, name: str) -> HttpResponse:
    """The Backup and restore panel, loaded by htmx into the volume's overview (operators only)."""
    policy.check(request.user, "volume.backup")
    volume = volumes.get(name)
    running = volumebackup.running_users(volume)
    context = {
        "volume": volume,
        "running": running,
        "form": BackupForm(),
        "can_pause": policy.allowed(request.user, "container.lifecycle"),
    }
    return render(request, "dashboard/partials/_volume_backup_panel.html", context)


# ---------- backup ----------


@login_required
@require_POST
def backup_start(request: HttpRequest, name: str) -> HttpResponse:
    policy.check(request.user, "volume.backup")
    volume = volumes.get(name)
    form = BackupForm(request.POST)
    if not form.is_valid():
        raise InvalidArgument("choose a backup format: zstd, gzip or none")
    pause = form.cleaned_data["pause"]
    if pause:
        policy.check(request.user, "container.lifecycle")
    compression = form.cleaned_data["format"]
    _sweep_old_backups()
    filename = f"backup-{secrets.token_hex(16)}{EXTENSIONS[compression]}"
    job = jobs.start(
        kind="backup",
        title=f"Back up volume {volume.name}",
        work=_backup_work(volume.name, filename, compression, pause),
        actor=request.user.get_username(),
    )
    target = reverse("volume_backup_job", args=[volume.name, job.pk])
    return go(request, target)


def _backup_work(name: str, filename: str, compression: str, pause: bool) -> Any:
    def work(*, progress: Any) -> dict[str, Any]:
        final = backups_dir() / filename
        partial = final.with_name(final.name + ".part")
        try:
            with open(partial, "wb") as out:
                result = volumebackup.export(
                    name, out, compression=compression, pause=pause, progress=progress
                )
            partial.rename(final)
        except OSError as exc:
            raise InvalidArgument(f"cannot write the backup file: {exc.strerror}") from exc
        finally:
            partial.unlink(missing_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        return {
            "file": filename,
            "download_name": f"{name}-{stamp}{EXTENSIONS[compression]}",
            "size": result.written,
            "running": list(result.running),
            "paused": list(result.paused),
            "skipped": result.skipped_count,
        }

    return work


def _own_backup_job(request: HttpRequest, name: str, job_id: str) -> Job:
    job = jobs.get(job_id)
    if job.kind != "backup" or job.title != f"Back up volume {name}":
        raise NotFound(f"no backup of volume {name} with id {job_id}")
    if job.created_by != request.user.get_username() and policy.role_of(request.user) != policy.ADMIN:
        raise PermissionDenied("this backup belongs to another user")
    return job


def _backup_file(job: Job) -> Path | None:
    filename = str((job.result or {}).get("file", ""))
    if job.state != JobState.SUCCEEDED or not _FILE.fullmatch(filename):
        return None
    path = backups_dir() / filename
    return path if path.is_file() else None


@login_required
@require_GET
def backup_job(request: HttpRequest, name: str, job_id: str) -> HttpResponse:
    """The backup's progress; once it has succeeded, the download."""
    policy.check(request.user, "volume.backup")
    job = _own_backup_job(request, name, job_id)
    context = {
        "job": job,
        "volume_name": name,
        "available": _backup_file(job) is not None,
        "cancellable": False,
    }
    return render(request, "dashboard/volume_backup_job.html", context)


@login_required
@require_GET
def backup_download(request: HttpRequest, name: str, job_id: str) -> FileResponse:
    policy.check(request.user, "volume.backup")
    job = _own_backup_job(request, name, job_id)
    path = _backup_file(job)
    if path is None:
        raise NotFound(
            "this backup is not available (it failed, is still running, or was removed after 6 hours)"
        )
    download_name = str(job.result.get("download_name") or path.name)
    return FileResponse(path.open("rb"), as_attachment=True, filename=download_name)


# ---------- restore ----------


@csrf_exempt  # checked by _start_restore once the upload handler is in place
@login_required
@require_http_methods(["GET", "POST"])
def restore(request: HttpRequest, name: str) -> HttpResponse:
    refused = refuse_upload_early(request, "volume.restore")
    if refused is not None:
        return refused
    volume = volumes.get(name)
    if request.method == "GET":
        form = RestoreForm(initial={"target": volume.name})
        return render(request, "dashboard/volume_restore.html", {"form": form, "volume": volume})
    return with_upload(request, lambda: _start_restore(request, volume.name))


@csrf_protect
def _start_restore(request: HttpRequest, name: str) -> HttpResponse:
    # csrf_protect runs after the upload handler was set (see views_images._start_upload_job).
    form = RestoreForm(request.POST, request.FILES)
    if form.is_valid():
        _check_target(form)
    if not form.is_valid():
        if wants_json(request):
            return JsonResponse({"errors": {k: list(v) for k, v in form.errors.items()}}, status=400)
        volume = volumes.get(name)
        return render(request, "dashboard/volume_restore.html", {"form": form, "volume": volume}, status=400)
    upload = form.cleaned_data["archive"]
    upload_path = upload.temporary_file_path()
    upload.close()
    target = form.cleaned_data["target"]
    force = form.cleaned_data["force"]
    filename = Path(upload.name or "backup").name
    job = jobs.start(
        kind="restore",
        title=f"Restore {filename} into volume {target}",
        work=_restore_work(upload_path, target, force),
        actor=request.user.get_username(),
        cleanup=lambda: Path(upload_path).unlink(missing_ok=True),
    )
    return job_started(request, job, upload_path)


def _check_target(form: RestoreForm) -> None:
    """Refuse a target in use, or a non-empty one without "replace", now rather than in the job."""
    target = form.cleaned_data["target"]
    try:
        volume = volumes.get(target)
    except NotFound:
        return
    running = volumebackup.running_users(volume)
    if running:
        form.add_error(
            "target", f"volume {target} is used by running container(s) {', '.join(running)}: stop them first"
        )
    elif not form.cleaned_data["force"] and volumes.browse(volume.name):
        form.add_error("force", f"volume {target} is not empty: tick this to replace its contents")


def _restore_work(upload_path: str, target: str, force: bool) -> Any:
    def work(*, progress: Any) -> dict[str, Any]:
        with open(upload_path, "rb") as source:
            result = volumebackup.import_(target, source, force=force, progress=progress)
        return {
            "volume": result.volume,
            "url": reverse("volume", args=[result.volume]),
            "entries": result.entries,
            "created": result.created,
        }

    return work


urlpatterns = [
    path("volumes/<str:name>/backup/", backup_start, name="volume_backup"),
    path("volumes/<str:name>/backup/panel/", backup_panel, name="volume_backup_panel"),
    path("volumes/<str:name>/backups/<uuid:job_id>/", backup_job, name="volume_backup_job"),
    path(
        "volumes/<str:name>/backups/<uuid:job_id>/download/", backup_download, name="volume_backup_download"
    ),
    path("volumes/<str:name>/restore/", restore, name="volume_restore"),
]
