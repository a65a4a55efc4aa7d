"""One contract suite per model port, run on the in-memory twin and on real Redis:
``SnapshotStore`` (published model snapshots, fenced by the learner lease) and ``LabelStore``
(feature snapshots awaiting their labels)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from engine.clock import WallClock
from online_models.labels import (
    DAY,
    Checkout,
    FeatureSnapshot,
    LabelStore,
    MemoryLabelStore,
)
from online_models.lease import Lease, LeaseLostError, MemoryLease
from online_models.snapshots import MemorySnapshotStore, SnapshotStore
from streams.model_store import RedisLabelStore, RedisLease, RedisSnapshotStore, lease_key

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
D0 = int(T0 // DAY)


async def _drop(client: aioredis.Redis, prefix: str) -> None:
    keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await client.delete(*keys)


@pytest_asyncio.fixture(params=["memory", "redis"])
async def snapshots(request: pytest.FixtureRequest, unique: str) -> AsyncIterator[SnapshotStore]:
    if request.param == "memory":
        yield MemorySnapshotStore()
        return
    client = aioredis.Redis.from_url(request.getfixturevalue("redis_url"))
    yield RedisSnapshotStore(client, prefix=f"test{unique}")
    await _drop(client, f"test{unique}")
    await client.aclose()


@pytest_asyncio.fixture(params=["memory", "redis"])
async def labels(request: pytest.FixtureRequest, unique: str) -> AsyncIterator[LabelStore]:
    if request.param == "memory":
        yield MemoryLabelStore()
        return
    client = aioredis.Redis.from_url(request.getfixturevalue("redis_url"))
    yield RedisLabelStore(client, prefix=f"test{unique}", ttl_seconds=3600, offer_ttl_seconds=600)
    await _drop(client, f"test{unique}")
    await client.aclose()


def snap(ts: float, did: str = "d1", action: str | None = None) -> FeatureSnapshot:
    return FeatureSnapshot(ts, did, {"a": 1.5, "b": -2.0}, {"churn_risk": 0.25}, action)


# -- SnapshotStore ----------------------------------------------------------------------


async def test_nothing_published_yet(snapshots: SnapshotStore) -> None:
    assert await snapshots.numbers() == {}
    assert await snapshots.fetch("churn_risk") is None


async def test_publish_numbers_each_model_from_one(snapshots: SnapshotStore) -> None:
    assert await snapshots.publish("churn_risk", b"one") == 1
    assert await snapshots.publish("churn_risk", b"two") == 2
    assert await snapshots.publish("asset_drop", b"\x00\xffbinary") == 1
    assert await snapshots.numbers() == {"churn_risk": 2, "asset_drop": 1}


async def test_fetch_returns_the_latest_snapshot_with_its_number(
    snapshots: SnapshotStore,
) -> None:
    await snapshots.publish("churn_risk", b"one")
    await snapshots.publish("churn_risk", b"two" * 100_000)
    assert await snapshots.fetch("churn_risk") == (2, b"two" * 100_000)


@pytest_asyncio.fixture(params=["memory", "redis"])
async def fenced(
    request: pytest.FixtureRequest, unique: str
) -> AsyncIterator[tuple[SnapshotStore, Lease]]:
    """A snapshot store fenced by the learner lease for owner "first", and that lease."""
    if request.param == "memory":
        lease: Lease = MemoryLease(WallClock())
        yield MemorySnapshotStore(fence=(lease, "first")), lease
        return
    client = aioredis.Redis.from_url(request.getfixturevalue("redis_url"))
    prefix = f"test{unique}"
    yield (
        RedisSnapshotStore(client, prefix, fence_owner="first"),
        RedisLease(client, lease_key(prefix)),
    )
    await _drop(client, prefix)
    await client.aclose()


async def test_a_fenced_store_publishes_only_while_its_owner_holds_the_lease(
    fenced: tuple[SnapshotStore, Lease],
) -> None:
    store, lease = fenced
    with pytest.raises(LeaseLostError):
        await store.publish("churn_risk", b"nobody holds the lease")
    assert await lease.acquire("first", 60.0)
    assert await store.publish("churn_risk", b"one") == 1
    await lease.release("first")
    assert await lease.acquire("second", 60.0)
    with pytest.raises(LeaseLostError):
        await store.publish("churn_risk", b"stale")
    assert await store.numbers() == {"churn_risk": 1}
    assert await store.fetch("churn_risk") == (1, b"one")


# -- LabelStore --------------------------------------------------------------------------


async def test_day_snapshots_and_marks_survive_a_commit(labels: LabelStore) -> None:
    view = await labels.checkout(Checkout(days={"c1": frozenset({D0})}))
    assert not view.has_day("c1", D0)
    assert view.put_day("c1", D0, snap(T0 + 60)) is True
    assert view.put_day("c1", D0, snap(T0 + 90, "d2")) is False  # the day's latest wins
    view.mark("c1", "asset_drop", T0 + 100)
    await labels.commit(view)

    again = await labels.checkout(Checkout(days={"c1": frozenset({D0})}))
    assert again.has_day("c1", D0)
    assert again.marks("c1") == {"asset_drop": T0 + 100}
    assert again.due_customers(D0) in ([], ["c1"])  # the due list is loaded only when due
    full = await labels.checkout(Checkout(full=frozenset({"c1"})))
    assert [s.decision_id for s in full.take_days_before("c1", T0 + DAY)] == ["d2"]


async def test_taken_snapshots_are_gone_after_commit(labels: LabelStore) -> None:
    view = await labels.checkout(Checkout(days={"c1": frozenset({D0, D0 + 1})}))
    view.put_day("c1", D0, snap(T0 + 60, "d0"))
    view.put_day("c1", D0 + 1, snap(T0 + DAY + 60, "d1"))
    await labels.commit(view)

    view = await labels.checkout(Checkout(full=frozenset({"c1"})))
    taken = view.take_days_before("c1", T0 + DAY)
    assert [(s.decision_id, s.x, s.preds) for s in taken] == [
        ("d0", {"a": 1.5, "b": -2.0}, {"churn_risk": 0.25})
    ]
    view.mark("c1", "churned", T0 + DAY)
    await labels.commit(view)

    view = await labels.checkout(Checkout(full=frozenset({"c1"}), due_days=(D0, D0 + 1)))
    assert not view.has_day("c1", D0) and view.has_day("c1", D0 + 1)
    assert view.due_customers(D0) == [] and view.due_customers(D0 + 1) == ["c1"]
    assert view.marks("c1") == {"churned": T0 + DAY}


async def test_a_due_day_hands_over_its_snapshots_once(labels: LabelStore) -> None:
    view = await labels.checkout(Checkout(days={"c1": frozenset({D0}), "c2": frozenset({D0})}))
    view.put_day("c1", D0, snap(T0 + 1, "a"))
    view.put_day("c2", D0, snap(T0 + 2, "b"))
    view.put_day("c2", D0 + 1, snap(T0 + DAY + 2, "c"))
    view.mark("c2", "retained", T0 + 5)
    await labels.commit(view)

    view = await labels.checkout(Checkout(due_days=(D0,)))
    assert view.due_customers(D0) == ["c1", "c2"]
    assert view.marks("c2") == {"retained": T0 + 5}  # marks come with a due customer
    assert [(c, s.decision_id) for c, s in view.take_due(D0)] == [("c1", "a"), ("c2", "b")]
    await labels.commit(view)

    view = await labels.checkout(Checkout(full=frozenset({"c2"}), due_days=(D0,)))
    assert view.take_due(D0) == []
    assert view.has_day("c2", D0 + 1)


async def test_offers_are_found_by_decision_id_or_as_the_latest_recent_one(
    labels: LabelStore,
) -> None:
    view = await labels.checkout(Checkout(days={"c1": frozenset()}))
    view.put_offer("c1", snap(T0 + 10, "d-old", "sms_offer"))
    view.put_offer("c1", snap(T0 + 20, "d-new", "rm_call"))
    await labels.commit(view)

    since = T0 + 15
    view = await labels.checkout(Checkout(offers={"c1": since}))
    found = view.take_offer("c1", None, T0 + 100, since)
    assert found is not None and (found.decision_id, found.action) == ("d-new", "rm_call")
    assert view.take_offer("c1", "d-new", T0 + 100, since) is None  # answered once
    await labels.commit(view)

    view = await labels.checkout(Checkout(offers={"c1": T0}))
    assert view.take_offer("c1", "d-new", T0 + 100, T0) is None
    old = view.take_offer("c1", "d-old", T0 + 100, T0)
    assert old is not None and old.action == "sms_offer"


async def test_expired_offers_are_forgotten(labels: LabelStore) -> None:
    view = await labels.checkout(Checkout(days={"c1": frozenset()}))
    view.put_offer("c1", snap(T0 + 10, "d1", "a"))
    view.put_offer("c1", snap(T0 + 500, "d2", "a"))
    await labels.commit(view)
    view = await labels.checkout(Checkout(offers={"c1": T0}))
    view.expire("c1", T0 + 100)
    await labels.commit(view)
    view = await labels.checkout(Checkout(offers={"c1": T0}))
    assert view.take_offer("c1", "d1", T0 + 1000, T0) is None
    assert view.take_offer("c1", "d2", T0 + 1000, T0) is not None


async def test_a_later_mark_is_kept_an_earlier_one_ignored(labels: LabelStore) -> None:
    view = await labels.checkout(Checkout(days={"c1": frozenset()}))
    view.mark("c1", "churned", T0 + 50)
    await labels.commit(view)
    view = await labels.checkout(Checkout(days={"c1": frozenset()}))
    view.mark("c1", "churned", T0 + 10)
    await labels.commit(view)
    view = await labels.checkout(Checkout(full=frozenset({"c1"})))
    assert view.marks("c1") == {"churned": T0 + 50}


async def test_customers_are_independent(labels: LabelStore) -> None:
    view = await labels.checkout(Checkout(days={"c1": frozenset({D0})}))
    view.put_day("c1", D0, snap(T0))
    await labels.commit(view)
    view = await labels.checkout(Checkout(full=frozenset({"c2"}), days={"c3": frozenset({D0})}))
    assert view.take_days_before("c2", T0 + DAY) == []
    assert not view.has_day("c3", D0) and view.marks("c2") == {}


async def test_redis_keys_are_hash_tagged_by_customer_and_expire(
    redis_url: str, unique: str
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    prefix = f"test{unique}"
    store = RedisLabelStore(client, prefix=prefix, ttl_seconds=3600, offer_ttl_seconds=600)
    try:
        view = await store.checkout(Checkout(days={"c1": frozenset({D0})}))
        view.put_day("c1", D0, snap(T0))
        view.put_offer("c1", snap(T0, "d1", "a"))
        await store.commit(view)
        keys = sorted([k.decode() async for k in client.scan_iter(match=f"{prefix}:*")])
        assert keys == [f"{prefix}:m:due:{D0}", f"{prefix}:{{c1}}:md", f"{prefix}:{{c1}}:mo"]
        assert 0 < await client.ttl(f"{prefix}:{{c1}}:md") <= 3600
        assert 0 < await client.ttl(f"{prefix}:{{c1}}:mo") <= 600
        assert store.round_trips == 2
    finally:
        await _drop(client, prefix)
        await client.aclose()
