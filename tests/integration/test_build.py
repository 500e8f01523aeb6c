"""`build` and `commit` against real runc, conmon and overlayfs, with a seeded busybox.

Each test builds in a private engine root (engine_tx: conmon's exit commands run in another process
and must see the rows). The leak guard checks that no mount or conmon is left behind, and the tests
that fail or cancel a build also check that no container record or runc container remains.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import _conmons, _processes_with, require_root, settle_conmons
from tests.polling import wait_until


@pytest.fixture
def engine_root(engine_tx: Path) -> Iterator[Path]:
    require_root()
    from engine.services import system

    before = _conmons()
    system.seed()
    yield engine_tx
    _remove_everything(engine_tx, before)
    assert_nothing_left(engine_tx)  # scoped to this root: other suites may run on the host meanwhile


def _remove_everything(root: Path, conmons_before: set[int]) -> None:
    from engine.models import Container
    from engine.services import lifecycle

    for container in Container.objects.all():
        lifecycle.remove(container.id, force=True, volumes=True)
    wait_for_exit_commands(root)
    settle_conmons(conmons_before)


def wait_for_exit_commands(root: Path) -> None:
    """conmon's exit commands (`berth container-exited`) finish after the container: wait for them."""
    marker = f"BERTH_ROOT={root}\0".encode()
    wait_until(lambda: not _processes_with(marker), timeout=60, what="the exit commands to finish")


