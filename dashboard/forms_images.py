"""Forms of the image pages, and the upload handler that streams archives into the engine's tmp dir.

Archives can be gigabytes: they never sit in memory. `EngineUploadHandler` writes each uploaded file
straight to a file under the engine's tmp directory (same file system as the content store), and
the view hands that path to a Job, whose clean-up removes it. Nothing here decides who may upload:
the views ask dashboard.policy first.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopUpload

from engine import conf
from engine.errors import DiskFull, EngineError
from engine.services import imagetransfer, refs

# An archive bigger than this is refused while it streams (BERTH_UPLOAD_MAX_SIZE in settings).
DEFAULT_MAX_UPLOAD = 20 * 1024**3


class EngineUpload(UploadedFile):
    """An uploaded file kept on disk under the engine's tmp dir; the caller owns (and removes) it."""

    def __init__(self, file: Any, path: str, name: str, content_type: str, size: int, charset: str | None):
        super().__init__(file, name, content_type, size, charset)
        self.path = path

    def temporary_file_path(self) -> str:
        return self.path


class EngineUploadHandler(FileUploadHandler):
    """Stream every uploaded file to `conf.tmp_dir()/upload-*`, refusing files over the size cap.

    `paths` lists every file this handler created, so the view can remove those it did not hand to a
    job (form errors, a refused upload, a dropped connection).
    """

    def __init__(self, request: Any = None) -> None:
        super().__init__(request)
        self.paths: list[str] = []
        self.limit = int(getattr(settings, "BERTH_UPLOAD_MAX_SIZE", DEFAULT_MAX_UPLOAD))
        self._file: Any = None
        self._written = 0

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        conf.ensure_dirs()
        fd, path = tempfile.mkstemp(prefix="upload-", suffix=".part", dir=conf.tmp_dir())
        self.paths.append(path)
        self._file = os.fdopen(fd, "w+b")
        self.file = self._file  # MultiPartParser closes `handler.file` when it stops an upload
        self._written = 0
        self._reserve = conf.disk_reserve()

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self._written += len(raw_data)
        if self._written > self.limit:
            raise StopUpload(connection_reset=True)
        self._file.write(raw_data)
        try:
            self._reserve.written(len(raw_data))
        except DiskFull:
            self.discard()  # the middleware answers with the one-line error; nothing is left
            raise
        return None

    def file_complete(self, file_size: int) -> EngineUpload:
        self._file.flush()
        self._file.seek(0)
        return EngineUpload(
            self._file, self.paths[-1], self.file_name or "", self.content_type or "", file_size, self.charset
        )

    def upload_interrupted(self) -> None:
        self.discard()

    def discard(self, keep: str | None = None) -> None:
        """Remove every file this handler wrote except `keep` (the one handed to a job)."""
        if self._file is not None:
            self._file.close()
        for path in self.paths:
            if path != keep:
                Path(path).unlink(missing_ok=True)
        self.paths = [keep] if keep in self.paths else []


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


class ImportForm(forms.Form):
    """`berth import FILE [REPOSITORY[:TAG]] --change … --message …`."""

    archive = forms.FileField(
        label="Root filesystem tarball", help_text="A tar of a root file system: plain, gzip or zstd."
    )
    reference = forms.CharField(
        label="Repository and tag",
        required=False,
        max_length=512,
        help_text="For example myapp:1.0. Left empty, the image has only an ID.",
    )
    message = forms.CharField(label="Commit message", required=False, max_length=1000)
    changes = forms.CharField(
        label="Dockerfile instructions",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=20000,
        help_text='One per line: CMD ["/bin/sh"], ENV KEY=value, WORKDIR /app, EXPOSE 80, …',
    )

    def clean_reference(self) -> str:
        value = (self.cleaned_data.get("reference") or "").strip()
        if value:
            try:
                parsed = refs.parse_image(value)
            except EngineError as exc:
                raise forms.ValidationError(str(exc)) from None
            if parsed.digest:
                raise forms.ValidationError("a digest cannot name an imported image; give REPOSITORY[:TAG]")
        return value

    def clean_changes(self) -> list[str]:
        lines = _lines(self.cleaned_data.get("changes") or "")
        try:
            imagetransfer.check_changes(lines)  # validate now, before the upload becomes a job
        except EngineError as exc:
            raise forms.ValidationError(str(exc)) from None
        return lines


class LoadForm(forms.Form):
    """`berth load -i FILE`: a `docker save` archive or an OCI image layout archive."""

    archive = forms.FileField(
        label="Image archive", help_text="A docker save archive or an OCI image layout (tar, gzip or zstd)."
    )


class TagForm(forms.Form):
    target = forms.CharField(
        label="New name", max_length=512, help_text="REPOSITORY[:TAG], for example registry.local/app:2"
    )

    def clean_target(self) -> str:
        value = self.cleaned_data["target"].strip()
        try:
            refs.parse_image(value)
        except EngineError as exc:
            raise forms.ValidationError(str(exc)) from None
        return value


class PruneForm(forms.Form):
    all = forms.BooleanField(
        label="Also remove tagged images that no container uses", required=False, initial=False
    )


class RemoveForm(forms.Form):
    force = forms.BooleanField(required=False, initial=False)
