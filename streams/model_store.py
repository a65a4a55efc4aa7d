"""The Redis adapters of the model ports: model snapshots and pending feature snapshots.

(They live here, not in ``online_models``, because that package is pure: it imports no Redis.)

Snapshots (one hash tag, so a Redis Cluster keeps them on one slot)::

    <prefix>:{models}:numbers          HASH  model -> latest snapshot number
    <prefix>:{models}:snapshot:<model> HASH  n -> number, blob -> stamped pickle
    <prefix>:{models}:learner-lease    STRING the learner holding the lease (expires: PX)

Pending labels (hash-tagged by customer, expiring with the label horizon)::

    <prefix>:{<customer>}:md      HASH  d:<day> -> day snapshot, m:<label> -> latest outcome time
    <prefix>:{<customer>}:mo      ZSET  offer snapshot -> decision time
    <prefix>:m:due:<day>          SET   customers with a snapshot of that day
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from engine.config import Settings
from engine.errors import InfrastructureError
from online_models.labels import MARK_LABELS, Checkout, FeatureSnapshot, PendingLabels
from online_models.lease import LeaseLostError
from online_models.scorer import ModelScorer
from online_models.settings import DAY, model_settings
from online_models.snapshots import SnapshotPoller

log = logging.getLogger(__name__)

# KEYS: numbers, the model's snapshot, the learner lease. ARGV: model, blob, owner ('' = no
# fence). Fenced: only the lease's owner publishes (-1 otherwise).
_PUBLISH = """
if ARGV[3] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[3] then
  return -1
end
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('HSET', KEYS[2], 'n', n, 'blob', ARGV[2])
return n
"""


def lease_key(prefix: str) -> str:
    """The learner lease's key (hash-tagged with the model snapshots it fences)."""
    return f"{prefix}:{{models}}:learner-lease"


def redis_client(settings: Settings) -> aioredis.Redis:
    password = settings.redis.password.get_secret_value() if settings.redis.password else None
    return aioredis.Redis.from_url(settings.redis.url, password=password, decode_responses=False)


async def _guard(op: Callable[[], Awaitable[Any]]) -> Any:
    try:
        return await op()
    except (RedisError, OSError) as exc:
        raise InfrastructureError(f"Redis failed: {type(exc).__name__}: {exc}") from exc


class RedisSnapshotStore:
    """``SnapshotStore`` on Redis: the latest snapshot per model and a counter per model."""

    def __init__(
        self, client: aioredis.Redis, prefix: str = "vigil", fence_owner: str | None = None
    ) -> None:
        self._redis = client
        self._numbers = f"{prefix}:{{models}}:numbers"
        self._prefix = prefix
        self._publish = client.register_script(_PUBLISH)
        self._fence_owner = fence_owner

    def _blob(self, name: str) -> str:
        return f"{self._prefix}:{{models}}:snapshot:{name}"

    async def publish(self, name: str, blob: bytes) -> int:
        """Publish; with a ``fence_owner``, only while that owner holds the learner lease
        (checked in the same script: ``LeaseLostError`` otherwise)."""
        keys = [self._numbers, self._blob(name), lease_key(self._prefix)]
        owner = self._fence_owner or ""
        number = int(await _guard(lambda: self._publish(keys=keys, args=[name, blob, owner])))
        if number < 0:
            raise LeaseLostError(f"snapshot of {name} not published: the lease is not {owner}'s")
        return number

    async def numbers(self) -> dict[str, int]:
        raw = await _guard(lambda: self._redis.hgetall(self._numbers))
        return {k.decode(): int(v) for k, v in raw.items()}

    async def fetch(self, name: str) -> tuple[int, bytes] | None:
        n, blob = await _guard(lambda: self._redis.hmget(self._blob(name), ["n", "blob"]))
        if n is None or blob is None:
            return None
        return int(n), bytes(blob)

    async def close(self) -> None:
        await self._redis.aclose()


