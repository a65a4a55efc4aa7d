"""Alert stream clients (SSE and WebSocket) reading the alert log.

One ``AlertTail`` per process follows the log and keeps the newest entries in memory; clients
wait on it and read from that cache, or from the log when they are further behind (a resuming
client). Each client reads at its own pace and holds at most one batch: a slow client does not
grow memory, it only falls behind (and, past the retention window, is told it missed alerts with
a ``gap`` event). ``client_events`` is the one loop both transports share.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from api.alert_log import AlertLog, LogEntry
from api.filters import AlertFilter
from api.sse import later

ZERO = "0-0"


@dataclass(frozen=True, slots=True)
class StreamEvent:
    kind: str  # alert | gap | heartbeat
    id: str | None
    data: dict[str, Any] = field(default_factory=dict)


class AlertTail:
    def __init__(self, log: AlertLog, cache: int = 2000, block_seconds: float = 2.0) -> None:
        self._log = log
        self._recent: deque[LogEntry] = deque(maxlen=cache)
        self._block = block_seconds
        self._changed = asyncio.Condition()
        self.latest = ZERO
        self.running = False

    async def run(self) -> None:
        _, last = await self._log.bounds()
        self.latest = last or ZERO
        self.running = True
        try:
            while True:
                entries = await self._log.wait_after(self.latest, 500, self._block)
                if entries:
                    self._recent.extend(entries)
                    self.latest = entries[-1].id
                    async with self._changed:
                        self._changed.notify_all()
        finally:
            self.running = False

    async def read_after(self, after: str, count: int) -> list[LogEntry]:
        recent = self._recent
        if self.running and recent and not later(recent[0].id, after):
            return [e for e in recent if later(e.id, after)][:count]
        return await self._log.read_after(after, count)

    async def wait_past(self, after: str, timeout: float) -> None:
        """Return when an entry after ``after`` exists, or after ``timeout`` seconds."""
        if not self.running:
            await self._log.wait_after(after, 1, timeout)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: later(self.latest, after))


async def start_position(
    log: AlertLog, resume_from: str | None, backlog: int
) -> tuple[str, list[LogEntry], StreamEvent | None]:
    """Where a client starts: (position, backlog entries to send first, a gap event or None).

    ``resume_from`` is the last id the client saw ("0" for the oldest retained); without it the
    client gets the newest ``backlog`` entries, then what comes next.
    """
    first, last = await log.bounds()
    if resume_from is None:
        entries = await log.latest(backlog) if backlog > 0 else []
        return (entries[-1].id if entries else (last or ZERO)), entries, None
    if resume_from in ("0", ZERO):
        return ZERO, [], None
    if first is not None and later(first, resume_from):
        gap = StreamEvent(
            "gap",
            None,
            {
                "reason": "alerts after this id left the retention window; some may be missed",
                "requested": resume_from,
                "oldest_retained": first,
            },
        )
        return resume_from, [], gap
    return resume_from, [], None


async def client_events(
    tail: AlertTail,
    log: AlertLog,
    flt: AlertFilter,
    resume_from: str | None,
    backlog: int,
    batch: int,
    heartbeat_seconds: float,
) -> AsyncIterator[StreamEvent]:
    """The events one client receives, forever: matching alerts, in log order, with heartbeats
    (carrying the position reached, so a reconnect skips what was filtered out)."""
    position, first_entries, gap = await start_position(log, resume_from, backlog)
    if gap is not None:
        yield gap
    for e in first_entries:
        if flt.matches(e.alert):
            yield StreamEvent("alert", e.id, dict(e.alert))
    last_sent = time.monotonic()
    while True:
        entries = await tail.read_after(position, batch)
        for e in entries:
            if flt.matches(e.alert):
                yield StreamEvent("alert", e.id, dict(e.alert))
                last_sent = time.monotonic()
        if entries:
            position = entries[-1].id
        else:
            await tail.wait_past(
                position, max(heartbeat_seconds - (time.monotonic() - last_sent), 0.05)
            )
        if time.monotonic() - last_sent >= heartbeat_seconds:
            yield StreamEvent("heartbeat", position, {"position": position})
            last_sent = time.monotonic()
