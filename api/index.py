"""The API's index of what the workers decided: decision records by id, and each customer's
recent decisions and alerts, so ``GET /decisions/{id}`` and the customer 360 view never scan
Kafka. Fed by the API's topic consumer (api/indexer.py); every entry expires after a TTL.

``RedisIndex`` is the real adapter, ``MemoryIndex`` its twin (tests/integration/
test_api_stores.py holds both to one contract). Redis keys:

- ``<prefix>:api:dec:<decision_id>``, ``<prefix>:api:alert:<alert_id>``: the JSON records;
- ``<prefix>:{<customer_id>}:api:dec`` and ``...:api:alerts``: sorted sets of the customer's
  recent ids by event time, capped, hash-tagged by customer like the worker's keys;
- ``<prefix>:api:offsets``: the consumer's next Kafka offset per ``topic:partition``;
- ``<prefix>:api:secret:<name>``: random secrets every replica shares (stream tokens).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis

from engine.clock import Clock


def event_epoch(record: Mapping[str, Any]) -> float:
    """A record's event time as epoch seconds (0 when missing or unreadable).

    >>> event_epoch({"event_time": "2026-01-01T00:00:00.000+00:00"})
    1767225600.0
    >>> event_epoch({})
    0.0
    """
    try:
        return datetime.fromisoformat(str(record["event_time"])).timestamp()
    except (KeyError, ValueError):
        return 0.0


class Index(Protocol):
    async def put(
        self, decisions: Sequence[Mapping[str, Any]], alerts: Sequence[Mapping[str, Any]]
    ) -> None:
        """Index decision records and alerts (idempotent: the same id overwrites itself)."""
        ...

    async def decision(self, decision_id: str) -> dict[str, Any] | None: ...

    async def recent_decisions(self, customer_id: str, count: int) -> list[dict[str, Any]]:
        """The customer's latest decision records, newest first."""
        ...

    async def recent_alerts(self, customer_id: str, count: int) -> list[dict[str, Any]]:
        """The customer's latest alerts, newest first."""
        ...

    async def offsets(self) -> dict[str, int]:
        """The consumer's saved positions: ``"topic:partition"`` -> next offset."""
        ...

    async def save_offsets(self, offsets: Mapping[str, int]) -> None: ...

    async def shared_secret(self, name: str) -> bytes:
        """A random secret created once and shared by every replica."""
        ...


class RedisIndex:
    def __init__(self, client: aioredis.Redis, prefix: str, ttl: int, per_customer: int) -> None:
        self._redis: Any = client
        self._prefix = prefix
        self._ttl = ttl
        self._cap = per_customer

    def _doc_key(self, kind: str, doc_id: str) -> str:
        return f"{self._prefix}:api:{kind}:{doc_id}"

    def _list_key(self, customer_id: str, kind: str) -> str:
        return f"{self._prefix}:{{{customer_id}}}:api:{kind}"

    async def put(
        self, decisions: Sequence[Mapping[str, Any]], alerts: Sequence[Mapping[str, Any]]
    ) -> None:
        if not decisions and not alerts:
            return
        pipe = self._redis.pipeline(transaction=False)
        for kind, id_field, docs in (
            ("dec", "decision_id", decisions),
            ("alert", "alert_id", alerts),
        ):
            for doc in docs:
                doc_id, cid = str(doc[id_field]), str(doc["customer_id"])
                pipe.set(self._doc_key(kind, doc_id), orjson.dumps(doc), ex=self._ttl)
                key = self._list_key(cid, "dec" if kind == "dec" else "alerts")
                pipe.zadd(key, {doc_id: event_epoch(doc)})
                pipe.zremrangebyrank(key, 0, -(self._cap + 1))
                pipe.expire(key, self._ttl)
        await pipe.execute()

    async def decision(self, decision_id: str) -> dict[str, Any] | None:
        raw = await self._redis.get(self._doc_key("dec", decision_id))
        return orjson.loads(raw) if raw is not None else None

    async def _recent(self, customer_id: str, kind: str, list_kind: str, count: int) -> list[Any]:
        ids = await self._redis.zrevrange(self._list_key(customer_id, list_kind), 0, count - 1)
        if not ids:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for doc_id in ids:
            pipe.get(self._doc_key(kind, doc_id.decode()))
        return [orjson.loads(raw) for raw in await pipe.execute() if raw is not None]

    async def recent_decisions(self, customer_id: str, count: int) -> list[dict[str, Any]]:
        return await self._recent(customer_id, "dec", "dec", count)

    async def recent_alerts(self, customer_id: str, count: int) -> list[dict[str, Any]]:
        return await self._recent(customer_id, "alert", "alerts", count)

    async def offsets(self) -> dict[str, int]:
        raw = await self._redis.hgetall(f"{self._prefix}:api:offsets")
        return {k.decode(): int(v) for k, v in raw.items()}

    async def save_offsets(self, offsets: Mapping[str, int]) -> None:
        if offsets:
            await self._redis.hset(f"{self._prefix}:api:offsets", mapping=dict(offsets))

    async def shared_secret(self, name: str) -> bytes:
        key = f"{self._prefix}:api:secret:{name}"
        await self._redis.set(key, secrets.token_bytes(32), nx=True)
        value = await self._redis.get(key)
        return bytes(value)


class MemoryIndex:
    """The index in one process's memory. Expiry follows the injected clock."""

    def __init__(self, clock: Clock, ttl: int, per_customer: int) -> None:
        self._clock = clock
        self._ttl = ttl
        self._cap = per_customer
        self._docs: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self._lists: dict[tuple[str, str], dict[str, float]] = {}
        self._offsets: dict[str, int] = {}
        self._secrets: dict[str, bytes] = {}

    async def put(
        self, decisions: Sequence[Mapping[str, Any]], alerts: Sequence[Mapping[str, Any]]
    ) -> None:
        expires = self._clock.now() + self._ttl
        for kind, id_field, docs in (
            ("dec", "decision_id", decisions),
            ("alert", "alert_id", alerts),
        ):
            for doc in docs:
                doc_id = str(doc[id_field])
                self._docs[kind, doc_id] = (expires, orjson.loads(orjson.dumps(doc)))
                ids = self._lists.setdefault((str(doc["customer_id"]), kind), {})
                ids[doc_id] = event_epoch(doc)
                for old in sorted(ids, key=lambda i: (ids[i], i))[: -self._cap]:
                    del ids[old]

    def _get(self, kind: str, doc_id: str) -> dict[str, Any] | None:
        found = self._docs.get((kind, doc_id))
        if found is None or found[0] <= self._clock.now():
            return None
        return found[1]

    async def decision(self, decision_id: str) -> dict[str, Any] | None:
        return self._get("dec", decision_id)

    def _recent(self, customer_id: str, kind: str, count: int) -> list[dict[str, Any]]:
        ids = self._lists.get((customer_id, kind), {})
        newest = sorted(ids, key=lambda i: (ids[i], i), reverse=True)[:count]
        return [d for d in (self._get(kind, i) for i in newest) if d is not None]

    async def recent_decisions(self, customer_id: str, count: int) -> list[dict[str, Any]]:
        return self._recent(customer_id, "dec", count)

    async def recent_alerts(self, customer_id: str, count: int) -> list[dict[str, Any]]:
        return self._recent(customer_id, "alert", count)

    async def offsets(self) -> dict[str, int]:
        return dict(self._offsets)

    async def save_offsets(self, offsets: Mapping[str, int]) -> None:
        self._offsets.update(offsets)

    async def shared_secret(self, name: str) -> bytes:
        return self._secrets.setdefault(name, secrets.token_bytes(32))