def make_context(tmp_path: Path, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    for name, text in (files or {}).items():
        path = ctx / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return ctx


def run_output(image: str, *command: str) -> tuple[int, list[str]]:
    """Run a container from `image` through the real overlay; return its exit code and output lines."""
    from engine.services import containerinfo, containers, lifecycle
    from engine.services.options import ContainerOptions

    container = containers.create(ContainerOptions(image=image, command=tuple(command) or None))
    try:
        lifecycle.start(container.id)
        code = lifecycle.wait(container.id, timeout=30)
        lines = [line.text for line in containerinfo.logs(container.id, containerinfo.LogQuery())]
    finally:
        lifecycle.remove(container.id, force=True, volumes=True)
    return code, lines


def top_layer(image: Any) -> Path:
    from engine.services import imagestore

    return imagestore.layer_paths(image)[0]


def assert_nothing_left(root: Path) -> None:
    """No container record, no runc container and no mount under the engine root."""
    from engine import conf
    from engine.models import Container

    assert not Container.objects.exists()
    state = conf.run_dir() / "runc"
    if state.is_dir():
        listed = subprocess.run(
            ["runc", "--root", str(state), "list", "-q"], capture_output=True, text=True, check=False
        ).stdout
        assert listed.strip() == ""
    with open("/proc/self/mountinfo") as f:
        assert not [line for line in f if str(root) in line]


BASIC = 'FROM busybox\nRUN echo hi > /hello\nENV A=b\nCOPY f /f\nWORKDIR /app\nCMD ["cat", "/hello"]\n'


def test_build_makes_an_image_whose_command_prints_hi(engine_root: Path, tmp_path: Path) -> None:
    from engine.services import builds

    ctx = make_context(tmp_path, BASIC, {"f": "from the context\n"})
    steps: list[str] = []
    image = builds.build(ctx, tags=["demo:1"], progress=lambda e: steps.append(getattr(e, "text", "")))
    config = image.config["config"]
    assert "A=b" in config["Env"] and config["WorkingDir"] == "/app" and config["Cmd"] == ["cat", "/hello"]
    assert run_output("demo:1") == (0, ["hi"])
    assert run_output("demo:1", "cat", "/f")[1] == ["from the context"]
    assert "FROM busybox" in steps and 'CMD ["cat", "/hello"]' in steps
    # metadata steps add no layer: busybox + RUN + COPY
    assert len(image.config["rootfs"]["diff_ids"]) == 3
    assert [h.get("empty_layer", False) for h in image.config["history"][1:]] == [
        False,
        True,
        False,
        True,
        True,
    ]


def test_rm_in_a_run_becomes_a_whiteout_and_the_file_is_gone(engine_root: Path, tmp_path: Path) -> None:
    from engine.services import builds

    ctx = make_context(tmp_path, "FROM busybox\nRUN rm /etc/group\n")
    image = builds.build(ctx, tags=["gone:1"])
    st = os.lstat(top_layer(image) / "etc" / "group")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0  # stored as an overlay whiteout
    assert run_output("gone:1", "sh", "-c", "test -e /etc/group && echo present || echo missing") == (
        0,
        ["missing"],
    )


def test_multi_stage_copy_from_takes_a_file_from_an_earlier_stage(engine_root: Path, tmp_path: Path) -> None:
    from engine.services import builds

    dockerfile = (
        "ARG GREETING=hello\n"
        "FROM busybox AS maker\n"
        "ARG GREETING\n"
        "RUN echo $GREETING-built > /out\n"
        "FROM busybox\n"
        "COPY --from=maker /out /copied\n"
        "CMD cat /copied\n"
    )
    image = builds.build(make_context(tmp_path, dockerfile), tags=["multi:1"], build_args={"GREETING": "hey"})
    assert (top_layer(image) / "copied").read_text() == "hey-built\n"
    assert len(image.config["rootfs"]["diff_ids"]) == 2  # busybox + the COPY: nothing of the first stage
    assert run_output("multi:1") == (0, ["hey-built"])
    assert_nothing_left_but_images(engine_root)


def assert_nothing_left_but_images(root: Path) -> None:
    from engine.models import Container

    assert not Container.objects.exists()  # every RUN container was removed


def test_a_failing_run_names_its_line_and_leaves_no_container(engine_root: Path, tmp_path: Path) -> None:
    from engine.errors import DockerfileError
    from engine.services import builds

    ctx = make_context(tmp_path, "FROM busybox AS one\nRUN true\nFROM one\nRUN echo out; exit 3\n")
    with pytest.raises(DockerfileError) as info:
        builds.build(ctx, tags=["fails:1"])
    assert info.value.line == 4
    assert "returned a non-zero code: 3" in str(info.value)
    wait_for_exit_commands(engine_root)
    assert_nothing_left(engine_root)


def test_a_second_build_reuses_every_step_and_gives_the_same_id(
    engine_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.services import builds, lifecycle

    ctx = make_context(tmp_path, BASIC, {"f": "x\n"})
    first = builds.build(ctx)
    started: list[str] = []
    start = lifecycle.start
    monkeypatch.setattr(lifecycle, "start", lambda ref, **kw: started.append(ref) or start(ref, **kw))
    seen: list[str] = []
    second = builds.build(ctx, progress=lambda e: seen.append(getattr(e, "text", "")))
    assert second.id == first.id
    assert seen.count(" ---> Using cache") == 5
    assert started == []  # no container was run
    (ctx / "f").write_text("changed\n")
    third = builds.build(ctx)  # a changed COPY source invalidates that step and the ones after it
    assert third.id != first.id
    assert builds.build(ctx, no_cache=True).id != third.id
    assert len(started) == 1  # the RUN step's container: the spy sees one when there is one


def test_dockerignore_excludes_files_with_exceptions(engine_root: Path, tmp_path: Path) -> None:
    from engine.services import builds

    files = {
        ".dockerignore": "secret*\n!secret-ok\n**/*.log\n",
        "secret1": "s",
        "secret-ok": "ok",
        "keep": "k",
        "sub/deep/x.log": "log",
        "sub/deep/y.txt": "y",
    }
    image = builds.build(make_context(tmp_path, "FROM busybox\nCOPY . /ctx/\n", files))
    ctx = top_layer(image) / "ctx"
    names = sorted(str(p.relative_to(ctx)) for p in ctx.rglob("*"))
    assert "secret1" not in names and "sub/deep/x.log" not in names
    assert {"secret-ok", "keep", "sub/deep/y.txt", "Dockerfile"} <= set(names)


def test_a_context_symlink_to_a_host_file_is_copied_as_a_symlink(engine_root: Path, tmp_path: Path) -> None:
    from engine.errors import DockerfileError
    from engine.services import builds

    ctx = make_context(tmp_path, "FROM busybox\nCOPY . /ctx/\n")
    (ctx / "link").symlink_to("/etc/passwd")
    image = builds.build(ctx)
    copied = top_layer(image) / "ctx" / "link"
    assert copied.is_symlink() and os.readlink(copied) == "/etc/passwd"
    # Naming the symlink resolves it inside the context, where /etc/passwd does not exist.
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY link /x\n")
    with pytest.raises(DockerfileError) as info:
        builds.build(ctx)
    assert info.value.line == 2


def test_add_of_a_url_is_refused(engine_root: Path, tmp_path: Path) -> None:
    from engine.errors import DockerfileError
    from engine.services import builds

    ctx = make_context(tmp_path, "FROM busybox\nADD http://127.0.0.1:1/payload /p\n")
    with pytest.raises(DockerfileError) as info:
        builds.build(ctx)
    assert info.value.line == 2 and "URL" in str(info.value)


def test_add_of_a_local_tar_extracts_it(engine_root: Path, tmp_path: Path) -> None:
    from engine.services import builds

    ctx = make_context(tmp_path, "FROM busybox\nADD files.tar.gz /opt/\nADD plain.txt /opt/plain.txt\n")
    (ctx / "plain.txt").write_text("not an archive\n")
    with tarfile.open(ctx / "files.tar.gz", "w:gz") as tar:
        data = b"inside the tar\n"
        info = tarfile.TarInfo("a/b.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    builds.build(ctx, tags=["added:1"])
    assert run_output("added:1", "cat", "/opt/a/b.txt", "/opt/plain.txt")[1] == [
        "inside the tar",
        "not an archive",
    ]


def test_a_tar_context_with_unclean_names_builds(engine_root: Path) -> None:
    from engine.services import builds

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text in (
            ("Dockerfile", "FROM scratch\nCOPY foo /\nFROM scratch\nCOPY bar /\n"),
            ("../foo", "foo0"),
            ("/bar", "bar0"),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text.encode()))
    buf.seek(0)
    image = builds.build(buf)
    assert (top_layer(image) / "bar").read_text() == "bar0"


def test_cancelling_a_build_kills_the_running_step(engine_root: Path, tmp_path: Path) -> None:
    from engine.progress import OutputLine
    from engine.services import builds

    ctx = make_context(tmp_path, "FROM busybox\nRUN echo started; sleep 300\n")

    def progress(event: object) -> None:
        if isinstance(event, OutputLine) and event.text == "started":
            raise KeyboardInterrupt  # what a Ctrl-C or a cancelled job delivers

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        builds.build(ctx, progress=progress)
    assert time.monotonic() - started < 30
    wait_for_exit_commands(engine_root)
    assert_nothing_left(engine_root)


def test_commit_makes_an_image_with_the_new_file(engine_root: Path) -> None:
    from engine.models import ContainerState
    from engine.services import builds, containers, lifecycle
    from engine.services.options import ContainerOptions

    container = containers.create(
        ContainerOptions(image="busybox", command=("sh", "-c", "echo data > /new; sleep 300"))
    )
    lifecycle.start(container.id)
    bundle_upper = Path(engine_root) / "containers" / container.id / "upper" / "new"
    wait_until(bundle_upper.exists, what="the container's file in its upper layer")
    image = builds.commit(container.id, "committed:1", changes=["CMD cat /new"], message="snap", author="me")
    container.refresh_from_db()
    assert container.state == ContainerState.RUNNING  # paused for the copy, then resumed
    assert image.parent_id == container.image_id
    assert image.config["author"] == "me" and image.config["history"][-1]["comment"] == "snap"
    assert run_output("committed:1") == (0, ["data"])


def test_cli_build_and_commit(berth_cli: Any, tmp_path: Path) -> None:
    ctx = make_context(tmp_path, BASIC, {"f": "x\n"})
    out = berth_cli.ok("build", "-t", "clidemo", str(ctx))
    assert "Successfully tagged clidemo:latest" in out
    assert berth_cli.ok("run", "--rm", "clidemo").strip() == "hi"
    image_id = berth_cli.ok("build", "-q", str(ctx)).strip()
    assert image_id.startswith("sha256:")
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN exit 7\n")
    assert "line 2" in berth_cli.fail("build", str(ctx))
    berth_cli.ok("run", "--name", "src", "busybox", "sh", "-c", "echo v > /v")
    assert berth_cli.ok("commit", "-c", "CMD cat /v", "src", "snap:1").startswith("sha256:")
    assert berth_cli.ok("run", "--rm", "snap:1").strip() == "v"


def test_a_huge_context_file_is_streamed_into_the_layer(engine_root: Path, tmp_path: Path) -> None:
    from engine.services import builds

    ctx = make_context(tmp_path, "FROM busybox\nCOPY big /big\n")
    size = 256 << 20
    with open(ctx / "big", "wb") as f:
        f.truncate(size)  # sparse: cheap to make, but every byte is read, hashed and written
        f.seek(size - 4)
        f.write(b"tail")
    image = builds.build(ctx)
    copied = top_layer(image) / "big"
    assert copied.stat().st_size == size
    with open(copied, "rb") as f:
        f.seek(size - 4)
        assert f.read() == b"tail"


def test_build_history_does_not_block_image_removal(engine_root: Path, tmp_path: Path) -> None:
    from engine.models import Image
    from engine.services import builds, images

    ctx = make_context(tmp_path, "FROM busybox\nRUN echo a > /a\nENV X=1\n")
    first = builds.build(ctx, tags=["hist:1"])
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo a > /a\nENV X=2\n")
    second = builds.build(ctx, tags=["hist:2"])
    assert second.parent_id == first.parent_id  # the shared RUN step came from the cache
    images.remove("hist:1")
    assert not Image.objects.filter(id=first.id).exists()
    images.remove(first.parent_id, force=True)  # an intermediate image with a child still goes
    assert images.resolve("hist:2").id == second.id


def test_onbuild_triggers_run_in_the_child_stage(engine_root: Path, tmp_path: Path) -> None:
    from engine.services import builds

    dockerfile = (
        "FROM busybox AS stage1\n"
        "ONBUILD RUN echo foo > /somefile\n"
        "ONBUILD ENV bar=baz\n"
        "FROM stage1\n"
        "RUN cat /somefile\n"
        "FROM stage1\n"
        "RUN cat /somefile\n"
    )
    image = builds.build(make_context(tmp_path, dockerfile))
    assert "bar=baz" in image.config["config"]["Env"]
    assert not image.config["config"].get("OnBuild")  # triggers are not inherited by the child


def test_cancelling_from_another_thread_kills_a_silent_run(engine_root: Path, tmp_path: Path) -> None:
    import threading

    from django.db import connection

    from engine.models import Container
    from engine.services import builds

    ctx = make_context(tmp_path, "FROM busybox\nRUN sleep 300\n")
    cancel = threading.Event()
    outcome: list[BaseException] = []

    def work() -> None:
        try:
            builds.build(ctx, cancel=cancel)
        except BaseException as exc:  # noqa: BLE001 — inspected by the test
            outcome.append(exc)
        finally:
            connection.close()

    worker = threading.Thread(target=work)
    worker.start()
    wait_until(
        Container.objects.filter(state="running").exists, timeout=60, what="the step's container to run"
    )
    cancel.set()  # what the dashboard's cancel button does
    worker.join(30)
    assert not worker.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], builds.BuildCancelled)
    wait_for_exit_commands(engine_root)
    assert_nothing_left(engine_root)


def test_removing_a_built_image_removes_its_unused_intermediate_images(
    engine_root: Path, tmp_path: Path
) -> None:
    from engine.models import Image
    from engine.services import builds, images

    ctx = make_context(tmp_path, "FROM busybox\nRUN echo a > /a\nENV X=1\nRUN echo b > /b\n")
    built = builds.build(ctx, tags=["chain:1"])
    base = images.resolve("busybox")
    intermediates = set(Image.objects.exclude(id__in=[built.id, base.id]).values_list("id", flat=True))
    assert intermediates  # the build left untagged step images behind it
    images.remove("chain:1")
    # Docker deletes the untagged parents with the last image built on them; the base stays.
    assert not Image.objects.filter(id__in=intermediates).exists()
    assert images.resolve("busybox").id == base.id
