"""Rules inside the real DecisionPipeline (in-memory twins): what an alert carries, cooldowns
across batches and within one, and the rule-set version every alert and decision is made under."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.clock import FixedClock
from engine.config import Settings
from engine.dead_letter import InputRecord
from engine.sinks import MemorySink
from engine.wiring import build_pipeline, store_limits
from features.memory_store import MemoryStateStore
from online_models.catalog import model_names
from rules.loader import load_rules
from rules.reload import RuleSetHolder

DEFAULT = Path(__file__).resolve().parents[2] / "rules" / "default"
NOW = 1_800_000_000.0  # the wall clock: after every event below
DAY = 86400.0


def at(day: float, hour: int = 10) -> str:
    """2026-01-01 plus ``day`` days, at ``hour`` UTC, as an event timestamp."""
    base = datetime(2026, 1, 1, hour, tzinfo=UTC).timestamp()
    return datetime.fromtimestamp(base + day * DAY, tz=UTC).isoformat()


def profile(cid: str, aum: float) -> dict[str, Any]:
    return {
        "event_id": f"{cid}-p",
        "type": "profile",
        "customer_id": cid,
        "ts": at(0, 8),
        "aum": aum,
        "segment": "family",
        "timezone": "Asia/Shanghai",
        "rm_id": "rm7",
    }


def transfer(cid: str, n: int, day: float, amount: float, balance: float) -> dict[str, Any]:
    return {
        "event_id": f"{cid}-t{n}",
        "type": "transaction",
        "customer_id": cid,
        "account_id": f"{cid}-a",
        "ts": at(day),
        "amount": amount,
        "currency": "CNY",
        "direction": "debit",
        "kind": "transfer_out",
        "channel": "mobile",
        "counterparty_bank": "ICBC",
        "balance_after": balance,
    }


def records(events: list[dict[str, Any]]) -> list[InputRecord]:
    return [InputRecord(orjson.dumps(e), "events.x", 0, i, NOW) for i, e in enumerate(events)]


@pytest.fixture
def rules_folder(tmp_path: Path) -> Path:
    copy = tmp_path / "rules"
    shutil.copytree(DEFAULT, copy)
    return copy


@pytest.fixture
def world(
    rules_folder: Path, settings_for: Callable[..., Settings]
) -> tuple[Any, MemorySink, RuleSetHolder]:
    settings = settings_for(rules_dir=str(rules_folder))
    sink = MemorySink()
    store = MemoryStateStore(store_limits(settings))
    pipeline, holder = build_pipeline(settings, sink, store=store, clock=FixedClock(NOW))
    return pipeline, sink, holder


async def test_an_alert_carries_everything_that_explains_it(world: Any) -> None:
    pipeline, sink, holder = world
    await pipeline.process(records([profile("c1", 200000.0), transfer("c1", 1, 1, 150000, 50000)]))
    alerts = {a["rule_id"]: a for a in sink.values("alerts")}
    assert set(alerts) == {"aum_drop_30pct_from_peak", "transfers_out_over_half_aum_7d"}
    alert = alerts["transfers_out_over_half_aum_7d"]
    assert alert["alert_id"].startswith("a-") and alert["customer_id"] == "c1"
    assert (alert["type"], alert["severity"]) == ("churn_risk", "high")
    # the rule-set version is the content hash of the folder the worker loaded
    assert alert["ruleset_version"] == holder.version == load_rules(DEFAULT, model_names()).version
    # the conditions' values, as they were when the rule held
    assert alert["conditions"] == {
        "transfer_out_other_bank_7d": 150000.0,
        "transfer_out_other_bank_share_7d": pytest.approx(0.75),
    }
    assert alert["reason"] == (
        "150,000 moved to other banks in 7 days (75% of the 30-day peak AUM of 200,000)"
    )
    assert set(alert["scores"]) == set(model_names())
    assert all(0.0 <= v <= 1.0 for v in alert["scores"].values())
    assert alert["event_time"] == "2026-01-02T10:00:00.000+00:00"
    assert alert["decision_time"] == datetime.fromtimestamp(NOW, tz=UTC).isoformat(
        timespec="milliseconds"
    )
    drop = alerts["aum_drop_30pct_from_peak"]
    assert drop["conditions"] == {"aum_drop_from_peak_30d_pct": 75.0, "aum_peak_30d": 200000.0}
    assert drop["reason"] == "AUM 50,000 is 75% below its 30-day peak of 200,000"
    # the decision's audit record says the same, under the same version
    record = sink.values("decisions")[1]
    assert record["ruleset_version"] == holder.version
    fired = {f["rule_id"]: f for f in record["rules"]["fired"]}
    assert fired["aum_drop_30pct_from_peak"]["values"] == drop["conditions"]
    assert record["rules"]["errors"] == []


async def test_at_most_one_alert_per_customer_per_rule_per_cooldown(world: Any) -> None:
    pipeline, sink, _ = world
    # batch 1: the drop fires
    await pipeline.process(records([profile("c1", 200000.0), transfer("c1", 1, 1, 150000, 50000)]))
    # batch 2, a day later: still 75% down, inside the 7-day cooldown (state from the store)
    await pipeline.process(records([transfer("c1", 2, 2, 1000, 49000)]))
    # batch 3, two events in one batch, 9 and 10 days later: the first fires, the second waits
    await pipeline.process(
        records([transfer("c1", 3, 9, 1000, 48000), transfer("c1", 4, 10, 1000, 47000)])
    )
    drops = [a for a in sink.values("alerts") if a["rule_id"] == "aum_drop_30pct_from_peak"]
    assert [a["event_id"] for a in drops] == ["c1-t1", "c1-t3"]
    suppressed = {
        d["event_id"]: {s["rule_id"]: s["reason"] for s in d["rules"]["suppressed"]}
        for d in sink.values("decisions")
    }
    assert suppressed["c1-t2"]["aum_drop_30pct_from_peak"] == "cooldown"
    assert suppressed["c1-t4"]["aum_drop_30pct_from_peak"] == "cooldown"
    # another customer is not held back by c1's cooldown
    await pipeline.process(records([profile("c2", 300000.0), transfer("c2", 1, 1, 200000, 100000)]))
    assert [a["customer_id"] for a in sink.values("alerts")[-2:]] == ["c2", "c2"]


async def test_a_redelivered_event_re_raises_the_same_alert_not_a_new_one(world: Any) -> None:
    pipeline, sink, _ = world
    batch = records([profile("c1", 200000.0), transfer("c1", 1, 1, 150000, 50000)])
    await pipeline.process(batch)
    first = sorted(a["alert_id"] for a in sink.values("alerts"))
    sink.records.clear()
    await pipeline.process(batch)
    assert sorted(a["alert_id"] for a in sink.values("alerts")) == first


async def test_alerts_and_decisions_carry_the_version_they_were_made_under(
    world: Any, rules_folder: Path
) -> None:
    pipeline, sink, holder = world
    await pipeline.process(records([profile("c1", 200000.0)]))
    old = holder.version
    (rules_folder / "outflows.yaml").write_text(
        "version: 1\nrules:\n"
        "  - id: big_single_outflow\n"
        "    description: One debit of 100,000 or more in 24 hours.\n"
        "    alert_type: asset_drop\n"
        "    severity: medium\n"
        "    when: max_outflow_24h >= 100000\n"
        '    reason: "a debit of {max_outflow_24h:,.0f}"\n'
    )
    assert holder.check() is True and holder.version != old
    await pipeline.process(records([transfer("c1", 1, 1, 150000, 50000)]))
    alerts = {a["rule_id"]: a for a in sink.values("alerts")}
    assert alerts["big_single_outflow"]["reason"] == "a debit of 150,000"
    assert {a["ruleset_version"] for a in alerts.values()} == {holder.version}
    versions = [d["ruleset_version"] for d in sink.values("decisions")]
    assert versions == [old, holder.version]
    # a broken file is refused: the next batch is still decided under the same version
    (rules_folder / "broken.yaml").write_text("version: 1\nrules:\n  - id: [\n")
    assert holder.check() is False and holder.last_error is not None
    await pipeline.process(records([transfer("c1", 2, 2, 10, 49990)]))
    assert sink.values("decisions")[-1]["ruleset_version"] == holder.version
