"""Docker's wire shapes for containers: status text, log frames, timestamps, stats objects.

Pure: plain values in, JSON-ready values or bytes out (the handlers in containers.py and
containerstreams.py read the engine and call these).
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta
from typing import Any

from engine import goduration
from engine.errors import InvalidArgument
from engine.humanize import human_duration

ZERO_TIME = "0001-01-01T00:00:00Z"
STDOUT = 1
STDERR = 2
CHANGE_KINDS = {"C": 0, "A": 1, "D": 2}  # Docker's ChangeType: modified, added, deleted


def status_text(
    state: str,
    *,
    started_at: datetime | None,
    finished_at: datetime | None,
    exit_code: int,
    now: datetime,
) -> str:
    """The list's Status column as Docker words it (moby's State.String)."""
    if state in ("running", "paused"):
        up = "Up " + human_duration((now - started_at).total_seconds() if started_at else 0)
        return up + " (Paused)" if state == "paused" else up
    if state == "restarting":
        ago = human_duration((now - finished_at).total_seconds() if finished_at else 0)
        return f"Restarting ({exit_code}) {ago} ago"
    if state == "removing":
        return "Removal In Progress"
    if state == "dead":
        return "Dead"
    if started_at is None:
        return "Created"
    if finished_at is None:
        return ""
    return f"Exited ({exit_code}) {human_duration((now - finished_at).total_seconds())} ago"


def frame(stream: int, data: bytes) -> bytes:
    """One frame of Docker's multiplexed stream: stream byte, three zero bytes, big-endian length."""
    return struct.pack(">BxxxI", stream, len(data)) + data


def rfc3339_nano(when: datetime) -> str:
    """Docker's fixed-width RFC 3339 time with nine fractional digits, in UTC."""
    when = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond:06d}000Z"


def iso_or_zero(when: datetime | None) -> str:
    return rfc3339_nano(when) if when else ZERO_TIME


def parse_unix_timestamp(text: str, what: str) -> datetime | None:
    """`since`/`until` as the CLI sends them: "1700000000.123456789" (seconds[.nanoseconds]); 0 is none."""
    value = text.strip()
    seconds, _, fraction = value.partition(".")
    if not seconds.lstrip("-").isdigit() or (fraction and not fraction.isdigit()):
        raise InvalidArgument(f'invalid value for "{what}": {text!r} is not a unix timestamp')
    total = int(seconds)
    micro = int((fraction + "000000")[:6]) if fraction else 0
    if total == 0 and micro == 0:
        return None
    return datetime.fromtimestamp(total, UTC) + timedelta(microseconds=micro)


def parse_go_duration(text: str) -> float | None:
    """Seconds of a Go duration ("24h", "1h30m", "10s"); None if it is not one (engine/goduration.py).
    A bare "0" is not one here: Docker's time filters read it as the Unix time 0."""
    nanoseconds = None if text == "0" else goduration.nanoseconds(text)
    return None if nanoseconds is None else nanoseconds / 1e9


def parse_until(text: str, *, now: datetime) -> datetime:
    """The prune `until` filter: a Go duration before now, a unix timestamp, or an RFC 3339 time."""
    duration = parse_go_duration(text)
    if duration is not None:
        return now - timedelta(seconds=duration)
    try:
        stamp = parse_unix_timestamp(text, "until")
    except InvalidArgument:
        stamp = None
    if stamp is not None:
        return stamp
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(
            f"invalid filter until={text!r}: use a duration such as 24h, a unix timestamp or an RFC 3339 time"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def label_matches(labels: dict[str, str], wanted: str) -> bool:
    """Docker's label filter value: `key` (present) or `key=value`."""
    key, sep, value = wanted.partition("=")
    return key in labels and (not sep or labels[key] == value)


def stats_object(
    *,
    container_id: str,
    name: str,
    read: datetime | None,
    cpu_ns: int,
    system_ns: int,
    online_cpus: int,
    memory_usage: int,
    memory_limit: int,
    pids: int,
    block_read: int,
    block_write: int,
    networks: dict[str, tuple[int, int]] | None,
    previous: dict[str, Any] | None,
) -> dict[str, Any]:
    """One object of `GET /containers/{id}/stats` in Docker's shape (cgroup v2 flavour).

    `previous` is the object sent before (its cpu_stats become this one's precpu_stats, which is
    what the CLI's CPU % is computed from).
    """
    cpu_stats = {
        "cpu_usage": {"total_usage": cpu_ns, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "system_cpu_usage": system_ns,
        "online_cpus": online_cpus,
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    }
    empty_cpu = {
        "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    }
    result: dict[str, Any] = {
        "name": name if name.startswith("/") else f"/{name}",
        "id": container_id,
        "read": iso_or_zero(read),
        "preread": previous["read"] if previous else ZERO_TIME,
        "pids_stats": {"current": pids} if read else {},
        "blkio_stats": {
            "io_service_bytes_recursive": [
                {"major": 0, "minor": 0, "op": "read", "value": block_read},
                {"major": 0, "minor": 0, "op": "write", "value": block_write},
            ]
            if read
            else None,
            "io_serviced_recursive": None,
            "io_queue_recursive": None,
            "io_service_time_recursive": None,
            "io_wait_time_recursive": None,
            "io_merged_recursive": None,
            "io_time_recursive": None,
            "sectors_recursive": None,
        },
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu_stats if read else empty_cpu,
        "precpu_stats": previous["cpu_stats"] if previous else empty_cpu,
        "memory_stats": {"usage": memory_usage, "stats": {}, "limit": memory_limit} if read else {},
    }
    if networks:
        result["networks"] = {
            ifname: {
                "rx_bytes": rx,
                "rx_packets": 0,
                "rx_errors": 0,
                "rx_dropped": 0,
                "tx_bytes": tx,
                "tx_packets": 0,
                "tx_errors": 0,
                "tx_dropped": 0,
            }
            for ifname, (rx, tx) in networks.items()
        }
    return result
