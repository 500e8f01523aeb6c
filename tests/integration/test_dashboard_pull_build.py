"""The pull and build pages over Django's test client, with the jobs they start run to completion.

Pulls go to a real registry (Debian's docker-registry on 127.0.0.1, filled by skopeo; the fixtures come
from test_pull_push). Builds run real RUN containers, so they use test_build's `engine_root` (engine_tx:
conmon's exit commands run in another process and must see the rows), which also checks that no
container, runc container or mount is left. Jobs run in their worker threads, as in the server.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from engine.models import Container, Image, Job, JobState
from engine.services import images, jobs

# Shared fixtures and helpers, not copies: a registry with busybox in it, and a seeded build engine.
from tests.integration.test_build import (  # noqa: F401
    assert_nothing_left,
    engine_root,
    run_output,
    wait_for_exit_commands,
)
from tests.integration.test_dashboard_images_volumes import uploads_left
from tests.integration.test_pull_push import Published, published, real_registry  # noqa: F401
from tests.polling import settle, wait_until

FINAL = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def job_of(response: Any) -> Job:
    """The job a POST started, from the redirect to its page."""
    assert response.status_code == 302, response.content.decode()[:2000]
    location = response["Location"]
    assert location.startswith("/jobs/"), location
    return jobs.get(location.split("/")[2])


def wait_for_job(job: Job, timeout: float = 90) -> Job:
    def final() -> bool:
        job.refresh_from_db()
        return job.state in FINAL

    wait_until(final, timeout=timeout, what=f"job {job.pk} ({job.title}) to finish")
    wait_for_cleanup(job)
    return job


def wait_for_cleanup(job: Job) -> None:
    """The job's clean-up (upload file, cancel switch) runs in its thread just after the row is final."""
    settle(lambda: not (jobs.can_cancel(str(job.pk)) or uploads_left()), interval=0.02)


def context_tar(files: dict[str, str], *, gzip: bool = True) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if gzip else "w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    buffer.name = "context.tar.gz"  # the test client sends this as the file name
    return buffer


def build(client: Client, dockerfile: str | None = None, *, headers: Any = None, **fields: Any) -> Any:
    """POST the build form as the browser does without JavaScript (or, with headers, as progress.js)."""
    data = {"tags": "", "build_args": "", "target": "", "dockerfile": "Dockerfile", **fields}
    if dockerfile is not None:
        data["dockerfile_text"] = dockerfile
    return client.post("/images/build/", data, **(headers or {}))


# ---------- pull ----------


def test_pulling_through_the_page_runs_a_job_that_stores_the_image(
    engine_tx: Path,
    users: dict[str, Any],  # noqa: F811
    published: Published,  # noqa: F811
) -> None:
    client = client_for(users["operator"])
    job = job_of(client.post("/images/pull/", {"reference": published.ref, "platform": ""}))
    assert (job.kind, job.title, job.created_by) == ("pull", f"pull {published.ref}", "operator")
    job = wait_for_job(job)
    assert job.state == JobState.SUCCEEDED, job.error
    # Same ID as the image skopeo put there: the page pulled that very image, under its name.
    assert images.resolve(published.ref).id == published.image_id == job.result["image"]
    assert {layer["status"] for layer in job.progress["layers"]} == {"Pull complete"}
    assert job.progress["lines"][-1] == f"Status: Downloaded newer image for {published.ref}"
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "succeeded" in page
    assert f'href="/images/{published.image_id[7:]}/"' in page  # the result links to the image


def test_pulling_an_unknown_tag_fails_the_job_with_the_registrys_words(
    engine_tx: Path,
    users: dict[str, Any],  # noqa: F811
    published: Published,  # noqa: F811
) -> None:
    client = client_for(users["operator"])
    ref = f"{published.netloc}/test/busybox:no-such-tag"
    job = wait_for_job(job_of(client.post("/images/pull/", {"reference": ref})))
    assert job.state == JobState.FAILED
    assert "manifest unknown" in job.error
    assert not Image.objects.exists()
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "manifest unknown" in page and "Waiting for the first report" not in page


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"reference": "Busybox"}, "reference", "must be lowercase"),
        ({"reference": "a//b"}, "reference", "invalid reference format"),
        ({"reference": "busybox", "platform": "amd64"}, "platform", "invalid platform"),
    ],
)
def test_a_bad_reference_or_platform_is_shown_by_its_field_and_starts_no_job(
    engine: Path,
    users: dict[str, Any],  # noqa: F811
    fields: dict[str, str],
    field: str,
    words: str,
) -> None:
    response = client_for(users["operator"]).post("/images/pull/", fields)
    assert response.status_code == 400
    assert words in response.content.decode()
    assert words in " ".join(response.context["form"].errors[field])
    assert 'value="' + fields["reference"] + '"' in response.content.decode()  # what was typed stays
    assert not Job.objects.exists()


