"""The alert log: a bounded, ordered, shared record of recent alerts that stream clients resume
from and webhooks deliver from.

``RedisAlertLog`` keeps it in one Redis Stream, so every API replica reads the same ids and a
client resumes on any replica, across restarts. Each alert is appended once, whatever the number
of replicas or redeliveries: the append script claims the alert id (``SET NX`` with the retention
as TTL) before ``XADD``. Old entries are trimmed by time (exact ``MINID``: the retention
window) and by count (approximate ``MAXLEN``). ``MemoryAlertLog`` is its in-memory twin (one
process), held to the same contract by tests/integration/test_api_stores.py.

Keys (all hash-tagged ``{alerts}``, so a Redis Cluster keeps them on one slot):
``<prefix>:{alerts}:log`` the stream, ``<prefix>:{alerts}:seen:<alert_id>`` the once-only claims.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from api.sse import format_id, parse_id
from engine.clock import Clock


@dataclass(frozen=True, slots=True)
class LogEntry:
    id: str
    alert: Mapping[str, Any]


class AlertLog(Protocol):
    async def append(self, alerts: Sequence[Mapping[str, Any]]) -> list[str]:
        """Append the alerts not seen before (by ``alert_id``); returns the new entries' ids."""
        ...

    async def read_after(self, after: str, count: int) -> list[LogEntry]:
        """Up to ``count`` entries with ids after ``after`` ("0-0": from the oldest), in order."""
        ...

    async def latest(self, count: int) -> list[LogEntry]:
        """The newest ``count`` entries, oldest first."""
        ...

    async def wait_after(self, after: str, count: int, block_seconds: float) -> list[LogEntry]:
        """Like ``read_after``, but waits up to ``block_seconds`` for a first entry."""
        ...

    async def bounds(self) -> tuple[str | None, str | None]:
        """The ids of the oldest and newest retained entries (None, None when empty)."""
        ...

    async def entry(self, entry_id: str) -> LogEntry | None: ...

    async def read_group(
        self, group: str, consumer: str, count: int, block_seconds: float, reclaim_after: float
    ) -> list[LogEntry]:
        """Entries for one consumer of a group: ones never handed out, and ones handed out to a
        consumer that did not acknowledge them within ``reclaim_after`` seconds."""
        ...

    async def ack(self, group: str, ids: Sequence[str]) -> None: ...


def _decode_entries(raw: Any) -> list[LogEntry]:
    out = []
    for entry_id, fields in raw or ():
        payload = fields.get(b"a") if fields else None
        if payload is None:  # deleted or foreign entry
            continue
        out.append(LogEntry(entry_id.decode(), orjson.loads(payload)))
    return out


_APPEND = """
local added = {}
for i = 2, #KEYS do
  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[3]) then
    added[#added + 1] = redis.call('XADD', KEYS[1], 'MINID', ARGV[1], '*', 'a', ARGV[i + 2])
  end
end
if #added > 0 then
  redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', ARGV[2])
end
return added
"""


# Blocking reads stay well under redis-py's socket timeout (5 s by default); callers loop.
MAX_BLOCK_SECONDS = 2.0


def _block_ms(seconds: float) -> int:
    return max(int(min(seconds, MAX_BLOCK_SECONDS) * 1000), 1)


