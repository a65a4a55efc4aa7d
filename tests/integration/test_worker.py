"""The real worker against the real Kafka and Redis: events in, alerts/actions/decisions out."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from engine.config import Settings
from tests.integration.harness import (
    WorkerProcess,
    create_topics,
    event_bytes,
    produce,
    read_topic,
    topic_role,
)

pytestmark = pytest.mark.integration


def churn_story(cid: str) -> list[dict[str, Any]]:
    """A basic-tier customer moves most of their money to another bank, then looks at closing."""
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
            "consent": {"sms": True, "rm_call": True},
        },
        {
            "event_id": f"{cid}-t1",
            "type": "transaction",
            "customer_id": cid,
            "account_id": f"{cid}-a",
            "ts": "2026-01-02T10:00:00+08:00",
            "amount": 150000.0,
            "currency": "CNY",
            "direction": "debit",
            "kind": "transfer_out",
            "channel": "mobile",
            "counterparty_bank": "ICBC",
            "balance_after": 50000.0,
        },
        {
            "event_id": f"{cid}-a1",
            "type": "app",
            "customer_id": cid,
            "session_id": "s1",
            "ts": "2026-01-02T10:05:00+08:00",
            "name": "page_view",
            "page": "account_closure",
        },
        {
            "event_id": f"{cid}-o1",
            "type": "outcome",
            "customer_id": cid,
            "ts": "2026-01-20T10:00:00+08:00",
            "label": "churned",
        },
    ]


def quiet_customer(cid: str) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"{cid}-t1",
            "type": "transaction",
            "customer_id": cid,
            "account_id": f"{cid}-a",
            "ts": "2026-01-02T10:00:00+08:00",
            "amount": 35.5,
            "currency": "CNY",
            "direction": "debit",
            "kind": "purchase",
            "channel": "pos",
            "balance_after": 8000.0,
        },
    ]


BAD_RECORDS: list[tuple[bytes, str]] = [
    (b"this is not json", "not_json"),
    (b"[1, 2, 3]", "not_an_object"),
    (
        b'{"event_id": "x1", "type": "wire", "customer_id": "c", "ts": "2026-01-01T00:00:00Z"}',
        "unknown_type",
    ),
    (
        b'{"event_id": "x2", "type": "app", "customer_id": "c", "ts": "2026-01-01T00:00:00Z"}',
        "missing_field",
    ),
    (
        b'{"event_id": "x3", "type": "app", "customer_id": "c", "ts": "2026-01-01T00:00:00",'
        b' "session_id": "s", "name": "login"}',
        "timestamp_without_offset",
    ),
    (
        b'{"event_id": "x4", "type": "app", "customer_id": "c", "ts": "2999-01-01T00:00:00Z",'
        b' "session_id": "s", "name": "login"}',
        "timestamp_in_future",
    ),
    (
        b'{"event_id": "x5", "type": "transaction", "customer_id": "c", "account_id": "a",'
        b' "ts": "2026-01-01T00:00:00Z", "amount": -5, "currency": "CNY", "direction": "debit",'
        b' "kind": "fee", "channel": "x"}',
        "invalid_amount",
    ),
    (
        b'{"event_id": "x6", "type": "transaction", "customer_id": "c", "account_id": "a",'
        b' "ts": "2026-01-01T00:00:00Z", "amount": 1e999, "currency": "CNY", "direction": "debit",'
        b' "kind": "fee", "channel": "x"}',
        "invalid_amount",
    ),
    (
        b'{"event_id": "x7", "type": "app", "customer_id": "c", "ts": "2026-01-01T00:00:00Z",'
        b' "session_id": "s", "name": "login", "pad": "' + b"x" * 70000 + b'"}',
        "payload_too_large",
    ),
]


@pytest.fixture
def worker_settings(
    unique: str, kafka_bootstrap: str, redis_url: str, settings_for: Callable[..., Settings]
) -> Settings:
    return settings_for(
        kafka={"topic_prefix": f"it{unique}.", "consumer_group": f"vigil-it-{unique}"},
        redis={"key_prefix": f"it{unique}"},
        worker={"metrics_port": 0, "batch_max": 50},
    )


@pytest.fixture
def start_worker(
    worker_settings: Settings,
    env_for_settings: Callable[[Settings], dict[str, str]],
    tmp_path: Path,
    cleanup: list[Callable[[], None]],
) -> Callable[[], WorkerProcess]:
    def start() -> WorkerProcess:
        w = WorkerProcess(env_for_settings(worker_settings), tmp_path / "worker.log").start()
        cleanup.append(w.kill)
        return w

    return start


@pytest.fixture
def redis_client(redis_url: str, worker_settings: Settings) -> Any:
    client = redis.Redis.from_url(redis_url)
    yield client
    keys = list(client.scan_iter(match=f"{worker_settings.redis.key_prefix}:*"))
    if keys:
        client.delete(*keys)


async def test_events_in_alerts_actions_decisions_out(
    worker_settings: Settings, start_worker: Callable[[], WorkerProcess], redis_client: Any
) -> None:
    s = worker_settings
    await create_topics(s)
    worker = start_worker()
    events = churn_story("c1") + quiet_customer("c2")
    # Topics are not ordered against each other: the profile is known before the postings come.
    await produce(s, [(topic_role(events[0]), b"c1", event_bytes(events[0]))])
    await read_topic(s, "decisions", lambda m: len(m) >= 1, timeout=90)
    await produce(
        s, ((topic_role(e), e["customer_id"].encode(), event_bytes(e)) for e in events[1:])
    )

    decisions = await read_topic(s, "decisions", lambda m: len(m) >= len(events), timeout=90)
    assert worker.alive(), worker.log_tail()
    assert sorted(d["event_id"] for d in decisions) == sorted(e["event_id"] for e in events)
    alerts = await read_topic(s, "alerts", lambda m: len(m) >= 3, timeout=10)
    rules = sorted(a["rule_id"] for a in alerts)
    assert rules == [
        "account_closure_page_visit",
        "aum_drop_30pct_from_peak",
        "transfers_out_over_half_aum_7d",
    ]
    assert all(a["customer_id"] == "c1" and a["ruleset_version"] for a in alerts)
    actions = await read_topic(s, "actions", lambda m: len(m) >= 1, timeout=10)
    assert actions and all(a["idempotency_key"].startswith(a["decision_id"]) for a in actions)
    assert {a["customer_id"] for a in actions} == {"c1"}
    # features are in the real Redis, under the hash-tagged customer keys
    assert redis_client.hget(f"{s.redis.key_prefix}:{{c1}}:s", "aum") == b"50000"
    worker.stop()


async def test_bad_input_goes_to_the_dlq_with_its_reason_and_good_input_is_processed(
    worker_settings: Settings, start_worker: Callable[[], WorkerProcess], redis_client: Any
) -> None:
    s = worker_settings
    await create_topics(s)
    worker = start_worker()
    good = quiet_customer("g1") + quiet_customer("g2") + quiet_customer("g3")
    records: list[tuple[str, bytes | None, bytes]] = []
    for i, (raw, _) in enumerate(BAD_RECORDS):
        records.append(("transactions" if i % 2 else "app", None, raw))
        if i < len(good):
            records.append(
                (topic_role(good[i]), good[i]["customer_id"].encode(), event_bytes(good[i]))
            )
    await produce(s, records)

    dlq = await read_topic(s, "dlq", lambda m: len(m) >= len(BAD_RECORDS), timeout=90)
    decisions = await read_topic(s, "decisions", lambda m: len(m) >= len(good), timeout=30)
    assert worker.alive(), worker.log_tail()
    assert sorted(d["reason"] for d in dlq) == sorted(r for _, r in BAD_RECORDS)
    for d in dlq:
        assert d["source"]["topic"].startswith(s.kafka.topic_prefix)
        assert d["source"]["offset"] >= 0 and d["message"]
    assert {base64.b64decode(d["original_b64"]) for d in dlq} == {raw for raw, _ in BAD_RECORDS}
    assert sorted(d["event_id"] for d in decisions) == sorted(e["event_id"] for e in good)
    worker.stop()


async def test_a_restarted_worker_resumes_from_its_committed_offsets(
    worker_settings: Settings, start_worker: Callable[[], WorkerProcess], redis_client: Any
) -> None:
    s = worker_settings
    await create_topics(s)
    first = quiet_customer("r1") + quiet_customer("r2")
    second = [
        dict(e, event_id=e["event_id"] + "-b") for e in quiet_customer("r1") + quiet_customer("r3")
    ]
    worker = start_worker()
    await produce(s, ((topic_role(e), e["customer_id"].encode(), event_bytes(e)) for e in first))
    await read_topic(s, "decisions", lambda m: len(m) >= len(first), timeout=90)
    assert worker.stop() == 0 or not worker.alive()

    await produce(s, ((topic_role(e), e["customer_id"].encode(), event_bytes(e)) for e in second))
    worker = start_worker()
    total = len(first) + len(second)
    decisions = await read_topic(s, "decisions", lambda m: len(m) >= total, timeout=90)
    # give a wrongly re-read backlog time to show up
    decisions = await read_topic(s, "decisions", lambda m: len(m) > total, timeout=5)
    assert worker.alive(), worker.log_tail()
    assert sorted(d["event_id"] for d in decisions) == sorted(e["event_id"] for e in first + second)
    assert all(d["state_status"] == "applied" for d in decisions)
    worker.stop()
