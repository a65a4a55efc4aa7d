"""The DecisionPipeline with its in-memory twins: ordering, DLQ, audit, idempotent redelivery."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from engine.clock import FixedClock
from engine.config import Settings
from engine.dead_letter import InputRecord
from engine.errors import InfrastructureError
from engine.ports import OutRecord
from engine.sinks import MemorySink
from engine.wiring import build_pipeline, store_limits
from features.memory_store import MemoryStateStore
from streams.agents import process_with_retry

NOW = 1_800_000_000.0


def churn_events(cid: str = "c1") -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"{cid}-p",
            "type": "profile",
            "customer_id": cid,
            "ts": "2026-01-01T09:00:00+08:00",
            "aum": 200000.0,
            "segment": "family",
            "timezone": "Asia/Shanghai",
            "rm_id": "rm7",
        },
        {
            "event_id": f"{cid}-t1",
            "type": "transaction",
            "customer_id": cid,
            "account_id": "a",
            "ts": "2026-01-02T10:00:00+08:00",
            "amount": 140000.0,
            "currency": "CNY",
            "direction": "debit",
            "kind": "transfer_out",
            "channel": "mobile",
            "counterparty_bank": "ICBC",
            "balance_after": 60000.0,
        },
        {
            "event_id": f"{cid}-t2",
            "type": "transaction",
            "customer_id": cid,
            "account_id": "a",
            "ts": "2026-01-02T11:00:00+08:00",
            "amount": 10.0,
            "currency": "CNY",
            "direction": "debit",
            "kind": "fee",
            "channel": "branch",
            "balance_after": 59990.0,
        },
    ]


def records(events: Sequence[dict[str, Any] | bytes]) -> list[InputRecord]:
    return [
        InputRecord(e if isinstance(e, bytes) else orjson.dumps(e), "events.x", 0, i, NOW - 0.01)
        for i, e in enumerate(events)
    ]


@pytest.fixture
def world() -> tuple[Any, MemorySink, MemoryStateStore]:
    settings = Settings()
    sink = MemorySink()
    store = MemoryStateStore(store_limits(settings))
    pipeline, _ = build_pipeline(settings, sink, store=store, clock=FixedClock(NOW))
    return pipeline, sink, store


async def test_every_valid_event_gets_one_decision_and_bad_ones_a_dead_letter(world: Any) -> None:
    pipeline, sink, _ = world
    result = await pipeline.process(records([*churn_events(), b"oops", b"{}"]))
    assert [d["event_id"] for d in sink.values("decisions")] == ["c1-p", "c1-t1", "c1-t2"]
    assert sorted(d["reason"] for d in sink.values("dlq")) == ["not_json", "unknown_type"]
    assert [d["source"]["offset"] for d in sink.values("dlq")] == [3, 4]
    assert result.dead_letters == 2


async def test_a_churn_story_raises_alerts_once_per_cooldown(world: Any) -> None:
    pipeline, sink, _ = world
    await pipeline.process(records(churn_events()))
    alerts = sink.values("alerts")
    assert sorted(a["rule_id"] for a in alerts) == [
        "aum_drop_30pct_from_peak",
        "transfers_out_over_half_aum_7d",
    ]
    assert {a["event_id"] for a in alerts} == {"c1-t1"}  # t2 is within the cooldown
    decision = sink.values("decisions")[2]
    suppressed = {s["rule_id"]: s["reason"] for s in decision["rules"]["suppressed"]}
    assert suppressed == {
        "aum_drop_30pct_from_peak": "cooldown",
        "transfers_out_over_half_aum_7d": "cooldown",
    }


async def test_the_audit_record_explains_the_decision(world: Any) -> None:
    pipeline, sink, _ = world
    await pipeline.process(records(churn_events()))
    record = sink.values("decisions")[1]
    assert record["features"]["aum_drop_from_peak_30d_pct"] == pytest.approx(70.0)
    assert record["scores"]["churn_risk"]["cold"] is True
    assert record["ruleset_version"] and record["actions"]["catalog_version"]
    fired = {f["rule_id"]: f["values"] for f in record["rules"]["fired"]}
    assert fired["transfers_out_over_half_aum_7d"]["transfer_out_other_bank_7d"] == 140000.0
    candidates = record["actions"]["candidates"]
    assert [c["status"] for c in candidates].count("chosen") == 1
    assert candidates == sorted(candidates, key=lambda c: -c["priority"])
    action = sink.values("actions")[0]
    assert action["idempotency_key"] == f"{record['decision_id']}:{action['action_id']}"
    assert record["input"]["counterparty_bank"] == "ICBC"


async def test_a_redelivered_batch_yields_the_same_messages(world: Any) -> None:
    pipeline, sink, _ = world
    batch = records(churn_events())
    await pipeline.process(batch)
    first = {role: list(sink.values(role)) for role in ("alerts", "actions", "decisions")}
    sink.records.clear()
    result = await pipeline.process(batch)
    assert result.duplicates == 3
    assert [a["alert_id"] for a in sink.values("alerts")] == [
        a["alert_id"] for a in first["alerts"]
    ]
    assert sink.values("actions") == first["actions"]
    assert [d["rules"] for d in sink.values("decisions")] == [
        d["rules"] for d in first["decisions"]
    ]


async def test_contact_policy_suppresses_opted_out_customers(world: Any) -> None:
    pipeline, sink, _ = world
    events = churn_events()
    events[0] = {**events[0], "opted_out": True}
    await pipeline.process(records(events))
    assert sink.values("actions") == []
    statuses = {c["status"] for c in sink.values("decisions")[1]["actions"]["candidates"]}
    assert statuses == {"opted_out"}


class FlakyStore(MemoryStateStore):
    def __init__(self, failures: int, *args: Any) -> None:
        super().__init__(*args)
        self.failures = failures

    async def apply(self, updates: Any, wall: float) -> Any:
        if self.failures:
            self.failures -= 1
            raise InfrastructureError("redis is restarting")
        return await super().apply(updates, wall)


class FlakySink(MemorySink):
    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def emit(self, out: Sequence[OutRecord]) -> None:
        if self.failures:
            self.failures -= 1
            raise InfrastructureError("kafka is restarting")
        await super().emit(out)


async def test_infrastructure_errors_retry_the_batch_without_loss_or_double_counting() -> None:
    settings = Settings()
    sink = FlakySink(failures=2)
    store = FlakyStore(2, store_limits(settings))
    pipeline, _ = build_pipeline(settings, sink, store=store, clock=FixedClock(NOW))
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    await process_with_retry(
        pipeline.process, records(churn_events()), backoff_max=1.0, sleep=sleep
    )
    assert len(pauses) == 4 and pauses == sorted(pauses)
    assert [d["event_id"] for d in sink.values("decisions")] == ["c1-p", "c1-t1", "c1-t2"]
    state = await store.read("c1")
    assert state is not None and state.features["tx_count_7d"] == 2.0  # applied once


async def test_the_pipeline_counts_into_prometheus_and_replay_counts_nothing() -> None:
    from prometheus_client import REGISTRY

    from engine.metrics import NoMetrics

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    def counts() -> tuple[float, ...]:
        return (
            sample("vigil_events_total", type="transaction", result="applied"),
            sample("vigil_alerts_total", type="asset_drop", rule="aum_drop_30pct_from_peak"),
            sample("vigil_suppressions_total", reason="cooldown"),
            sample("vigil_dlq_total", reason="not_json"),
            sample("vigil_end_to_end_seconds_count"),
            sample("vigil_stage_seconds_count", stage="decide"),
        )

    settings = Settings()
    for metrics, expected in ((None, (2, 1, 2, 1, 3, 1)), (NoMetrics(), (0,) * 6)):
        before = counts()
        store = MemoryStateStore(store_limits(settings))
        pipeline, _ = build_pipeline(
            settings, MemorySink(), store=store, clock=FixedClock(NOW), metrics=metrics
        )
        await pipeline.process(records([*churn_events(), b"oops"]))
        assert tuple(a - b for a, b in zip(counts(), before, strict=True)) == expected