class RedisAlertLog:
    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        clock: Clock,
        retention_seconds: int,
        max_entries: int,
    ) -> None:
        self._redis: Any = client  # redis-py's reply types vary with the protocol: read as Any
        self._base = f"{prefix}:{{alerts}}"
        self.key = f"{self._base}:log"
        self._clock = clock
        self._retention = retention_seconds
        self._max = max_entries
        self._script = client.register_script(_APPEND)
        self._groups: set[str] = set()

    async def append(self, alerts: Sequence[Mapping[str, Any]]) -> list[str]:
        if not alerts:
            return []
        keys = [self.key, *(f"{self._base}:seen:{a['alert_id']}" for a in alerts)]
        min_id = int((self._clock.now() - self._retention) * 1000)
        args: list[Any] = [max(min_id, 0), self._max, self._retention]
        args.extend(orjson.dumps(a) for a in alerts)
        added = await self._script(keys=keys, args=args)
        return [x.decode() for x in added]

    async def read_after(self, after: str, count: int) -> list[LogEntry]:
        raw = await self._redis.xrange(self.key, min=f"({after}", max="+", count=count)
        return _decode_entries(raw)

    async def latest(self, count: int) -> list[LogEntry]:
        raw = await self._redis.xrevrange(self.key, max="+", min="-", count=count)
        return _decode_entries(list(reversed(raw)))

    async def wait_after(self, after: str, count: int, block_seconds: float) -> list[LogEntry]:
        if block_seconds <= 0:
            return await self.read_after(after, count)
        reply = await self._redis.xread(
            {self.key: after}, count=count, block=_block_ms(block_seconds)
        )
        return _decode_entries(reply[0][1]) if reply else []

    async def bounds(self) -> tuple[str | None, str | None]:
        first = await self._redis.xrange(self.key, count=1)
        last = await self._redis.xrevrange(self.key, count=1)
        if not first or not last:
            return None, None
        return first[0][0].decode(), last[0][0].decode()

    async def entry(self, entry_id: str) -> LogEntry | None:
        found = _decode_entries(await self._redis.xrange(self.key, entry_id, entry_id, count=1))
        return found[0] if found else None

    async def _ensure_group(self, group: str) -> None:
        if group in self._groups:
            return
        try:
            await self._redis.xgroup_create(self.key, group, id="$", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups.add(group)

    async def read_group(
        self, group: str, consumer: str, count: int, block_seconds: float, reclaim_after: float
    ) -> list[LogEntry]:
        await self._ensure_group(group)
        _, claimed, deleted = await self._redis.xautoclaim(
            self.key, group, consumer, int(reclaim_after * 1000), "0-0", count=count
        )
        if deleted:  # trimmed before anyone acknowledged them: nothing left to hand out
            await self._redis.xack(self.key, group, *deleted)
        if claimed:
            return _decode_entries(claimed)
        reply = await self._redis.xreadgroup(
            group, consumer, {self.key: ">"}, count=count, block=_block_ms(block_seconds)
        )
        return _decode_entries(reply[0][1]) if reply else []

    async def ack(self, group: str, ids: Sequence[str]) -> None:
        if ids:
            await self._redis.xack(self.key, group, *ids)


class MemoryAlertLog:
    """The alert log in one process's memory (tests, `vigil` tools without Redis)."""

    def __init__(self, clock: Clock, retention_seconds: int, max_entries: int) -> None:
        self._clock = clock
        self._retention = retention_seconds
        self._entries: deque[tuple[tuple[int, int], LogEntry]] = deque()
        self._max = max_entries
        self._seen: dict[str, float] = {}
        self._last = (0, 0)
        self._changed = asyncio.Condition()
        self._cursors: dict[str, tuple[int, int]] = {}
        # group -> entry id -> (consumer, when handed out): entries not yet acknowledged
        self._pending: dict[str, dict[str, tuple[str, float]]] = {}

    async def append(self, alerts: Sequence[Mapping[str, Any]]) -> list[str]:
        now = self._clock.now()
        self._seen = {k: v for k, v in self._seen.items() if v > now}
        added = []
        for alert in alerts:
            alert_id = str(alert["alert_id"])
            if alert_id in self._seen:
                continue
            self._seen[alert_id] = now + self._retention
            ms = int(now * 1000)
            key = (ms, self._last[1] + 1) if ms <= self._last[0] else (ms, 0)
            if key <= self._last:
                key = (self._last[0], self._last[1] + 1)
            self._last = key
            entry = LogEntry(format_id(key), orjson.loads(orjson.dumps(alert)))
            self._entries.append((key, entry))
            added.append(entry.id)
        min_key = (int((now - self._retention) * 1000), 0)
        while self._entries and (self._entries[0][0] < min_key or len(self._entries) > self._max):
            self._entries.popleft()
        if added:
            async with self._changed:
                self._changed.notify_all()
        return added

    def _after(self, after: str, count: int) -> list[LogEntry]:
        key = parse_id(after) or (0, 0)
        return [e for k, e in self._entries if k > key][:count]

    async def read_after(self, after: str, count: int) -> list[LogEntry]:
        return self._after(after, count)

    async def latest(self, count: int) -> list[LogEntry]:
        return [e for _, e in itertools.islice(reversed(self._entries), count)][::-1]

    async def wait_after(self, after: str, count: int, block_seconds: float) -> list[LogEntry]:
        found = self._after(after, count)
        if found or block_seconds <= 0:
            return found
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(block_seconds), self._changed:
                await self._changed.wait_for(lambda: bool(self._after(after, 1)))
        return self._after(after, count)

    async def bounds(self) -> tuple[str | None, str | None]:
        if not self._entries:
            return None, None
        return self._entries[0][1].id, self._entries[-1][1].id

    async def entry(self, entry_id: str) -> LogEntry | None:
        return next((e for _, e in self._entries if e.id == entry_id), None)

    async def read_group(
        self, group: str, consumer: str, count: int, block_seconds: float, reclaim_after: float
    ) -> list[LogEntry]:
        pending = self._pending.setdefault(group, {})
        now = time.monotonic()
        retained = {e.id: e for _, e in self._entries}
        for entry_id in [i for i in pending if i not in retained]:
            del pending[entry_id]  # trimmed before anyone acknowledged it
        stale = [i for i, (_, at) in pending.items() if now - at >= reclaim_after][:count]
        if stale:
            for entry_id in stale:
                pending[entry_id] = (consumer, now)
            return [retained[i] for i in stale]
        cursor = self._cursors.setdefault(group, self._last)
        found = await self.wait_after(format_id(cursor), count, block_seconds)
        if found:
            self._cursors[group] = parse_id(found[-1].id) or cursor
            for e in found:
                pending[e.id] = (consumer, time.monotonic())
        return found

    async def ack(self, group: str, ids: Sequence[str]) -> None:
        pending = self._pending.get(group, {})
        for entry_id in ids:
            pending.pop(entry_id, None)
