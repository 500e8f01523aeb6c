"""Live resource use of one container: one sample a second.

Route: ws/containers/<id>/stats/. The server sends {"type": "stats", "time": epoch seconds,
"cpu_percent": % of one CPU (200 = two cores busy, as docker stats), "memory": bytes, "memory_limit":
bytes, "pids", "net_rx"/"net_tx"/"block_read"/"block_write": byte totals, and the matching
"*_rate" values in bytes per second}, or {"type": "stopped"} while the container is not running.
Each sample is read in a worker thread (cgroup files and /proc); the first one has no rates yet.
"""

from __future__ import annotations

import asyncio
from typing import Any

from channels.db import database_sync_to_async

from dashboard.consumers.base import GatedConsumer
from engine.errors import EngineError
from engine.services import containerinfo, containers

INTERVAL = 1.0


def describe(sample: Any, previous: Any | None) -> dict[str, Any]:
    """Turn a StatsSample (and the one before it) into the frame sent to the browser."""
    frame: dict[str, Any] = {
        "type": "stats",
        "time": sample.time,
        "cpu_percent": None,
        "memory": sample.memory_usage,
        "memory_limit": sample.memory_limit,
        "memory_limited": sample.memory_limited,
        "pids": sample.pids,
        "net_rx": sample.net_rx,
        "net_tx": sample.net_tx,
        "block_read": sample.block_read,
        "block_write": sample.block_write,
    }
    elapsed = sample.time - previous.time if previous is not None else 0
    for key in ("net_rx", "net_tx", "block_read", "block_write"):
        frame[key + "_rate"] = (
            max(0.0, (getattr(sample, key) - getattr(previous, key)) / elapsed) if elapsed > 0 else None
        )
    if elapsed > 0 and previous is not None:
        frame["cpu_percent"] = round(max(0.0, (sample.cpu_ns - previous.cpu_ns) / (elapsed * 1e9) * 100), 2)
    return frame


class StatsConsumer(GatedConsumer):
    action = "view"

    def resolve(self) -> Any:
        return containers.resolve(self.scope["url_route"]["kwargs"]["container_id"])

    async def start(self) -> None:
        self.sampler = asyncio.create_task(self._sample())

    async def _sample(self) -> None:
        previous = None
        read = database_sync_to_async(containerinfo.stats)
        while True:
            try:
                sample = await read(self.target.id)
            except EngineError as exc:
                await self.fail(exc)
                return
            if sample.memory_limit == 0 and sample.cpu_ns == 0 and sample.pids == 0:
                previous = None
                await self.send_json({"type": "stopped", "time": sample.time})
            else:
                await self.send_json(describe(sample, previous))
                previous = sample
            await asyncio.sleep(INTERVAL)

    async def disconnect(self, code: int) -> None:
        sampler = getattr(self, "sampler", None)
        if sampler is not None and not sampler.done():
            sampler.cancel()
