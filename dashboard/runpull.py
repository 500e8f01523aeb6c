"""The Run form's "pull it first": one job that pulls the missing image, then creates and starts the
container, as `berth run` does for an image it does not have.

The view has already checked the whole spec (container.create) and the right to pull (image.import);
the job runs as the user who asked (engine.services.jobs sets the actor), so the pull, create and
start events name them. The job page shows the layers as any pull does, then links to the container.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from engine.errors import EngineError
from engine.models import Job
from engine.progress import OutputLine, Progress
from engine.services import containers, jobs, lifecycle, options, refs, registry


def start(image_ref: str, spec: options.ContainerOptions, *, actor: str) -> Job:
    """Start the job: pull `image_ref`, then create and start a container from `spec`."""

    def work(*, progress: Progress) -> dict[str, Any]:
        image = registry.pull(image_ref, progress=progress)
        parsed = refs.parse_image(image_ref)
        tags = [parsed.familiar()] if parsed.tag and not parsed.digest else []
        result: dict[str, Any] = {
            "image": image.id,
            "images": [
                {
                    "id": image.id,
                    "short_id": image.short_id,
                    "tags": tags,
                    "url": reverse("image", args=[image.id.removeprefix("sha256:")]),
                }
            ],
        }
        container = containers.create(spec)
        progress(OutputLine(f"Created container {container.name}"))
        try:
            lifecycle.start(container.id)
        except EngineError as exc:
            # Docker leaves the container created when start fails; so do we, and say which one.
            progress(OutputLine(f"{container.name} was created but did not start"))
            raise exc
        progress(OutputLine(f"Started container {container.name}"))
        result["container"] = {
            "id": container.id,
            "name": container.name,
            "url": reverse("container", kwargs={"ref": container.id}) + "?tab=logs",
        }
        return result

    return jobs.start(kind="pull", title=f"pull {image_ref} and run", work=work, actor=actor)