# ---------- who may ----------


def test_a_viewer_is_refused_both_pages_and_starts_nothing(
    engine: Path,
    users: dict[str, Any],  # noqa: F811
) -> None:
    client = client_for(users["viewer"])
    for url in ("/images/pull/", "/images/build/"):
        assert client.get(url).status_code == 403
    assert client.post("/images/pull/", {"reference": "busybox"}).status_code == 403
    upload = context_tar({"Dockerfile": "FROM busybox\n"})
    assert client.post("/images/build/", {"context": upload}).status_code == 403
    response = client.post("/images/build/", {"dockerfile_text": "FROM x"}, HTTP_ACCEPT="application/json")
    assert response.status_code == 403 and "error" in response.json()
    assert not Job.objects.exists()
    assert uploads_left() == []  # refused before the body was read: nothing reached the engine's disk


def test_the_images_page_offers_pull_and_build_to_operators_only(
    engine: Path,
    users: dict[str, Any],  # noqa: F811
) -> None:
    operator = client_for(users["operator"]).get("/images/").content.decode()
    assert 'href="/images/pull/"' in operator and 'href="/images/build/"' in operator
    viewer = client_for(users["viewer"]).get("/images/").content.decode()
    assert "/images/pull/" not in viewer and "/images/build/" not in viewer


def test_pull_and_build_without_a_csrf_token_are_refused(
    engine: Path,
    users: dict[str, Any],  # noqa: F811
) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(users["operator"])
    assert client.post("/images/pull/", {"reference": "busybox"}).status_code == 403
    upload = context_tar({"Dockerfile": "FROM busybox\n"})
    assert client.post("/images/build/", {"context": upload}).status_code == 403
    assert not Job.objects.exists()
    assert uploads_left() == []  # the streamed context went with the refusal


# ---------- build: the form ----------


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({}, "context", "upload a build context, paste a Dockerfile"),
        ({"dockerfile_text": "FROM busybox", "tags": "ok:1, Bad:2"}, "tags", "Bad:2"),
        ({"dockerfile_text": "FROM busybox", "tags": f"x@sha256:{'a' * 64}"}, "tags", "a digest cannot"),
        ({"dockerfile_text": "FROM busybox", "build_args": "A=1\nnot an arg"}, "build_args", "line 2"),
    ],
)
def test_build_form_mistakes_are_shown_by_their_field_and_start_no_job(
    engine: Path,
    users: dict[str, Any],  # noqa: F811
    fields: dict[str, str],
    field: str,
    words: str,
) -> None:
    client = client_for(users["operator"])
    response = build(client, **fields)
    assert response.status_code == 400
    assert words in " ".join(response.context["form"].errors[field])
    # progress.js posts with XHR and puts these next to the field ([data-error-for]).
    response = build(client, headers={"HTTP_ACCEPT": "application/json"}, **fields)
    assert response.status_code == 400 and words in " ".join(response.json()["errors"][field])
    assert not Job.objects.exists()


# ---------- build: jobs with real containers ----------


def test_a_pasted_dockerfile_builds_through_a_job(
    engine_root: Path,  # noqa: F811
    users: dict[str, Any],  # noqa: F811
) -> None:
    client = client_for(users["operator"])
    dockerfile = 'FROM busybox\nRUN echo hi > /x\nCMD ["cat","/x"]\n'
    job = wait_for_job(job_of(build(client, dockerfile, tags="hello:1\nhello:latest")))
    assert job.state == JobState.SUCCEEDED, job.error
    assert job.kind == "build" and job.created_by == "operator"
    image = images.resolve("hello:1")
    assert images.resolve("hello:latest").id == image.id == job.result["image"]
    assert job.progress["step"] == {"step": 3, "total": 3, "text": 'CMD ["cat","/x"]'}
    lines = job.progress["lines"]
    assert "Step 1/3 : FROM busybox" in lines and "Step 2/3 : RUN echo hi > /x" in lines
    assert lines[-2:] == ["Successfully tagged hello:1", "Successfully tagged hello:latest"]
    assert run_output("hello:1") == (0, ["hi"])
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "Step 3/3: CMD" in page and "hello:1, hello:latest" in page
    assert f'href="/images/{image.id[7:]}/"' in page


