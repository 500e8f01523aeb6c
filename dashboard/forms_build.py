"""Forms of the pull and build pages: `docker pull REF [--platform]` and `docker build` from the browser.

They only validate what a person typed (a reference, a platform, tags, build args) so that a mistake is
shown next to its field before any job starts; the engine validates again when it runs. The build
context arrives as an upload that `forms_images.EngineUploadHandler` has already streamed to disk.
Nothing here decides who may pull or build: the views ask dashboard.policy first.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms

from engine.errors import EngineError
from engine.services import refs, registry

MAX_TAGS = 100
MAX_BUILD_ARGS = 1000
MAX_DOCKERFILE = 500_000  # characters; a Dockerfile is a small text, the context carries the bulk
_ARG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def _split_tags(text: str) -> list[str]:
    """Tags one per line or comma separated, blanks dropped, duplicates kept once in order."""
    out: list[str] = []
    for part in re.split(r"[,\n]", text):
        tag = part.strip()
        if tag and tag not in out:
            out.append(tag)
    return out


class PullForm(forms.Form):
    """`berth pull REFERENCE [--platform os/arch[/variant]]`."""

    reference = forms.CharField(
        label="Image",
        max_length=512,
        help_text="NAME[:TAG] or NAME@DIGEST, for example busybox, nginx:1.27 or "
        "registry.local:5000/team/app:2. Without a registry, Docker Hub is asked.",
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "none"}
        ),
    )
    platform = forms.CharField(
        label="Platform",
        required=False,
        max_length=64,
        help_text="os/arch[/variant], for example linux/arm64. Empty: this host's platform.",
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "spellcheck": "false", "placeholder": "linux/amd64"}
        ),
    )

    def clean_reference(self) -> str:
        value = self.cleaned_data["reference"].strip()
        try:
            refs.parse_image(value)
        except EngineError as exc:
            raise forms.ValidationError(str(exc)) from None
        return value

    def clean_platform(self) -> str:
        value = (self.cleaned_data.get("platform") or "").strip()
        if value:
            try:
                registry.parse_platform(value)
            except EngineError as exc:
                raise forms.ValidationError(str(exc)) from None
        return value


class BuildForm(forms.Form):
    """`berth build [-f FILE] [-t TAG …] [--build-arg K=V …] [--target STAGE] [--no-cache] CONTEXT`.

    Either a context archive (a tar of a directory holding its Dockerfile and .dockerignore), or a
    pasted Dockerfile with no context, or both (the pasted Dockerfile is then used with the archive,
    as `docker build -f - CONTEXT` does).
    """

    context = forms.FileField(
        label="Build context",
        required=False,
        help_text="A .tar, .tar.gz, .tar.xz or .tar.bz2 of the directory to build: its Dockerfile, "
        ".dockerignore and the files COPY takes.",
    )
    dockerfile = forms.CharField(
        label="Dockerfile path in the context",
        required=False,
        max_length=1024,
        initial="Dockerfile",
        help_text="Relative to the context's top directory, like docker build -f.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    dockerfile_text = forms.CharField(
        label="Or paste a Dockerfile",
        required=False,
        max_length=MAX_DOCKERFILE,
        strip=False,
        help_text="Without a context archive, COPY and ADD have nothing to copy from.",
        widget=forms.Textarea(
            attrs={
                "rows": 8,
                "spellcheck": "false",
                "class": "mono",
                "placeholder": 'FROM busybox\nRUN echo hi > /x\nCMD ["cat", "/x"]',
            }
        ),
    )
    tags = forms.CharField(
        label="Tags",
        required=False,
        max_length=20_000,
        help_text="NAME[:TAG], one per line or separated by commas, for example myapp:1.0, myapp:latest.",
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false", "autocapitalize": "none"}),
    )
    build_args = forms.CharField(
        label="Build arguments",
        required=False,
        max_length=100_000,
        help_text="KEY=VALUE, one per line: the values of the Dockerfile's ARG instructions.",
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false", "autocapitalize": "none"}),
    )
    target = forms.CharField(
        label="Target stage",
        required=False,
        max_length=128,
        help_text="Build up to this stage of a multi-stage Dockerfile (FROM … AS NAME).",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    no_cache = forms.BooleanField(label="Do not use the build cache", required=False)

    def clean_tags(self) -> list[str]:
        tags = _split_tags(self.cleaned_data.get("tags") or "")
        if len(tags) > MAX_TAGS:
            raise forms.ValidationError(f"at most {MAX_TAGS} tags")
        errors = []
        for tag in tags:
            try:
                parsed = refs.parse_image(tag)
            except EngineError as exc:
                errors.append(f"{tag}: {exc}")
                continue
            if parsed.digest:
                errors.append(f"{tag}: a digest cannot name a built image; give NAME[:TAG]")
        if errors:
            raise forms.ValidationError(errors)
        return tags

    def clean_build_args(self) -> dict[str, str]:
        args: dict[str, str] = {}
        for number, raw in enumerate((self.cleaned_data.get("build_args") or "").splitlines(), start=1):
            line = raw.strip()
            if not line:
                continue
            key, sep, value = line.partition("=")
            key = key.strip()
            if not sep or not _ARG_NAME.match(key):
                raise forms.ValidationError(f"line {number}: write KEY=VALUE (got {line[:80]!r})")
            args[key] = value
        if len(args) > MAX_BUILD_ARGS:
            raise forms.ValidationError(f"at most {MAX_BUILD_ARGS} build arguments")
        return args

    def clean_dockerfile(self) -> str:
        value = (self.cleaned_data.get("dockerfile") or "").strip() or "Dockerfile"
        if "\x00" in value:
            raise forms.ValidationError("the path may not contain NUL")
        return value

    def clean_target(self) -> str:
        return (self.cleaned_data.get("target") or "").strip()

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data  # what Form.clean returns (typed as optional by the stubs)
        text = data.get("dockerfile_text") or ""
        if not text.strip():
            data["dockerfile_text"] = None
        if (
            data.get("context") is None
            and data.get("dockerfile_text") is None
            and not self.has_error("dockerfile_text")
        ):
            self.add_error("context", "upload a build context, paste a Dockerfile, or both")
        return data

    def groups(self) -> list[tuple[str, str, list[Any]]]:
        """(legend, hint, bound fields) for the template: the source of the build, then its options."""
        return [
            (
                "What to build",
                "Upload a context archive, paste a Dockerfile, or both (the pasted one is then used).",
                [self["context"], self["dockerfile"], self["dockerfile_text"]],
            ),
            ("Options", "", [self["tags"], self["build_args"], self["target"], self["no_cache"]]),
        ]
