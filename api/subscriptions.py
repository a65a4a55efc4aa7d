"""Webhook subscriptions, their delivery queue and their delivery history.

A subscription is a URL, an alert filter and a secret, owned by the API key that created it.
Every alert that matches becomes a delivery job ``<subscription id>|<alert log entry id>`` in a
queue ordered by due time. A dispatcher claims due jobs for a lease (a replica that dies leaves
them to be claimed again when the lease runs out), then marks each delivered, to retry at a later
time, or dead-lettered. Counters, the recent deliveries and the dead letters are kept per
subscription for ``GET /subscriptions/{id}``.

``RedisSubscriptionStore`` is the real adapter (shared by every replica; keys below), and
``MemorySubscriptionStore`` its twin:

- ``<prefix>:api:subs``: set of ids; ``<prefix>:api:sub:<id>``: hash of the subscription (with its
  secret: Redis is trusted like the settings) and its counters; ``...:<id>:log`` recent
  deliveries and ``...:<id>:dead`` dead letters (capped lists, newest first);
- ``<prefix>:{alerts}:wh:due``: sorted set of jobs by due time, ``<prefix>:{alerts}:wh:attempts``
  attempts made per job (hash-tagged with the alert log).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis

from api.filters import AlertFilter

COUNTERS = ("delivered", "failed_attempts", "dead_lettered")


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    owner: str
    url: str
    filter: AlertFilter
    secret: str
    description: str | None
    created_at: float

    def to_json(self) -> bytes:
        doc = asdict(self)
        doc["filter"] = self.filter.as_dict()
        return orjson.dumps(doc)

    @classmethod
    def from_json(cls, raw: bytes | str) -> Subscription:
        doc = orjson.loads(raw)
        doc["filter"] = AlertFilter.from_dict(doc["filter"])
        return cls(**doc)


@dataclass(frozen=True, slots=True)
class Job:
    sub_id: str
    entry_id: str
    attempts: int  # attempts already made

    @property
    def member(self) -> str:
        return f"{self.sub_id}|{self.entry_id}"

    @classmethod
    def from_member(cls, member: str, attempts: int) -> Job:
        sub_id, _, entry_id = member.partition("|")
        return cls(sub_id, entry_id, attempts)


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    delivery_id: str
    alert_id: str | None
    entry_id: str
    attempt: int
    result: str  # delivered | failed | dead_lettered
    status_code: int | None
    error: str | None
    at: float
    duration_seconds: float


@dataclass
class SubscriptionStats:
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    last_success_at: float | None = None
    last_failure_at: float | None = None
    last_error: str | None = None
    recent: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)


class SubscriptionStore(Protocol):
    async def add(self, sub: Subscription) -> None: ...

    async def get(self, sub_id: str) -> Subscription | None: ...

    async def all(self) -> list[Subscription]: ...

    async def remove(self, sub_id: str) -> bool: ...

    async def stats(self, sub_id: str, recent: int, dead: int) -> SubscriptionStats: ...

    async def enqueue(self, jobs: Sequence[tuple[str, str]], due: float) -> None:
        """Queue (subscription id, entry id) jobs; a job already queued keeps its place."""
        ...

    async def claim(self, now: float, limit: int, lease_until: float) -> list[Job]:
        """Up to ``limit`` jobs due by ``now``, hidden from other claims until ``lease_until``."""
        ...

    async def succeeded(self, job: Job, record: DeliveryRecord, history: int) -> None: ...

    async def failed(
        self,
        job: Job,
        record: DeliveryRecord,
        history: int,
        retry_at: float | None,
        dead_letter: Mapping[str, Any] | None,
        dead_kept: int,
    ) -> None:
        """Record a failed attempt: retry at ``retry_at``, or dead-letter (``retry_at`` None)."""
        ...

    async def drop(self, job: Job) -> None:
        """Forget a job (its subscription was deleted)."""
        ...


_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local out = {}
for _, m in ipairs(due) do
  redis.call('ZADD', KEYS[1], ARGV[3], m)
  out[#out + 1] = m
  out[#out + 1] = redis.call('HGET', KEYS[2], m) or '0'
end
return out
"""


