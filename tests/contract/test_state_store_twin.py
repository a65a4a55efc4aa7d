"""Property: the in-memory twin and Redis return identical states for any stream, with
duplicates and disorder (hypothesis generates the streams)."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.types import StateUpdate
from features.definitions import DAY, HOUR, ops_for_dict
from features.memory_store import MemoryStateStore
from features.redis_store import RedisStateStore
from tests.contract.test_state_store import LIMITS, T0

KINDS = [
    "purchase",
    "salary",
    "transfer_out",
    "transfer_in",
    "wealth_buy",
    "wealth_redeem",
    "withdrawal",
]


@st.composite
def event(draw: st.DrawFn, index: int) -> StateUpdate:
    customer = draw(st.sampled_from(["c1", "c2"]))
    ts = T0 + draw(st.integers(0, 100 * DAY // 600)) * 600.0 + draw(st.sampled_from([0.0, 0.25]))
    kind = draw(st.sampled_from(["transaction", "transaction", "app", "app", "profile", "outcome"]))
    if kind == "transaction":
        tx_kind = draw(st.sampled_from(KINDS))
        ev = {
            "type": "transaction",
            "amount": draw(st.floats(0.01, 1e6, allow_nan=False)),
            "direction": "credit"
            if tx_kind in ("salary", "transfer_in", "wealth_redeem")
            else "debit",
            "kind": tx_kind,
            "account_id": draw(st.sampled_from(["a1", "a2"])),
            "counterparty_bank": draw(st.sampled_from([None, "ICBC", "SELF"])),
            "balance_after": draw(st.one_of(st.none(), st.floats(0, 1e7, allow_nan=False))),
        }
    elif kind == "app":
        ev = {
            "type": "app",
            "name": draw(st.sampled_from(["login", "page_view", "complaint", "login_failed"])),
            "page": draw(
                st.sampled_from([None, "account_closure", "home", "transfer_out", "product_redeem"])
            ),
            "session_id": draw(st.sampled_from(["s1", "s2", "s3", "s4", "s5"])),
        }
    elif kind == "outcome":
        ev = {"type": "outcome", "label": "churned"}
    else:
        ev = {
            "type": "profile",
            "aum": draw(st.one_of(st.none(), st.floats(0, 1e7, allow_nan=False))),
            "segment": draw(st.sampled_from([None, "family", "retiree"])),
            "consent": draw(
                st.dictionaries(st.sampled_from(["sms", "push", "rm_call"]), st.booleans())
            ),
            "opted_out": draw(st.sampled_from([None, True, False])),
        }
    return StateUpdate(customer, f"e{index}", ts, ops_for_dict(ev))


@st.composite
def streams(draw: st.DrawFn) -> list[StateUpdate]:
    n = draw(st.integers(1, 40))
    events = [draw(event(i)) for i in range(n)]
    # sort mostly by time, then shuffle a little and duplicate some
    events.sort(key=lambda e: e.ts + draw(st.sampled_from([0, 1, -1, 2, -2, 30, -30, 80])) * HOUR)
    dupes = draw(st.lists(st.sampled_from(events), max_size=8))
    out = list(events)
    for d in dupes:
        out.insert(draw(st.integers(0, len(out))), d)
    return out


async def _drop_keys(client: aioredis.Redis, prefix: str) -> None:
    """Delete every key under ``prefix`` (a run's own keys, before and after it)."""
    keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await client.delete(*keys)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(stream=streams())
def test_twin_equals_redis(stream: list[StateUpdate], redis_url: str, unique: str) -> None:
    async def run() -> None:
        client = aioredis.Redis.from_url(redis_url)
        prefix = f"prop{unique}"
        redis_store = RedisStateStore(client, LIMITS, prefix=prefix)
        memory = MemoryStateStore(LIMITS)
        try:
            await _drop_keys(client, prefix)
            half = len(stream) // 2
            for part in (stream[:half], stream[half:]):
                a = await redis_store.apply(part, wall=0.0)
                b = await memory.apply(part, wall=0.0)
                assert a == b
            # later, stored results have expired: duplicates are read on the current state
            late = stream[: len(stream) // 3]
            a = await redis_store.apply(late, wall=LIMITS.result_retention + 1.0)
            b = await memory.apply(late, wall=LIMITS.result_retention + 1.0)
            assert a == b
            for cid in ("c1", "c2"):
                assert await redis_store.read(cid) == await memory.read(cid)
        finally:
            await _drop_keys(client, prefix)
            await redis_store.close()

    asyncio.run(run())


def _tx(event_id: str, ts: float, **extra: object) -> StateUpdate:
    ev = {
        "type": "transaction",
        "amount": 100.0,
        "direction": "debit",
        "kind": "purchase",
        "account_id": "a1",
        **extra,
    }
    return StateUpdate("c1", event_id, ts, ops_for_dict(ev))


def _same_on_both(steps: list[list[StateUpdate]], redis_url: str, unique: str) -> None:
    """Apply the batches to Redis and to the twin; states (features in the same key order),
    then a read, must be equal."""

    async def run() -> None:
        client = aioredis.Redis.from_url(redis_url)
        prefix = f"fix{unique}"
        redis_store = RedisStateStore(client, LIMITS, prefix=prefix)
        memory = MemoryStateStore(LIMITS)
        try:
            for batch in steps:
                a = await redis_store.apply(batch, wall=0.0)
                b = await memory.apply(batch, wall=0.0)
                assert a == b
                assert [list(x.features) for x in a] == [list(x.features) for x in b]
            assert await redis_store.read("c1") == await memory.read("c1")
        finally:
            await _drop_keys(client, prefix)
            await redis_store.close()

    asyncio.run(run())


def test_a_redelivery_with_a_later_time_then_an_earlier_read(redis_url: str, unique: str) -> None:
    """Found in review: the duplicate is read at its own (later) hour, the next event at the
    watermark's hour again: the 1 h window must count the first event again."""
    outcome = StateUpdate("c1", "o", T0 + 0.6 * HOUR, ())
    steps = [[_tx("x", T0 + 0.5 * HOUR)], [_tx("x", T0 + 1.5 * HOUR)], [outcome]]
    _same_on_both(steps, redis_url, unique)
    steps = [[_tx("x", T0 + 1.5 * HOUR)], [_tx("x", T0 + 2.5 * HOUR)], [_tx("y", T0 + 1.7 * HOUR)]]
    _same_on_both(steps, redis_url, f"{unique}b")


def test_aum_beyond_fifteen_digits_is_rounded_as_the_script_keeps_it(
    redis_url: str, unique: str
) -> None:
    """Found in review: the script keeps AUM as %.15g text; the twin must round the same way."""
    profile = StateUpdate(
        "c1", "p", T0, ops_for_dict({"type": "profile", "aum": 12345678901234.56})
    )
    steps = [[profile], [_tx("t1", T0 + HOUR, balance_after=None)], [_tx("t2", T0 + 8 * DAY)]]
    _same_on_both(steps, redis_url, unique)