class RedisLabelStore:
    """``LabelStore`` on Redis: checkout loads what a plan names (one round trip, two when a
    day falls due), commit writes the journal back in one pipeline."""

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str = "vigil",
        ttl_seconds: int = 32 * 86400,
        offer_ttl_seconds: int = 15 * 86400,
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl = ttl_seconds
        self._offer_ttl = offer_ttl_seconds
        self.round_trips = 0

    def _md(self, cid: str) -> str:
        return f"{self._prefix}:{{{cid}}}:md"

    def _mo(self, cid: str) -> str:
        return f"{self._prefix}:{{{cid}}}:mo"

    def _due(self, day: int) -> str:
        return f"{self._prefix}:m:due:{day}"

    async def checkout(self, plan: Checkout) -> PendingLabels:
        view = PendingLabels(journal=True)
        marks = [f"m:{label}" for label in MARK_LABELS]
        pipe = self._redis.pipeline(transaction=False)
        full = sorted(plan.full)
        some = sorted(plan.days.items())
        offers = sorted(plan.offers.items())
        for cid in full:
            pipe.hgetall(self._md(cid))
        for cid, days in some:
            pipe.hmget(self._md(cid), [f"d:{d}" for d in sorted(days)] + marks)
        for cid, since in offers:
            pipe.zrangebyscore(self._mo(cid), since, "+inf")
        for day in plan.due_days:
            pipe.smembers(self._due(day))
        replies = await self._execute(pipe)
        it = iter(replies)
        for cid in full:
            for field, value in next(it).items():
                _load_field(view, cid, field.decode(), value)
        for cid, days in some:
            fields = [f"d:{d}" for d in sorted(days)] + marks
            for field, value in zip(fields, next(it), strict=True):
                if value is not None:
                    _load_field(view, cid, field, value)
        for cid, _ in offers:
            for raw in next(it):
                view.load_offer(cid, bytes(raw))
        due_members: list[tuple[int, str]] = []
        for day in plan.due_days:
            members = sorted(m.decode() for m in next(it))
            view.load_due(day, members)
            due_members.extend((day, cid) for cid in members if cid not in plan.full)
        if due_members:
            pipe = self._redis.pipeline(transaction=False)
            for day, cid in due_members:
                pipe.hmget(self._md(cid), [f"d:{day}", *marks])
            for (day, cid), values in zip(due_members, await self._execute(pipe), strict=True):
                for field, value in zip([f"d:{day}", *marks], values, strict=True):
                    if value is not None:
                        _load_field(view, cid, field, value)
        return view

    async def commit(self, view: PendingLabels) -> None:
        j = view.journal
        if not j:
            return
        pipe = self._redis.pipeline(transaction=False)
        md: set[str] = set()
        mo: set[str] = set()
        due: set[int] = set()
        for (cid, day), snap in j.put_days.items():
            pipe.hset(self._md(cid), f"d:{day}", snap.encode())
            pipe.sadd(self._due(day), cid)
            md.add(cid)
            due.add(day)
        for cid, day in j.del_days:
            pipe.hdel(self._md(cid), f"d:{day}")
            pipe.srem(self._due(day), cid)
        for (cid, label), ts in j.marks.items():
            pipe.hset(self._md(cid), f"m:{label}", repr(ts))
            md.add(cid)
        for (cid, _), snap in j.put_offers.items():
            pipe.zadd(self._mo(cid), {snap.encode(): snap.ts})
            mo.add(cid)
        for (cid, _), raw in j.del_offers.items():
            pipe.zrem(self._mo(cid), raw)
        for cid, before in j.expire_offers.items():
            pipe.zremrangebyscore(self._mo(cid), "-inf", f"({before!r}")
        for day in j.cleared_days:
            pipe.delete(self._due(day))
        for cid in md:
            pipe.expire(self._md(cid), self._ttl)
        for cid in mo:
            pipe.expire(self._mo(cid), self._offer_ttl)
        for day in due - j.cleared_days:
            pipe.expire(self._due(day), self._ttl)
        await self._execute(pipe)
        view.journal = None  # committed: a retry of the same view writes nothing twice

    async def _execute(self, pipe: Any) -> list[Any]:
        self.round_trips += 1
        return list(await _guard(pipe.execute))

    async def close(self) -> None:
        await self._redis.aclose()


def _load_field(view: PendingLabels, cid: str, field: str, value: bytes) -> None:
    kind, _, rest = field.partition(":")
    if kind == "d":
        view.load_day(cid, int(rest), FeatureSnapshot.decode(value))
    elif kind == "m":
        view.load_mark(cid, rest, float(value))


def label_store(settings: Settings, client: aioredis.Redis | None = None) -> RedisLabelStore:
    ms = model_settings(settings)
    return RedisLabelStore(
        client or redis_client(settings),
        settings.redis.key_prefix,
        ttl_seconds=int(ms.horizon_seconds + 2 * DAY),
        offer_ttl_seconds=int(ms.offer_horizon_seconds + DAY),
    )


def snapshot_store(
    settings: Settings, client: aioredis.Redis | None = None, fence_owner: str | None = None
) -> RedisSnapshotStore:
    return RedisSnapshotStore(
        client or redis_client(settings), settings.redis.key_prefix, fence_owner
    )


_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLease:
    """``online_models.lease.Lease`` on Redis: one string key holding the owner, with a PX
    expiry; renewal and release check the owner in a script (atomically)."""

    def __init__(self, client: aioredis.Redis, key: str) -> None:
        self._redis = client
        self._key = key

    async def acquire(self, owner: str, ttl: float) -> bool:
        ms = _millis(ttl)
        if await _guard(lambda: self._redis.set(self._key, owner, nx=True, px=ms)):
            return True
        # Already ours (a restart within the lease under the same owner id): extend it.
        return await self.renew(owner, ttl)

    async def renew(self, owner: str, ttl: float) -> bool:
        ms = _millis(ttl)
        done = await _guard(lambda: self._redis.eval(_RENEW, 1, self._key, owner, ms))
        return bool(done)

    async def release(self, owner: str) -> None:
        await _guard(lambda: self._redis.eval(_RELEASE, 1, self._key, owner))

    async def holder(self) -> str | None:
        value = await _guard(lambda: self._redis.get(self._key))
        return None if value is None else bytes(value).decode()

    async def close(self) -> None:
        await self._redis.aclose()


def _millis(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def learner_lease(settings: Settings, client: aioredis.Redis | None = None) -> RedisLease:
    """The learner's lease (hash-tagged with the model snapshots)."""
    return RedisLease(client or redis_client(settings), lease_key(settings.redis.key_prefix))


class ModelSwapper:
    """A worker's hot-swap of model snapshots: never raises, never pauses the stream."""

    def __init__(self, poller: SnapshotPoller) -> None:
        self.poller = poller
        self.polls = 0

    async def poll(self) -> list[str]:
        self.polls += 1
        try:
            return await self.poller.poll()
        except InfrastructureError as exc:
            log.warning("model snapshots not checked (previous models keep serving): %s", exc)
            return []


def model_swapper(settings: Settings, scorer: ModelScorer) -> ModelSwapper:
    return ModelSwapper(SnapshotPoller(snapshot_store(settings), scorer))
