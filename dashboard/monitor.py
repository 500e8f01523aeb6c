"""The server's background monitor: follows the events table and keeps containers reconciled.

Other processes (the CLI, conmon's exit commands) write events too; following the table is how
their changes reach open pages. One thread per server process; a step function for tests.
"""

from __future__ import annotations

import logging
import threading
import time

from django.db import close_old_connections

from engine.events import EVENTS_GROUP
from engine.models import Event

logger = logging.getLogger(__name__)

POLL = 0.25
MAINTAIN_EVERY = 5.0


class Monitor:
    def __init__(self) -> None:
        self.last_event_id = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
        self._last_maintain = 0.0

    def step(self) -> list[int]:
        """Publish events written since the last step, close the sockets of users a user event revoked,
        and now and then reconcile containers. Returns the ids sent."""
        rows = list(
            Event.objects.filter(id__gt=self.last_event_id)
            .order_by("id")
            .values_list("id", "object_type", "action", "object_id")[:500]
        )
        ids = [row[0] for row in rows]
        if ids:
            self.last_event_id = ids[-1]
            _publish(ids)
            _revoke(rows)
        now = time.monotonic()
        if now - self._last_maintain >= MAINTAIN_EVERY:
            self._last_maintain = now
            _maintain()
        return ids


def _publish(ids: list[int]) -> None:
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return
    for event_id in ids:
        async_to_sync(layer.group_send)(EVENTS_GROUP, {"type": "engine.event", "event_id": event_id})


def _revoke(rows: list[tuple[int, str, str, str]]) -> None:
    """Close the open sockets of each user whose deactivation, role or password change is in `rows`.

    The process that made the change (often the CLI) reaches only its own channel layer; following the
    table is how the change reaches this server's sockets without Redis. A second close (the web
    process's own, or Redis carrying the CLI's) finds the group empty or the socket closing: harmless.
    """
    from engine.services import users

    for user_id in {
        int(oid)
        for _, kind, action, oid in rows
        if kind == "user" and action in users.REVOKING_ACTIONS and oid.isdigit()
    }:
        users.close_sockets(user_id)


def _maintain() -> None:
    from engine.services import audit, metrics, monitor, supervision

    supervision.maintain()
    monitor.ensure_running_quietly()  # a monitor that crashed comes back
    metrics.ensure_sampler()  # likewise the metrics sampler (host history is kept while a server is up)
    audit.prune_expired()  # the audit log's retention, applied at most hourly (an event when it deletes)


def startup() -> None:
    """Once per server start: fail interrupted jobs, reconcile containers (restart policies apply)."""
    from engine.services import jobs, metrics, monitor, supervision, system

    monitor.announce_server()  # health checks and alerts keep running while this server is up
    metrics.ensure_sampler()
    warning = (system.info().get("runtime") or {}).get("warning")
    if warning:
        logger.warning("%s", warning)
    jobs.fail_interrupted()
    supervision.reconcile_all()


_started = threading.Lock()
_thread: threading.Thread | None = None


def start_in_background() -> None:
    global _thread
    with _started:
        if _thread is not None:
            return
        _thread = threading.Thread(target=_loop, name="berth-monitor", daemon=True)
        _thread.start()


def _loop() -> None:
    try:
        startup()
    except Exception:  # noqa: BLE001 — the server must come up even if one container is broken
        logger.exception("start-up reconciliation failed")
    monitor = Monitor()
    while True:
        try:
            monitor.step()
        except Exception:  # noqa: BLE001 — keep following; a transient DB lock must not stop updates
            logger.warning("monitor step failed", exc_info=True)
        finally:
            close_old_connections()
        time.sleep(POLL)