class RedisSubscriptionStore:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._redis: Any = client
        self._prefix = prefix
        self._set = f"{prefix}:api:subs"
        self._due = f"{prefix}:{{alerts}}:wh:due"
        self._attempts = f"{prefix}:{{alerts}}:wh:attempts"
        self._claim = client.register_script(_CLAIM)

    def _key(self, sub_id: str, suffix: str = "") -> str:
        return f"{self._prefix}:api:sub:{sub_id}{suffix}"

    async def add(self, sub: Subscription) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(self._key(sub.id), mapping={"doc": sub.to_json(), **dict.fromkeys(COUNTERS, 0)})
        pipe.sadd(self._set, sub.id)
        await pipe.execute()

    async def get(self, sub_id: str) -> Subscription | None:
        raw = await self._redis.hget(self._key(sub_id), "doc")
        return Subscription.from_json(raw) if raw is not None else None

    async def all(self) -> list[Subscription]:
        ids = sorted(await self._redis.smembers(self._set))
        if not ids:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for sub_id in ids:
            pipe.hget(self._key(sub_id.decode()), "doc")
        return [Subscription.from_json(raw) for raw in await pipe.execute() if raw is not None]

    async def remove(self, sub_id: str) -> bool:
        pipe = self._redis.pipeline(transaction=True)
        pipe.srem(self._set, sub_id)
        pipe.delete(self._key(sub_id), self._key(sub_id, ":log"), self._key(sub_id, ":dead"))
        removed, _ = await pipe.execute()
        return bool(removed)

    async def stats(self, sub_id: str, recent: int, dead: int) -> SubscriptionStats:
        pipe = self._redis.pipeline(transaction=False)
        pipe.hgetall(self._key(sub_id))
        pipe.lrange(self._key(sub_id, ":log"), 0, recent - 1)
        pipe.lrange(self._key(sub_id, ":dead"), 0, dead - 1)
        doc, log, dead_letters = await pipe.execute()
        fields = {k.decode(): v.decode() for k, v in doc.items() if k != b"doc"}
        return SubscriptionStats(
            counters={name: int(fields.get(name, 0)) for name in COUNTERS},
            last_success_at=_float(fields.get("last_success_at")),
            last_failure_at=_float(fields.get("last_failure_at")),
            last_error=fields.get("last_error"),
            recent=[orjson.loads(x) for x in log],
            dead_letters=[orjson.loads(x) for x in dead_letters],
        )

    async def enqueue(self, jobs: Sequence[tuple[str, str]], due: float) -> None:
        if jobs:
            await self._redis.zadd(self._due, {f"{s}|{e}": due for s, e in jobs}, nx=True)

    async def claim(self, now: float, limit: int, lease_until: float) -> list[Job]:
        flat = await self._claim(
            keys=[self._due, self._attempts], args=[repr(now), limit, repr(lease_until)]
        )
        return [Job.from_member(flat[i].decode(), int(flat[i + 1])) for i in range(0, len(flat), 2)]

    async def succeeded(self, job: Job, record: DeliveryRecord, history: int) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.zrem(self._due, job.member)
        pipe.hdel(self._attempts, job.member)
        if await self._redis.exists(self._key(job.sub_id)):
            pipe.hincrby(self._key(job.sub_id), "delivered", 1)
            pipe.hset(self._key(job.sub_id), "last_success_at", repr(record.at))
            self._log(pipe, job.sub_id, record, history)
        await pipe.execute()

    def _log(self, pipe: Any, sub_id: str, record: DeliveryRecord, history: int) -> None:
        pipe.lpush(self._key(sub_id, ":log"), orjson.dumps(asdict(record)))
        pipe.ltrim(self._key(sub_id, ":log"), 0, history - 1)

    async def failed(
        self,
        job: Job,
        record: DeliveryRecord,
        history: int,
        retry_at: float | None,
        dead_letter: Mapping[str, Any] | None,
        dead_kept: int,
    ) -> None:
        pipe = self._redis.pipeline(transaction=False)
        if retry_at is not None:
            pipe.zadd(self._due, {job.member: retry_at}, xx=True)
            pipe.hset(self._attempts, job.member, record.attempt)
        else:
            pipe.zrem(self._due, job.member)
            pipe.hdel(self._attempts, job.member)
        key = self._key(job.sub_id)
        if await self._redis.exists(key):
            pipe.hincrby(key, "failed_attempts", 1)
            pipe.hset(
                key, mapping={"last_failure_at": repr(record.at), "last_error": record.error or ""}
            )
            self._log(pipe, job.sub_id, record, history)
            if dead_letter is not None:
                pipe.hincrby(key, "dead_lettered", 1)
                pipe.lpush(self._key(job.sub_id, ":dead"), orjson.dumps(dict(dead_letter)))
                pipe.ltrim(self._key(job.sub_id, ":dead"), 0, dead_kept - 1)
        await pipe.execute()

    async def drop(self, job: Job) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.zrem(self._due, job.member)
        pipe.hdel(self._attempts, job.member)
        await pipe.execute()