def test_an_uploaded_context_builds_with_copy_and_its_dockerignore(
    engine_root: Path,  # noqa: F811
    users: dict[str, Any],  # noqa: F811
) -> None:
    client = client_for(users["operator"])
    context = context_tar(
        {
            "Dockerfile": "FROM busybox\nARG WHO=nobody\nCOPY . /app/\nRUN echo $WHO > /app/who\n",
            ".dockerignore": "secret.txt\n",
            "hello.txt": "from the context\n",
            "secret.txt": "must not be copied\n",
        }
    )
    response = build(client, context=context, tags="ctx:1", build_args="WHO=berth")
    job = wait_for_job(job_of(response))
    assert job.state == JobState.SUCCEEDED, job.error
    assert job.title == "build ctx:1 from context.tar.gz"
    assert run_output("ctx:1", "cat", "/app/hello.txt", "/app/who") == (0, ["from the context", "berth"])
    code, listing = run_output("ctx:1", "ls", "/app")
    assert code == 0 and "secret.txt" not in listing and "hello.txt" in listing
    assert uploads_left() == []  # the job's clean-up removed the uploaded context


def test_a_failing_run_shows_its_dockerfile_line_in_the_job_error(
    engine_root: Path,  # noqa: F811
    users: dict[str, Any],  # noqa: F811
) -> None:
    client = client_for(users["operator"])
    job = wait_for_job(job_of(build(client, "FROM busybox\nRUN true\nRUN echo boom; exit 3\n", tags="no:1")))
    assert job.state == JobState.FAILED
    assert "Dockerfile line 3" in job.error and "non-zero code: 3" in job.error
    assert "boom" in job.progress["lines"]  # the step's own output is kept for the reader
    assert not images.exists("no:1")
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "Dockerfile line 3" in page and "Cancel build" not in page
    wait_for_exit_commands(engine_root)
    assert not Container.objects.exists()


def test_cancel_stops_a_sleeping_build_quickly_and_leaves_no_container(
    engine_root: Path,  # noqa: F811
    users: dict[str, Any],  # noqa: F811
) -> None:
    client = client_for(users["operator"])
    job = job_of(build(client, "FROM busybox\nRUN sleep 60\n"))
    wait_until(Container.objects.filter(state="running").exists, timeout=30, what="the RUN step's container")
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert f'action="/jobs/{job.pk}/cancel/"' in page  # the creator sees the Cancel button
    response = client.post(f"/jobs/{job.pk}/cancel/")
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.pk}/"
    job = wait_for_job(job, timeout=30)  # well before the 60 s the step would have slept
    # The engine reports BuildCancelled; jobs.py marks it failed unless it maps it to "cancelled".
    assert job.state == JobState.CANCELLED  # not "failed": the user asked for it
    assert "cancelled" in job.error
    wait_for_exit_commands(engine_root)
    assert_nothing_left(engine_root)  # the RUN container is killed and removed, nothing is mounted


def test_only_the_builds_creator_or_an_admin_may_cancel_it(
    engine_root: Path,  # noqa: F811
    users: dict[str, Any],  # noqa: F811
    django_user_model: Any,
) -> None:
    other = django_user_model.objects.create_user("other", password="x")
    other.groups.add(Group.objects.get(name="operators"))
    owner = client_for(users["operator"])
    job = job_of(build(owner, "FROM busybox\nRUN sleep 60\n"))
    wait_until(Container.objects.filter(state="running").exists, timeout=30, what="the RUN step's container")
    assert client_for(other).post(f"/jobs/{job.pk}/cancel/").status_code == 403
    assert jobs.can_cancel(str(job.pk))  # refused: the build goes on
    response = client_for(users["admin"]).post(f"/jobs/{job.pk}/cancel/", HTTP_HX_REQUEST="true")
    assert response.status_code == 204 and "Cancelling" in response["HX-Trigger"]
    job = wait_for_job(job, timeout=30)
    assert "cancelled" in job.error
    # A finished job cannot be cancelled again: a plain conflict, not a crash.
    assert owner.post(f"/jobs/{job.pk}/cancel/").status_code == 409
    wait_for_exit_commands(engine_root)
    assert_nothing_left(engine_root)


def test_cancelling_a_job_that_is_not_a_running_build_is_a_conflict(
    engine: Path,
    users: dict[str, Any],  # noqa: F811
) -> None:
    client = client_for(users["operator"])
    loading = Job.objects.create(
        kind="load", title="load x.tar", created_by="operator", state=JobState.RUNNING
    )
    response = client.post(f"/jobs/{loading.pk}/cancel/")
    assert response.status_code == 409 and "cannot be cancelled" in response.content.decode()
    done = Job.objects.create(kind="build", title="build", created_by="operator", state=JobState.SUCCEEDED)
    response = client.post(f"/jobs/{done.pk}/cancel/", HTTP_HX_REQUEST="true")
    assert response.status_code == 409 and "already finished (succeeded)" in response["HX-Trigger"]
    assert client.post("/jobs/00000000-0000-4000-8000-000000000000/cancel/").status_code == 404
