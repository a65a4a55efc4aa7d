"""One contract suite for the StateStore port, run on the in-memory twin and on real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from engine.ports import StateStore, StoreLimits
from engine.types import Contact, Effects, Fired, StateUpdate
from features.definitions import DAY, HOUR, ops_for_dict
from features.memory_store import MemoryStateStore
from features.redis_store import RedisStateStore

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
LIMITS = StoreLimits(
    dedup_horizon=7 * DAY, allowed_lateness=HOUR, result_retention=3600, ttl=86400 * 30
)


def tx(
    event_id: str,
    ts: float,
    amount: float,
    *,
    direction: str = "debit",
    kind: str = "purchase",
    balance: float | None = None,
    bank: str | None = None,
    customer: str = "c1",
) -> StateUpdate:
    ev: dict[str, Any] = {
        "type": "transaction",
        "amount": amount,
        "direction": direction,
        "kind": kind,
        "account_id": "a1",
        "counterparty_bank": bank,
        "balance_after": balance,
    }
    return StateUpdate(customer, event_id, ts, ops_for_dict(ev))


def profile(event_id: str, ts: float, customer: str = "c1", **fields: Any) -> StateUpdate:
    return StateUpdate(customer, event_id, ts, ops_for_dict({"type": "profile", **fields}))


@pytest_asyncio.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, unique: str) -> AsyncIterator[StateStore]:
    if request.param == "memory":
        yield MemoryStateStore(LIMITS)
        return
    url = request.getfixturevalue("redis_url")
    client = aioredis.Redis.from_url(url)
    s = RedisStateStore(client, LIMITS, prefix=f"test{unique}")
    yield s
    keys = [k async for k in client.scan_iter(match=f"test{unique}:*")]
    if keys:
        await client.delete(*keys)
    await s.close()


async def test_windows_sum_amounts_by_event_time(store: StateStore) -> None:
    states = await store.apply(
        [tx("e1", T0, 100.0), tx("e2", T0 + 2 * HOUR, 50.0), tx("e3", T0 + 3 * DAY, 25.0)], wall=0.0
    )
    last = states[-1].features
    assert last["outflow_1h"] == 25.0
    assert last["outflow_7d"] == 175.0
    assert last["tx_count_7d"] == 3.0
    assert states[1].features["outflow_24h"] == 150.0


async def test_apply_is_idempotent_on_event_id(store: StateStore) -> None:
    first = await store.apply([tx("e1", T0, 100.0)], wall=0.0)
    again = await store.apply([tx("e1", T0, 100.0)], wall=1.0)
    assert first[0].status == "applied"
    assert again[0].status == "duplicate"
    assert again[0].features == first[0].features
    later = await store.apply([tx("e2", T0 + 60, 1.0)], wall=2.0)
    assert later[0].features["outflow_1h"] == 101.0


async def test_redelivered_event_returns_its_first_result(store: StateStore) -> None:
    await store.apply([tx("e1", T0, 100.0), tx("e2", T0 + 10, 7.0)], wall=0.0)
    again = await store.apply([tx("e1", T0, 100.0)], wall=5.0)
    assert again[0].status == "duplicate"
    assert again[0].features["outflow_1h"] == 100.0  # as first decided, not 107


async def test_events_beyond_lateness_are_marked_late_and_still_counted(store: StateStore) -> None:
    await store.apply([tx("e1", T0 + 5 * HOUR, 10.0)], wall=0.0)
    late = await store.apply([tx("e0", T0, 99.0)], wall=0.0)
    assert late[0].status == "late"
    assert late[0].features["outflow_24h"] == 109.0
    assert late[0].features["outflow_1h"] == 10.0


async def test_events_beyond_the_dedup_horizon_change_nothing(store: StateStore) -> None:
    await store.apply([tx("e1", T0 + 8 * DAY, 10.0)], wall=0.0)
    old = await store.apply([tx("e0", T0, 99.0)], wall=0.0)
    assert old[0].status == "too_late"
    assert old[0].features["outflow_30d"] == 10.0
    again = await store.apply([tx("e0", T0, 99.0)], wall=0.0)
    assert again[0].status == "too_late"  # never recorded, so never a duplicate either


async def test_outcomes_do_not_move_the_watermark(store: StateStore) -> None:
    label = StateUpdate("c1", "o1", T0 + 20 * DAY, ())
    await store.apply([tx("e1", T0, 10.0), label], wall=0.0)
    state = (await store.apply([tx("e2", T0 + HOUR, 5.0)], wall=0.0))[0]
    assert state.status == "applied"
    assert state.features["outflow_24h"] == 15.0


async def test_out_of_order_within_lateness_lands_in_its_bucket(store: StateStore) -> None:
    await store.apply([tx("e2", T0 + 30 * 60, 10.0)], wall=0.0)
    state = (await store.apply([tx("e1", T0 - 10 * 60, 5.0)], wall=0.0))[0]
    assert state.status == "applied"
    assert state.features["outflow_24h"] == 15.0
    assert state.features["outflow_1h"] == 10.0  # the earlier event is in the previous hour


async def test_old_buckets_expire(store: StateStore) -> None:
    await store.apply([tx("e1", T0, 10.0)], wall=0.0)
    state = (await store.apply([tx("e2", T0 + 100 * DAY, 1.0)], wall=0.0))[0]
    assert state.features["outflow_90d"] == 1.0


async def test_aum_from_profile_then_balances(store: StateStore) -> None:
    states = await store.apply(
        [
            profile("p1", T0, aum=100_000.0, segment="family", consent={"sms": False}),
            tx("e1", T0 + 10, 5_000.0, balance=20_000.0, kind="transfer_out", bank="ICBC"),
            tx("e2", T0 + 20, 40_000.0, balance=60_000.0, direction="credit", kind="wealth_redeem"),
            tx("e3", T0 + 30, 50_000.0, balance=10_000.0, kind="withdrawal"),
        ],
        wall=0.0,
    )
    aums = [s.features["aum"] for s in states]
    assert aums == [100_000.0, 95_000.0, 95_000.0, 45_000.0]
    last = states[-1]
    assert last.features["aum_peak_30d"] == 100_000.0
    assert last.features["aum_drop_from_peak_30d_pct"] == pytest.approx(55.0)
    assert last.features["transfer_out_other_bank_7d"] == 5_000.0
    assert last.profile["segment"] == "family"
    assert last.profile["consent_sms"] == "0"


async def test_effects_are_idempotent_and_keep_the_newest_fire(store: StateStore) -> None:
    await store.apply([tx("e1", T0, 1.0)], wall=0.0)
    contact = Contact(T0, "sms", "d1", "sms_offer")
    newer = Effects("c1", {"r1": Fired(T0 + 100, "d2")}, (contact,))
    older = Effects("c1", {"r1": Fired(T0, "d1")}, (contact,))
    await store.commit([newer])
    await store.commit([older, newer])
    state = await store.read("c1")
    assert state is not None
    assert state.fired["r1"] == Fired(T0 + 100, "d2")
    assert state.contacts == (contact,)


async def test_read_changes_nothing_and_unknown_is_none(store: StateStore) -> None:
    assert await store.read("nobody") is None
    applied = (await store.apply([tx("e1", T0, 3.0)], wall=0.0))[0]
    read1 = await store.read("c1")
    read2 = await store.read("c1")
    assert read1 == read2
    assert read1 is not None and read1.features == applied.features


async def test_customers_are_independent(store: StateStore) -> None:
    states = await store.apply(
        [tx("e1", T0, 3.0, customer="a"), tx("e1", T0, 4.0, customer="b")], wall=0.0
    )
    assert [s.status for s in states] == ["applied", "applied"]
    assert [s.features["outflow_1h"] for s in states] == [3.0, 4.0]


async def test_a_redelivery_sees_effects_committed_since_its_first_run(store: StateStore) -> None:
    await store.apply([tx("e1", T0, 100.0), tx("e2", T0 + 60, 5.0)], wall=0.0)
    contact = Contact(T0, "sms", "d1", "sms_offer")
    await store.commit([Effects("c1", {"r1": Fired(T0, "d1")}, (contact,))])
    again = await store.apply([tx("e2", T0 + 60, 5.0)], wall=1.0)
    assert again[0].status == "duplicate"
    assert again[0].features["outflow_1h"] == 105.0  # features as first decided
    assert again[0].fired == {"r1": Fired(T0, "d1")}  # but cooldowns and contacts as now
    assert again[0].contacts == (contact,)


async def test_daily_capacity_is_counted_once_per_reservation(store: StateStore) -> None:
    from actions.policy import CapacityReservation

    day = ("rm_call", "2026-01-01")
    other = ("rm_call", "2026-01-02")
    _, before = await store.apply_with_capacity([tx("e1", T0, 1.0)], 0.0, [day, other])
    assert before == {day: 0, other: 0}
    first = CapacityReservation("rm_call", "2026-01-01", "d1:rm_call_retention")
    second = CapacityReservation("rm_call", "2026-01-01", "d2:rm_call_retention")
    await store.commit([], [first, second])
    await store.commit([], [first])  # a redelivered decision reserves nothing more
    states, after = await store.apply_with_capacity([tx("e2", T0 + 1, 1.0)], 0.0, [day, other])
    assert after == {day: 2, other: 0}
    assert states[0].features["tx_count_1h"] == 2.0