def _float(text: str | None) -> float | None:
    return float(text) if text else None


class MemorySubscriptionStore:
    """The subscription store in one process's memory."""

    def __init__(self) -> None:
        self._subs: dict[str, Subscription] = {}
        self._stats: dict[str, SubscriptionStats] = {}
        self._due: dict[str, float] = {}
        self._attempts: dict[str, int] = {}

    async def add(self, sub: Subscription) -> None:
        self._subs[sub.id] = sub
        self._stats[sub.id] = SubscriptionStats()

    async def get(self, sub_id: str) -> Subscription | None:
        return self._subs.get(sub_id)

    async def all(self) -> list[Subscription]:
        return [self._subs[k] for k in sorted(self._subs)]

    async def remove(self, sub_id: str) -> bool:
        self._stats.pop(sub_id, None)
        return self._subs.pop(sub_id, None) is not None

    async def stats(self, sub_id: str, recent: int, dead: int) -> SubscriptionStats:
        s = self._stats.get(sub_id, SubscriptionStats())
        return SubscriptionStats(
            dict(s.counters),
            s.last_success_at,
            s.last_failure_at,
            s.last_error,
            s.recent[:recent],
            s.dead_letters[:dead],
        )

    async def enqueue(self, jobs: Sequence[tuple[str, str]], due: float) -> None:
        for s, e in jobs:
            self._due.setdefault(f"{s}|{e}", due)

    async def claim(self, now: float, limit: int, lease_until: float) -> list[Job]:
        ready = sorted((t, m) for m, t in self._due.items() if t <= now)[:limit]
        for _, m in ready:
            self._due[m] = lease_until
        return [Job.from_member(m, self._attempts.get(m, 0)) for _, m in ready]

    def _record(self, job: Job, record: DeliveryRecord, history: int) -> SubscriptionStats | None:
        s = self._stats.get(job.sub_id)
        if s is not None:
            s.recent.insert(0, asdict(record))
            del s.recent[history:]
        return s

    async def succeeded(self, job: Job, record: DeliveryRecord, history: int) -> None:
        await self.drop(job)
        s = self._record(job, record, history)
        if s is not None:
            s.counters["delivered"] += 1
            s.last_success_at = record.at

    async def failed(
        self,
        job: Job,
        record: DeliveryRecord,
        history: int,
        retry_at: float | None,
        dead_letter: Mapping[str, Any] | None,
        dead_kept: int,
    ) -> None:
        if retry_at is not None:
            if job.member in self._due:
                self._due[job.member] = retry_at
                self._attempts[job.member] = record.attempt
        else:
            await self.drop(job)
        s = self._record(job, record, history)
        if s is not None:
            s.counters["failed_attempts"] += 1
            s.last_failure_at, s.last_error = record.at, record.error or ""
            if dead_letter is not None:
                s.counters["dead_lettered"] += 1
                s.dead_letters.insert(0, dict(dead_letter))
                del s.dead_letters[dead_kept:]

    async def drop(self, job: Job) -> None:
        self._due.pop(job.member, None)
        self._attempts.pop(job.member, None)
