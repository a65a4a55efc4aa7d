"""The ``Lease`` contract, run on the in-memory twin and on real Redis: one holder at a time,
renewal and release by the holder only, expiry hands it over."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from engine.clock import FixedClock
from online_models.lease import Lease, MemoryLease
from streams.model_store import RedisLease

TTL = 0.3  # short, so that the Redis run can wait for an expiry


@dataclass
class World:
    lease: Lease
    wait: Callable[[float], Awaitable[None]]  # let this much time pass


@pytest_asyncio.fixture(params=["memory", "redis"])
async def world(request: pytest.FixtureRequest, unique: str) -> AsyncIterator[World]:
    if request.param == "memory":
        clock = FixedClock(1_000.0)

        async def advance(seconds: float) -> None:
            clock.set(clock.now() + seconds)

        yield World(MemoryLease(clock), advance)
        return
    client = aioredis.Redis.from_url(request.getfixturevalue("redis_url"))
    key = f"test{unique}:{{models}}:learner-lease"
    yield World(RedisLease(client, key), asyncio.sleep)
    await client.delete(key)
    await client.aclose()


async def test_one_holder_at_a_time(world: World) -> None:
    assert await world.lease.holder() is None
    assert await world.lease.acquire("a", TTL)
    assert not await world.lease.acquire("b", TTL)
    assert await world.lease.holder() == "a"
    assert await world.lease.acquire("a", TTL), "the holder may take it again (a restart)"


async def test_only_the_holder_renews(world: World) -> None:
    await world.lease.acquire("a", TTL)
    assert not await world.lease.renew("b", TTL)
    assert await world.lease.holder() == "a"
    assert await world.lease.renew("a", TTL)


async def test_renewal_keeps_it_and_expiry_hands_it_over(world: World) -> None:
    await world.lease.acquire("a", TTL)
    await world.wait(TTL * 0.6)
    assert await world.lease.renew("a", TTL)
    await world.wait(TTL * 0.6)
    assert await world.lease.holder() == "a", "renewed: still held after the first period"
    assert not await world.lease.acquire("b", TTL)
    await world.wait(TTL * 1.5)
    assert await world.lease.holder() is None
    assert not await world.lease.renew("a", TTL), "an expired lease cannot be renewed"
    assert await world.lease.acquire("b", TTL)
    assert await world.lease.holder() == "b"


async def test_only_the_holder_releases(world: World) -> None:
    await world.lease.acquire("a", TTL * 100)
    await world.lease.release("b")
    assert await world.lease.holder() == "a"
    await world.lease.release("a")
    assert await world.lease.holder() is None
    assert await world.lease.acquire("b", TTL)
