"""The learner over the real Redis label store learns exactly what it learns over the in-memory
twin: each batch's plan loads everything the batch reads (checkout), and commit writes back
everything it changed. The stream is a simulated bank decided by the real pipeline."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from engine.clock import FixedClock
from engine.config import Settings
from engine.dead_letter import InputRecord
from engine.sinks import MemorySink
from engine.wiring import build_pipeline, store_limits
from features.memory_store import MemoryStateStore
from online_models.catalog import build_catalog
from online_models.learner import LabelledExample, Learner, LearnerConfig, epoch
from simulator import simulate
from streams.model_store import RedisLabelStore

pytestmark = pytest.mark.integration


async def decision_records(customers: int, days: int, seed: int) -> list[dict[str, Any]]:
    settings = Settings()
    sink, clock = MemorySink(), FixedClock(0.0)
    pipeline, _ = build_pipeline(
        settings, sink, store=MemoryStateStore(store_limits(settings)), clock=clock
    )
    batch: list[InputRecord] = []
    for n, event in enumerate(simulate(customers, days, seed)):
        batch.append(InputRecord(orjson.dumps(event), "t", 0, n))
        if len(batch) == 200:
            clock.set(epoch(event["ts"]) + 1)
            await pipeline.process(batch)
            batch = []
    if batch:
        clock.set(epoch(event["ts"]) + 1)
        await pipeline.process(batch)
    return [{k: v for k, v in d.items() if k != "scores"} for d in sink.values("decisions")]


@pytest_asyncio.fixture
async def redis_labels(redis_url: str, unique: str) -> AsyncIterator[RedisLabelStore]:
    client = aioredis.Redis.from_url(redis_url)
    yield RedisLabelStore(client, prefix=f"ls{unique}")
    keys = [k async for k in client.scan_iter(match=f"ls{unique}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def make() -> tuple[Learner, list[LabelledExample]]:
    seen: list[LabelledExample] = []
    config = LearnerConfig(horizon=20 * 86400.0, positive_window=10 * 86400.0)
    return Learner(config, build_catalog(), listener=seen.append), seen


async def test_the_learner_over_redis_equals_the_learner_over_the_twin(
    redis_labels: RedisLabelStore,
) -> None:
    records = await decision_records(customers=80, days=45, seed=3)
    assert sum(r["event_type"] == "outcome" for r in records) >= 10
    assert any(r["actions"]["chosen"] for r in records)

    twin, twin_seen = make()
    twin.observe(records)

    live, live_seen = make()
    for i in range(0, len(records), 150):
        chunk = records[i : i + 150]
        view = await redis_labels.checkout(live.plan(chunk))
        live.observe(chunk, view)
        await redis_labels.commit(view)

    assert live_seen == twin_seen
    assert sum(e.model == "churn_risk" for e in live_seen) > 500
    assert live.counts == twin.counts
    assert live.counts["joined"] > 0 and live.counts["snapshots"] > 1000
    probe = records[-1]["features"]
    assert live.scorer().score(probe) == twin.scorer().score(probe)
    assert redis_labels.round_trips >= 2 * len(range(0, len(records), 150))
