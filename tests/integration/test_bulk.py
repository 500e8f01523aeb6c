"""services.bulk against real runc and conmon: concurrent stops, per-row progress, the caller as actor."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import events
from engine.models import Event
from engine.progress import RowProgress
from tests.conftest import _conmons, require_root
from tests.integration.test_build import _remove_everything, assert_nothing_left

GRACE = 2


@pytest.fixture
def engine_root(engine_tx: Path) -> Iterator[Path]:
    require_root()
    from engine.services import system

    before = _conmons()
    system.seed()
    yield engine_tx
    _remove_everything(engine_tx, before)
    assert_nothing_left(engine_tx)


def _deaf(name: str) -> Any:
    """A running container that ignores SIGTERM (sleep as PID 1), so a stop waits its whole grace."""
    from engine.services import containers, lifecycle
    from engine.services.options import ContainerOptions

    made = containers.create(
        ContainerOptions(image="busybox", name=name, command=("sleep", "600"), stop_timeout=GRACE)
    )
    return lifecycle.start(made.id)


def test_a_bulk_stop_takes_one_grace_period_not_one_per_container(engine_root: Path) -> None:
    from engine.services import bulk

    targets = bulk.resolve_targets("stop", [_deaf(f"bk{n}").name for n in range(3)])
    rows: list[RowProgress] = []
    with events.acting_as("bulk-tester"):
        result = bulk.run("stop", targets, progress=rows.append)
    assert sorted(result.done) == ["bk0", "bk1", "bk2"] and not result.failed
    # One after another would take 3 × GRACE; together it is one grace period and some overhead.
    assert GRACE - 0.2 <= result.seconds < 2 * GRACE, result.seconds
    working = [r for r in rows if r.status == "working"]
    assert len(working) == 3 and all(r.grace == GRACE and r.deadline for r in working)
    assert result.summary().startswith("Stopped 3 containers in ")
    # The lifecycle calls ran in worker threads, still as the caller.
    stops = Event.objects.filter(object_type="container", action="stop")
    assert sorted(stops.values_list("actor", flat=True)) == ["bulk-tester"] * 3


def test_one_failure_is_a_failed_row_and_the_others_complete(engine_root: Path) -> None:
    from engine.services import bulk, containers
    from engine.services.options import ContainerOptions

    good = containers.create(ContainerOptions(image="busybox", name="bkgood", command=("sleep", "600")))
    bad = containers.create(ContainerOptions(image="busybox", name="bkbad", command=("/no/such/binary",)))
    rows: list[RowProgress] = []
    result = bulk.run("start", bulk.resolve_targets("start", [good.id, bad.id]), progress=rows.append)
    assert result.done == ["bkgood"] and [n for n, _ in result.failed] == ["bkbad"]
    assert "1 failed: bkbad: " in result.summary()
    final = {r.name: r.status for r in rows}
    assert final == {"bkgood": "done", "bkbad": "failed"}


def test_bad_requests_are_refused_before_any_work(engine_root: Path) -> None:
    from engine.errors import ContainerNotFound, InvalidArgument
    from engine.services import bulk

    with pytest.raises(InvalidArgument, match="unknown bulk action"):
        bulk.resolve_targets("pause-all", ["x"])
    with pytest.raises(InvalidArgument, match="select at least one"):
        bulk.resolve_targets("stop", [])
    with pytest.raises(ContainerNotFound):
        bulk.resolve_targets("stop", ["no-such-container"])
    started = time.monotonic()
    assert bulk.run("stop", []).done == [] and time.monotonic() - started < 1
