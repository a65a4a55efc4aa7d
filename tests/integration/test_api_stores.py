"""One contract for each of the API's stores, run on the Redis adapter and its in-memory twin:
the alert log, the decision index and the webhook subscription store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio as aioredis

from api.alert_log import AlertLog, MemoryAlertLog, RedisAlertLog
from api.filters import AlertFilter
from api.index import Index, MemoryIndex, RedisIndex
from api.subscriptions import (
    DeliveryRecord,
    MemorySubscriptionStore,
    RedisSubscriptionStore,
    Subscription,
    SubscriptionStore,
)
from engine.clock import WallClock

pytestmark = pytest.mark.integration
BACKENDS = ["memory", "redis"]


@dataclass
class Backend:
    name: str
    client: aioredis.Redis | None
    prefix: str


@pytest.fixture(params=BACKENDS)
async def backend(
    request: pytest.FixtureRequest, redis_url: str, unique: str
) -> AsyncIterator[Backend]:
    if request.param == "memory":
        yield Backend("memory", None, "")
        return
    client = aioredis.Redis.from_url(redis_url)
    yield Backend("redis", client, f"st{unique}")
    keys = [k async for k in client.scan_iter(match=f"st{unique}:*", count=500)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def make_log(b: Backend, retention: int = 3600, max_entries: int = 10_000) -> AlertLog:
    if b.client is None:
        return MemoryAlertLog(WallClock(), retention, max_entries)
    return RedisAlertLog(b.client, b.prefix, WallClock(), retention, max_entries)


def alert(n: int, **extra: Any) -> dict[str, Any]:
    return {"alert_id": f"a{n}", "customer_id": f"c{n % 3}", "type": "churn_risk", **extra}


def ids_of(entries: list[Any]) -> list[str]:
    return [e.alert["alert_id"] for e in entries]


async def test_log_appends_each_alert_once_in_order(backend: Backend) -> None:
    log = make_log(backend)
    first = await log.append([alert(1), alert(2)])
    again = await log.append([alert(2), alert(3), alert(1)])
    assert len(first) == 2 and len(again) == 1
    everything = await log.read_after("0-0", 100)
    assert ids_of(everything) == ["a1", "a2", "a3"]
    assert [e.id for e in everything] == [*first, *again]
    assert ids_of(await log.read_after(first[0], 100)) == ["a2", "a3"]
    assert ids_of(await log.read_after(again[0], 100)) == []
    assert ids_of(await log.latest(2)) == ["a2", "a3"]
    assert await log.bounds() == (first[0], again[0])
    found = await log.entry(first[1])
    assert found is not None and found.alert == alert(2)
    assert await log.entry("1-0") is None


async def test_log_wait_after_wakes_on_append_and_times_out(backend: Backend) -> None:
    log = make_log(backend)
    started = time.monotonic()
    assert await log.wait_after("0-0", 10, 0.3) == []
    assert time.monotonic() - started >= 0.25

    async def later() -> None:
        await asyncio.sleep(0.2)
        await log.append([alert(7)])

    task = asyncio.create_task(later())
    got = await log.wait_after("0-0", 10, 5.0)
    await task
    assert ids_of(got) == ["a7"]


async def test_log_keeps_only_the_retention_window(backend: Backend) -> None:
    log = make_log(backend, retention=1)
    await log.append([alert(1)])
    await asyncio.sleep(1.2)
    await log.append([alert(2)])
    assert ids_of(await log.read_after("0-0", 10)) == ["a2"]
    # ...and an alert id is claimed only for the retention window.
    await asyncio.sleep(1.2)
    assert len(await log.append([alert(1)])) == 1


async def test_log_group_hands_each_entry_to_one_consumer_and_reclaims_unacked(
    backend: Backend,
) -> None:
    log = make_log(backend)
    assert await log.read_group("g", "one", 10, 0.05, reclaim_after=60) == []  # creates it
    await log.append([alert(1), alert(2)])
    got_one = await log.read_group("g", "one", 10, 0.05, reclaim_after=60)
    got_two = await log.read_group("g", "two", 10, 0.05, reclaim_after=60)
    assert ids_of(got_one) == ["a1", "a2"] and got_two == []
    await log.ack("g", [got_one[0].id])
    # "one" died holding a2: after the reclaim time another consumer gets it.
    await asyncio.sleep(0.3)
    reclaimed = await log.read_group("g", "two", 10, 0.05, reclaim_after=0.2)
    assert ids_of(reclaimed) == ["a2"]
    await log.ack("g", [reclaimed[0].id])
    await asyncio.sleep(0.3)
    assert await log.read_group("g", "two", 10, 0.05, reclaim_after=0.2) == []


# --------------------------------------------------------------------------- index


def make_index(b: Backend, ttl: int = 3600, per_customer: int = 3) -> Index:
    if b.client is None:
        return MemoryIndex(WallClock(), ttl, per_customer)
    return RedisIndex(b.client, b.prefix, ttl, per_customer)


def decision(n: int, customer: str = "c1") -> dict[str, Any]:
    return {
        "decision_id": f"d{n}",
        "customer_id": customer,
        "event_time": f"2026-01-01T00:00:{n:02d}.000+00:00",
        "alerts": [f"a{n}"],
    }


async def test_index_serves_decisions_and_each_customers_latest(backend: Backend) -> None:
    index = make_index(backend, per_customer=3)
    await index.put([decision(n) for n in (3, 1, 5, 2, 4)] + [decision(9, "c2")], [])
    await index.put([decision(3)], [{**decision(3), "alert_id": "a3"}])  # idempotent
    assert await index.decision("d5") == decision(5)
    assert await index.decision("nope") is None
    recent = await index.recent_decisions("c1", 10)
    assert [d["decision_id"] for d in recent] == ["d5", "d4", "d3"]  # newest first, capped at 3
    assert [d["decision_id"] for d in await index.recent_decisions("c1", 2)] == ["d5", "d4"]
    assert [a["alert_id"] for a in await index.recent_alerts("c1", 10)] == ["a3"]
    assert await index.recent_decisions("c404", 10) == []


async def test_index_entries_expire_after_the_ttl(backend: Backend) -> None:
    index = make_index(backend, ttl=1)
    await index.put([decision(1)], [])
    assert await index.decision("d1") is not None
    await asyncio.sleep(1.3)
    assert await index.decision("d1") is None
    assert await index.recent_decisions("c1", 10) == []


async def test_index_keeps_offsets_and_a_shared_secret(backend: Backend) -> None:
    index = make_index(backend)
    assert await index.offsets() == {}
    await index.save_offsets({"alerts:0": 5, "alerts:1": 7})
    await index.save_offsets({"alerts:0": 9})
    assert await index.offsets() == {"alerts:0": 9, "alerts:1": 7}
    secret = await index.shared_secret("x")
    assert len(secret) == 32 and await index.shared_secret("x") == secret
    assert await index.shared_secret("y") != secret


# --------------------------------------------------------------------------- subscriptions


@pytest.fixture
def subs(backend: Backend) -> SubscriptionStore:
    if backend.client is None:
        return MemorySubscriptionStore()
    return RedisSubscriptionStore(backend.client, backend.prefix)


def subscription(sub_id: str, owner: str = "ops") -> Subscription:
    return Subscription(
        sub_id,
        owner,
        "http://127.0.0.1:1/x",
        AlertFilter.parse(type=["churn_risk"]),
        "secret-secret-secret",
        None,
        1000.0,
    )


def record(result: str, attempt: int, at: float = 1.0) -> DeliveryRecord:
    return DeliveryRecord("s1:a1", "a1", "1-0", attempt, result, 500, "HTTP 500", at, 0.01)


async def test_subscriptions_are_stored_listed_and_removed(subs: SubscriptionStore) -> None:
    await subs.add(subscription("s2"))
    await subs.add(subscription("s1", owner="other"))
    assert await subs.get("s1") == subscription("s1", owner="other")
    assert [s.id for s in await subs.all()] == ["s1", "s2"]
    assert await subs.remove("s1") is True
    assert await subs.remove("s1") is False
    assert await subs.get("s1") is None
    assert (await subs.stats("s2", 5, 5)).counters == {
        "delivered": 0,
        "failed_attempts": 0,
        "dead_lettered": 0,
    }


async def test_queue_leases_retries_and_dead_letters(subs: SubscriptionStore) -> None:
    await subs.add(subscription("s1"))
    await subs.enqueue([("s1", "1-0"), ("s1", "2-0")], due=100.0)
    await subs.enqueue([("s1", "1-0")], due=500.0)  # already queued: keeps its place
    assert await subs.claim(now=99.0, limit=10, lease_until=200.0) == []
    claimed = await subs.claim(now=100.0, limit=1, lease_until=200.0)
    assert [(j.entry_id, j.attempts) for j in claimed] == [("1-0", 0)]
    # Leased: hidden until the lease runs out, then claimable again.
    assert [j.entry_id for j in await subs.claim(100.0, 10, 200.0)] == ["2-0"]
    assert await subs.claim(150.0, 10, 300.0) == []
    job = (await subs.claim(200.0, 10, 300.0))[0]
    assert job.entry_id == "1-0"

    await subs.failed(job, record("failed", 1), 10, retry_at=250.0, dead_letter=None, dead_kept=5)
    assert await subs.claim(249.0, 10, 400.0) == []
    job = (await subs.claim(250.0, 10, 400.0))[0]
    assert job.attempts == 1
    letter = {"delivery_id": "s1:a1", "attempts": 2}
    await subs.failed(job, record("dead_lettered", 2), 10, None, letter, dead_kept=5)
    job2 = (await subs.claim(1000.0, 10, 2000.0))[0]
    assert job2.entry_id == "2-0"
    await subs.succeeded(job2, record("delivered", 1, at=7.0), 10)
    assert await subs.claim(5000.0, 10, 6000.0) == []

    stats = await subs.stats("s1", 10, 10)
    assert stats.counters == {"delivered": 1, "failed_attempts": 2, "dead_lettered": 1}
    assert [r["result"] for r in stats.recent] == ["delivered", "dead_lettered", "failed"]
    assert stats.dead_letters == [letter]
    assert stats.last_success_at == 7.0 and stats.last_error == "HTTP 500"


async def test_dropped_jobs_are_gone(subs: SubscriptionStore) -> None:
    await subs.enqueue([("gone", "1-0")], due=1.0)
    job = (await subs.claim(1.0, 10, 2.0))[0]
    await subs.drop(job)
    assert await subs.claim(10.0, 10, 20.0) == []
