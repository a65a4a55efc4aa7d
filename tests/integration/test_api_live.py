"""The API on the real Kafka and Redis: the topic consumer feeds the alert stream and the index,
streams resume across an API restart, webhooks are signed, retried and dead-lettered against a
real receiver on 127.0.0.1, and two replicas share the work without doubling it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from api.auth import hash_key
from api.main import create_app
from api.options import ApiOptions
from api.testing import WebhookReceiver, serve, sse_events
from engine.config import Settings
from tests.integration.harness import create_topics, produce

pytestmark = pytest.mark.integration
KEY = {"Authorization": "Bearer live-key"}
SECRET = "webhook-secret-0123456789"
OPTIONS = ApiOptions(
    webhook_max_attempts=3,
    webhook_backoff_base_seconds=0.2,
    webhook_backoff_max_seconds=1.0,
    webhook_timeout_seconds=2.0,
    webhook_poll_seconds=0.05,
    webhook_lease_seconds=5.0,
    stream_heartbeat_seconds=0.5,
    ready_cache_seconds=0.0,
)


@pytest.fixture
async def live_settings(
    unique: str,
    kafka_bootstrap: str,
    redis_url: str,
    settings_for: Callable[..., Settings],
) -> AsyncIterator[Settings]:
    settings = settings_for(
        kafka={"topic_prefix": f"api{unique}.", "partitions": 2},
        redis={"key_prefix": f"api{unique}"},
        api={"api_keys": f"live:read+subscribe+admin:{hash_key('live-key')}"},
    )
    await create_topics(settings)
    yield settings
    client = aioredis.Redis.from_url(redis_url)
    keys = [k async for k in client.scan_iter(match=f"api{unique}:*", count=500)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@asynccontextmanager
async def running_api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, options=OPTIONS)
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        client.app = app  # type: ignore[attr-defined]
        yield client


def alert(n: int, customer: str = "c1", **fields: Any) -> dict[str, Any]:
    return {
        "alert_id": f"a{n}",
        "decision_id": f"d{n}",
        "event_id": f"e{n}",
        "customer_id": customer,
        "type": "churn_risk",
        "severity": "high",
        "rule_id": "r1",
        "ruleset_version": "v1",
        "reason": "large transfer out",
        "conditions": {"amount": 150000.0},
        "scores": {"churn_risk": 0.4},
        "tier": "basic",
        "rm_id": "rm7",
        "event_time": "2026-01-02T02:00:00.000+00:00",
        "decision_time": "2026-01-02T02:00:00.100+00:00",
        **fields,
    }


def decision(n: int, customer: str = "c1") -> dict[str, Any]:
    return {
        "decision_id": f"d{n}",
        "event_id": f"e{n}",
        "customer_id": customer,
        "event_type": "transaction",
        "event_time": "2026-01-02T02:00:00.000+00:00",
        "decision_time": "2026-01-02T02:00:00.100+00:00",
        "state_status": "applied",
        "scores": {"churn_risk": {"score": 0.4, "version": "v1", "cold": True}},
        "rules": {
            "fired": [{"rule_id": "r1", "reason": "large transfer out", "values": {"amount": 1}}],
            "suppressed": [],
            "errors": [],
        },
        "alerts": [f"a{n}"],
        "actions": {"chosen": [], "lead_grade": "none", "candidates": []},
    }


async def publish(settings: Settings, *alerts: dict[str, Any]) -> None:
    await produce(
        settings,
        [
            *(("alerts", a["customer_id"].encode(), orjson.dumps(a)) for a in alerts),
            *(
                (
                    "decisions",
                    a["customer_id"].encode(),
                    orjson.dumps(decision(int(a["alert_id"][1:]), a["customer_id"])),
                )
                for a in alerts
            ),
        ],
    )


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s: {check.__name__}")
        await asyncio.sleep(0.1)


async def sse(
    client: httpx.AsyncClient, query: str, count: int, timeout: float = 20.0
) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    async with client.stream("GET", "/alerts/stream?" + query, headers=KEY) as resp:
        assert resp.status_code == 200

        async def collect() -> None:
            async for ev in sse_events(resp.aiter_lines()):
                if ev.get("event") == "alert":
                    out.append(ev)
                    if len(out) == count:
                        return

        await asyncio.wait_for(collect(), timeout)
    return out


async def test_alerts_from_kafka_stream_out_and_resume_across_an_api_restart(
    live_settings: Settings,
) -> None:
    async with running_api(live_settings) as api:
        ready = await eventually(lambda: _ready(api), timeout=30)
        assert ready["checks"] == {
            "redis": True,
            "kafka": True,
            "models": True,
            "rules": True,
            "consumer": True,
            "webhooks": True,
        }
        listener = asyncio.create_task(sse(api, "type=churn_risk", 2))
        await asyncio.sleep(0.5)
        # One customer: one partition, so the order is Kafka's.
        await publish(live_settings, alert(1), alert(2, type="asset_drop"), alert(3))
        first = await listener
        assert [orjson.loads(e["data"])["alert_id"] for e in first] == ["a1", "a3"]
        d1 = await eventually(lambda: _json(api, "/decisions/d1"))
        assert d1["alerts"][0]["alert_id"] == "a1"
        assert "Rule r1 fired: large transfer out (amount=1)." in d1["explanation"]

    # The API is down while more alerts fire; a new API process resumes from the saved offsets
    # and the client from its last event id: nothing is missed.
    await publish(live_settings, alert(4), alert(5, severity="low"), alert(6))
    async with running_api(live_settings) as api:
        resumed = await sse(api, f"last_event_id={first[-1]['id']}&type=churn_risk", 3)
        assert [orjson.loads(e["data"])["alert_id"] for e in resumed] == ["a4", "a5", "a6"]
        assert all(e["id"] > first[-1]["id"] for e in resumed)
        text = (await api.get("/metrics")).text
        assert 'vigil_api_indexed_total{topic="alerts"}' in text
        assert "vigil_api_alert_stream_lag_seconds" in text


async def _ready(api: httpx.AsyncClient) -> dict[str, Any] | None:
    r = await api.get("/health/ready")
    return r.json() if r.status_code == 200 else None


async def _json(api: httpx.AsyncClient, path: str) -> dict[str, Any] | None:
    r = await api.get(path, headers=KEY)
    return r.json() if r.status_code == 200 else None


async def subscribe(api: httpx.AsyncClient, url: str, **filters: list[str]) -> str:
    r = await api.post(
        "/subscriptions", headers=KEY, json={"url": url, "secret": SECRET, "filters": filters}
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_webhooks_are_signed_retried_and_dead_lettered(live_settings: Settings) -> None:
    receiver = WebhookReceiver(SECRET)
    async with AsyncExitStack() as stack:
        hook = await stack.enter_async_context(serve(receiver))
        api = await stack.enter_async_context(running_api(live_settings))
        await eventually(lambda: _ready(api), timeout=30)
        ok = await subscribe(api, hook + "/ok", type=["churn_risk"])
        flaky = await subscribe(api, hook + "/flaky/2", tier=["basic"])
        down = await subscribe(api, hook + "/down")
        none = await subscribe(api, hook + "/ok", rm_id=["rm-nobody"])
        started = time.time()
        await publish(live_settings, alert(1), alert(2, type="asset_drop"))

        async def settled() -> dict[str, Any] | None:
            docs = {s: await _json(api, f"/subscriptions/{s}") for s in (ok, flaky, down)}
            done = (
                docs[ok]["stats"]["delivered"] == 1
                and docs[flaky]["stats"]["delivered"] == 2
                and docs[down]["stats"]["dead_lettered"] == 2
            )
            return docs if done else None

        docs = await eventually(settled, timeout=30)

    by_path: dict[str, list[Any]] = {}
    for req in receiver.requests:
        by_path.setdefault(req.path, []).append(req)
        assert req.signature_ok, "every delivery is signed with the subscription's secret"
        assert req.delivery_id == f"{req.body['subscription_id']}:{req.body['alert']['alert_id']}"
    assert [r.body["alert"]["alert_id"] for r in by_path["/ok"]] == ["a1"]
    # flaky: 503, 503, then 204 for each alert; attempts numbered, spaced by the backoff.
    for alert_id in ("a1", "a2"):
        tries = [r for r in by_path["/flaky/2"] if r.body["alert"]["alert_id"] == alert_id]
        assert [(r.attempt, r.status) for r in tries] == [(1, 503), (2, 503), (3, 204)]
        assert tries[1].at - tries[0].at >= 0.2 * 0.99 and tries[2].at - tries[1].at >= 0.4 * 0.99
    assert len(by_path["/down"]) == 2 * OPTIONS.webhook_max_attempts
    assert all(r.at >= started for r in receiver.requests)

    assert docs[ok]["status"] == "active" and docs[ok]["recent_deliveries"][0]["status_code"] == 204
    assert docs[flaky]["stats"]["failed_attempts"] == 4
    dead = docs[down]
    assert dead["status"] == "failing" and dead["stats"]["last_error"] == "HTTP 500"
    assert sorted(d["alert_id"] for d in dead["dead_letters"]) == ["a1", "a2"]
    assert all(
        d["attempts"] == 3 and d["alert"]["customer_id"] == "c1" for d in dead["dead_letters"]
    )
    assert SECRET not in str(docs)
    nothing = await _json_after(live_settings, none)
    assert nothing is None or nothing == 0


async def _json_after(settings: Settings, sub_id: str) -> int | None:
    async with running_api(settings) as api:
        doc = await _json(api, f"/subscriptions/{sub_id}")
        return None if doc is None else int(doc["stats"]["delivered"])


async def test_two_replicas_append_each_alert_once_and_deliver_it_once(
    live_settings: Settings, redis_url: str
) -> None:
    receiver = WebhookReceiver(SECRET)
    async with AsyncExitStack() as stack:
        hook = await stack.enter_async_context(serve(receiver))
        one = await stack.enter_async_context(running_api(live_settings))
        two = await stack.enter_async_context(running_api(live_settings))
        for api in (one, two):
            await eventually(lambda api=api: _ready(api), timeout=30)
        await subscribe(one, hook + "/ok")
        await publish(live_settings, *(alert(n, customer=f"c{n}") for n in range(1, 11)))
        await eventually(lambda: _count(receiver, 10), timeout=30)
        await asyncio.sleep(1.0)  # time for a duplicate to show up, if there were one
        page = (await two.get("/alerts?after=0&limit=100", headers=KEY)).json()
    assert sorted(a["alert"]["alert_id"] for a in page["alerts"]) == sorted(
        f"a{n}" for n in range(1, 11)
    )
    assert sorted(r.body["alert"]["alert_id"] for r in receiver.requests) == sorted(
        f"a{n}" for n in range(1, 11)
    )


async def _count(receiver: WebhookReceiver, n: int) -> bool:
    return len(receiver.requests) >= n
