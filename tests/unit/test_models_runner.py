"""The learner process's driver over the in-memory twins: batches of raw records in, snapshots
published, restored after a restart with at most one snapshot interval of learning lost; the
lease that keeps a second learner standing by."""

from __future__ import annotations

import orjson
import pytest

from engine.clock import FixedClock
from engine.errors import InfrastructureError
from online_models.catalog import build_catalog
from online_models.labels import DAY, MemoryLabelStore
from online_models.learner import Learner, LearnerConfig
from online_models.lease import LeaseLostError, MemoryLease
from online_models.snapshots import MemorySnapshotStore
from streams.learner import LearnerRunner, LeaseKeeper
from tests.unit.test_models_learner import T0, decision, outcome, outcome_record


def runner(snapshots: MemorySnapshotStore, labels: MemoryLabelStore) -> LearnerRunner:
    learner = Learner(LearnerConfig(lateness=0.0), build_catalog())
    return LearnerRunner(learner, labels, snapshots)


def batch(start: int, n: int) -> list[bytes]:
    out = []
    for i in range(start, start + n):
        out.append(orjson.dumps(decision(f"c{i}", T0 + i, closure_page_views_30d=float(i % 2))))
        label = "churned" if i % 2 else "retained"
        out.append(orjson.dumps(outcome_record(outcome(f"c{i}", label, T0 + DAY))))
    return out


async def test_bad_records_are_counted_and_the_batch_goes_on() -> None:
    r = runner(MemorySnapshotStore(), MemoryLabelStore())
    await r.start()
    await r.process([b"not json", b"[1, 2]", b'{"event_type": 5}', *batch(0, 3)])
    assert r.learner.counts["bad_records"] == 2
    assert r.learner.scorer().models["churn_risk"].examples == 3


async def test_publish_only_when_something_was_learned() -> None:
    snapshots = MemorySnapshotStore()
    r = runner(snapshots, MemoryLabelStore())
    await r.start()
    assert await r.publish() == {}
    await r.process(batch(0, 5))
    published = await r.publish()
    assert published == {"churn_risk": 1, "asset_drop": 1, "offer_response": 1, "learner": 1}
    assert await r.publish() == {}
    assert r.learner.scorer().models["churn_risk"].version.endswith(".1")


async def test_a_restart_restores_the_last_snapshot_and_loses_at_most_one_interval() -> None:
    snapshots, labels = MemorySnapshotStore(), MemoryLabelStore()
    first = runner(snapshots, labels)
    await first.start()
    await first.process(batch(0, 40))
    await first.publish()  # a snapshot interval ends
    await first.process(batch(40, 10))  # learned, never published: the process dies here
    assert first.learner.scorer().models["churn_risk"].examples == 50

    second = runner(snapshots, labels)
    await second.start()
    restored = second.learner.scorer().models["churn_risk"]
    assert restored.examples == 40 and restored.version.endswith(".1")
    assert second.learner.health()["models"]["churn_risk"]["labelled"] == 40
    await second.process(batch(50, 5))
    assert second.learner.scorer().models["churn_risk"].examples == 45


class FlakyLease(MemoryLease):
    """The in-memory lease with Redis unreachable while ``down`` (fault injection)."""

    down = False

    async def renew(self, owner: str, ttl: float) -> bool:
        if self.down:
            raise InfrastructureError("Redis failed: ConnectionError")
        return await super().renew(owner, ttl)


async def test_a_standby_waits_for_the_lease_and_takes_over_when_it_expires() -> None:
    clock = FixedClock(T0)
    lease = MemoryLease(clock)
    assert await lease.acquire("first", 30.0)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:  # time passes while the standby waits
        slept.append(seconds)
        clock.set(clock.now() + seconds)

    standby = LeaseKeeper(lease, "second", 30.0, clock)
    await standby.wait(sleep)
    assert await lease.holder() == "second"
    assert slept == [10.0, 10.0, 10.0], "it polls every third of the lease until it expires"


async def test_a_lost_lease_stops_publishing() -> None:
    clock = FixedClock(T0)
    lease = MemoryLease(clock)
    keeper = LeaseKeeper(lease, "first", 30.0, clock)
    await keeper.wait()  # taken for three periods first: Faust starts before the first renewal
    assert not await lease.acquire("second", 30.0)
    clock.set(T0 + 60)
    assert await keeper.renew()
    clock.set(T0 + 91)  # a long pause: the lease expired and another learner took it
    assert await lease.acquire("second", 30.0)
    assert not await keeper.renew() and keeper.lost
    assert not await keeper.renew(), "lost stays lost"
    await keeper.release()
    assert await lease.holder() == "second", "releasing a lost lease leaves the new holder alone"


async def test_snapshots_are_published_only_under_the_lease() -> None:
    """The fence: a learner that paused past its lease cannot publish over the new holder's
    snapshots, even before a renewal tells it."""
    clock = FixedClock(T0)
    lease = MemoryLease(clock)
    assert await lease.acquire("first", 30.0)
    snapshots = MemorySnapshotStore(fence=(lease, "first"))
    r = runner(snapshots, MemoryLabelStore())
    await r.start()
    await r.process(batch(0, 5))
    assert (await r.publish())["churn_risk"] == 1
    clock.set(T0 + 31)
    assert await lease.acquire("second", 30.0)
    await r.process(batch(5, 5))
    with pytest.raises(LeaseLostError):
        await r.publish()
    assert (await snapshots.numbers())["churn_risk"] == 1
    r.holding = False  # what the learner does once it knows
    assert await r.publish(force=True) == {}


async def test_redis_down_for_two_thirds_of_a_lease_period_counts_as_lost() -> None:
    clock = FixedClock(T0)
    lease = FlakyLease(clock)
    keeper = LeaseKeeper(lease, "first", 30.0, clock)
    await keeper.wait()
    lease.down = True
    clock.set(T0 + 10)
    assert await keeper.renew(), "a failed renewal within the period: keep going, retry"
    clock.set(T0 + 19)
    assert await keeper.renew()
    lease.down = False
    clock.set(T0 + 19.5)
    assert await keeper.renew() and not keeper.lost, "confirmed again in time"
    lease.down = True
    clock.set(T0 + 19.5 + 20)
    assert not await keeper.renew() and keeper.lost, "the next renewal could come too late"


async def test_the_keeper_on_a_new_client_keeps_what_was_confirmed() -> None:
    clock = FixedClock(T0)
    waiting = FlakyLease(clock)
    keeper = LeaseKeeper(waiting, "first", 30.0, clock)
    await keeper.wait()
    down = FlakyLease(clock)
    down.down = True
    keeper.rebind(down)
    clock.set(T0 + 25)
    assert not await keeper.renew(), "unconfirmed since the acquisition, not since the rebind"


async def test_a_graceful_stop_hands_the_lease_over_at_once() -> None:
    clock = FixedClock(T0)
    lease = MemoryLease(clock)
    first = LeaseKeeper(lease, "first", 30.0, clock)
    await first.wait()
    await first.release()
    assert await lease.acquire("second", 30.0)
