"""The API over HTTP on loopback, with the in-memory twins of Redis (no services needed):
auth and scopes, bad input, the alert stream (SSE and WebSocket, filters, resume, gaps),
subscriptions, the customer 360 view and decisions built by the real pipeline, metrics and the
OpenAPI document."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import pytest
import websockets

from api.alert_log import MemoryAlertLog
from api.auth import hash_key
from api.deps import Services
from api.filters import AlertFilter
from api.main import create_app
from api.options import ApiOptions
from api.subscriptions import MemorySubscriptionStore, Subscription
from api.testing import WebhookReceiver, churn_story, serve, sse_events
from api.webhooks import WebhookDispatcher, new_http_client
from engine.clock import FixedClock
from engine.config import Settings
from engine.dead_letter import InputRecord
from engine.sinks import MemorySink
from engine.wiring import build_pipeline, store_limits
from features.memory_store import MemoryStateStore

SCOPES = {
    "reader": "read",
    "writer": "read+subscribe",
    "other": "read+subscribe",
    "boss": "read+subscribe+admin",
    "nobody": "subscribe",
}


def key(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {name}-key"}


@pytest.fixture
def settings(settings_for: Callable[..., Settings]) -> Settings:
    keys = ",".join(f"{n}:{s}:{hash_key(n + '-key')}" for n, s in SCOPES.items())
    return settings_for(api={"api_keys": keys})


class Api:
    def __init__(self, url: str, svc: Services, client: httpx.AsyncClient) -> None:
        self.url, self.svc, self.http = url, svc, client

    async def alerts(self, *docs: dict[str, Any]) -> list[str]:
        return await self.svc.alert_log.append(list(docs))


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    store = MemoryStateStore(store_limits(settings))
    options = ApiOptions(
        run_consumer=False, run_webhooks=False, stream_heartbeat_seconds=0.3, stream_batch=3
    )
    app = create_app(settings, store, options=options, backend="memory")
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield Api(url, app.state.services, client)


def alert(n: int, **fields: Any) -> dict[str, Any]:
    base = {
        "alert_id": f"a{n}",
        "decision_id": f"d{n}",
        "event_id": f"e{n}",
        "customer_id": f"c{n}",
        "type": "churn_risk",
        "severity": "high",
        "rule_id": "r1",
        "ruleset_version": "v1",
        "reason": "because",
        "conditions": {},
        "scores": {},
        "tier": "basic",
        "rm_id": "rm7",
        "event_time": "2026-01-02T02:00:00.000+00:00",
        "decision_time": "2026-01-02T02:00:00.100+00:00",
    }
    return {**base, **fields}


# --------------------------------------------------------------------------- auth


PROTECTED = [
    ("GET", "/customers/c1"),
    ("GET", "/decisions/d1"),
    ("GET", "/alerts"),
    ("GET", "/alerts/stream"),
    ("GET", "/rules"),
    ("POST", "/rules/reload"),
    ("GET", "/subscriptions"),
    ("POST", "/auth/stream-token"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_every_route_but_health_and_metrics_needs_a_known_key(
    api: Api, method: str, path: str
) -> None:
    missing = await api.http.request(method, path)
    wrong = await api.http.request(method, path, headers={"Authorization": "Bearer nope"})
    assert missing.status_code == 401 and "missing" in missing.json()["detail"]
    assert wrong.status_code == 401
    assert (await api.http.get("/health/live")).status_code == 200
    assert (await api.http.get("/metrics")).status_code == 200


async def test_scopes_gate_subscriptions_and_reload(api: Api) -> None:
    assert (await api.http.get("/subscriptions", headers=key("reader"))).status_code == 403
    denied = await api.http.get("/rules", headers=key("nobody"))
    assert denied.status_code == 403 and "'read' scope" in denied.json()["detail"]
    assert (await api.http.post("/rules/reload", headers=key("writer"))).status_code == 403
    reload = await api.http.post("/rules/reload", headers=key("boss"))
    assert reload.status_code == 200 and reload.json()["reloaded"] is False


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/customers/nobody-here", "unknown customer"),
        ("/decisions/d-nothing", "unknown decision"),
        ("/subscriptions/sub_0000", "unknown subscription"),
    ],
)
async def test_unknown_ids_are_404_with_a_message(api: Api, path: str, words: str) -> None:
    r = await api.http.get(path, headers=key("boss"))
    assert r.status_code == 404 and words in r.json()["detail"]


@pytest.mark.parametrize(
    "url", ["ftp://example.com/hook", "javascript:alert(1)", "file:///etc/passwd", "not a url", ""]
)
async def test_a_webhook_url_that_is_not_http_is_refused(api: Api, url: str) -> None:
    body = {"url": url, "secret": "s" * 20}
    r = await api.http.post("/subscriptions", json=body, headers=key("writer"))
    assert r.status_code == 422
    assert any(e["loc"][-1] == "url" for e in r.json()["detail"])


async def test_a_bad_secret_is_refused_without_echoing_it(api: Api) -> None:
    r = await api.http.post(
        "/subscriptions",
        json={"url": "http://127.0.0.1/x", "secret": "tiny"},
        headers=key("writer"),
    )
    assert r.status_code == 422 and "tiny" not in r.text
    assert r.json()["detail"][0]["loc"] == ["body", "secret"]


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/alerts?after=yesterday", "after must be an alert stream id"),
        ("/alerts?limit=0", "greater than or equal to 1"),
        ("/alerts?type=" + "x" * 200, "longer than 128"),
        ("/alerts/stream?last_event_id=abc", "last_event_id must be"),
        ("/alerts/stream?backlog=5000", "less than or equal to 1000"),
    ],
)
async def test_malformed_parameters_get_422_saying_what_is_wrong(
    api: Api, path: str, words: str
) -> None:
    r = await api.http.get(path, headers=key("reader"))
    assert r.status_code == 422, r.text
    assert words in r.text


async def test_malformed_bodies_get_4xx_never_5xx(api: Api) -> None:
    h = {**key("writer"), "Content-Type": "application/json"}
    for body in (b"{", b"[]", b'{"url": 5}', b"\xff\xfe", b'{"url":"http://a","secret":null}'):
        r = await api.http.post("/subscriptions", content=body, headers=h)
        assert 400 <= r.status_code < 500, (body, r.status_code, r.text)
    yaml_h = {**key("reader"), "Content-Type": "application/yaml"}
    for text in ("rules: [", "version: 1\nrules:\n  - id: x\n    when: 'import os'\n", "\t\x00"):
        r = await api.http.post("/rules/validate", content=text.encode(), headers=yaml_h)
        assert r.status_code == 422, (text, r.text)
        assert r.json()["detail"]["reason"]


# --------------------------------------------------------------------------- subscriptions


async def test_subscriptions_never_show_their_secret_and_belong_to_their_key(api: Api) -> None:
    secret = "a-very-secret-secret"
    body = {
        "url": "https://hooks.example.com/vigil",
        "secret": secret,
        "filters": {"type": ["churn_risk"], "tier": ["basic", "affluent"]},
        "description": "RM desk",
    }
    created = await api.http.post("/subscriptions", json=body, headers=key("writer"))
    assert created.status_code == 201 and secret not in created.text
    sub = created.json()
    assert sub["owner"] == "writer" and sub["filters"]["tier"] == ["affluent", "basic"]
    assert sub["status"] == "active" and sub["stats"]["delivered"] == 0
    path = f"/subscriptions/{sub['id']}"
    mine = await api.http.get(path, headers=key("writer"))
    assert mine.status_code == 200 and secret not in mine.text
    assert (await api.http.get(path, headers=key("other"))).status_code == 404
    assert (await api.http.get(path, headers=key("boss"))).status_code == 200
    listed = await api.http.get("/subscriptions", headers=key("writer"))
    assert [s["id"] for s in listed.json()["subscriptions"]] == [sub["id"]]
    assert (await api.http.get("/subscriptions", headers=key("other"))).json() == {
        "subscriptions": []
    }
    assert (await api.http.delete(path, headers=key("other"))).status_code == 404
    assert (await api.http.delete(path, headers=key("writer"))).status_code == 204
    assert (await api.http.get(path, headers=key("writer"))).status_code == 404


# --------------------------------------------------------------------------- alert stream


async def read_events(
    api: Api, query: str, count: int, headers: dict[str, str] | None = None, timeout: float = 5.0
) -> list[dict[str, Any]]:
    """The first ``count`` alert/gap events of one SSE connection, then disconnect."""
    out: list[dict[str, Any]] = []
    async with api.http.stream(
        "GET", "/alerts/stream?" + query, headers=headers or key("reader")
    ) as resp:
        assert resp.status_code == 200, await resp.aread()
        assert resp.headers["content-type"].startswith("text/event-stream")

        async def collect() -> None:
            async for ev in sse_events(resp.aiter_lines()):
                if ev.get("event") in ("alert", "gap"):
                    out.append({**ev, "data": orjson.loads(ev["data"])})
                    if len(out) >= count:
                        return

        await asyncio.wait_for(collect(), timeout)
    return out


async def test_sse_delivers_matching_alerts_as_they_arrive(api: Api) -> None:
    async def publish() -> None:
        await asyncio.sleep(0.3)
        await api.alerts(alert(1), alert(2, type="asset_drop"), alert(3, severity="low"))
        await api.alerts(alert(4, tier="affluent"), alert(5))

    task = asyncio.create_task(publish())
    events = await read_events(api, "type=churn_risk&severity=high&tier=basic", 2)
    await task
    assert [e["data"]["alert_id"] for e in events] == ["a1", "a5"]
    assert all(e["event"] == "alert" and e["id"] for e in events)


async def test_sse_resumes_after_the_last_event_id_without_missing_any(api: Api) -> None:
    ids = await api.alerts(*(alert(n) for n in range(1, 4)))
    first = await read_events(api, "last_event_id=0", 3)
    assert [e["id"] for e in first] == ids
    # Disconnected; more alerts fire (more than one batch of 3).
    later = await api.alerts(*(alert(n) for n in range(4, 12)))
    resumed = await read_events(api, "", 8, headers={**key("reader"), "Last-Event-ID": ids[-1]})
    assert [e["id"] for e in resumed] == later
    by_query = await read_events(api, f"last_event_id={later[3]}", 4)
    assert [e["id"] for e in by_query] == later[4:]


async def test_sse_backlog_and_gap_past_the_retention_window(api: Api) -> None:
    ids = await api.alerts(*(alert(n) for n in range(1, 6)))
    backlog = await read_events(api, "backlog=2", 2)
    assert [e["id"] for e in backlog] == ids[-2:]
    gap = await read_events(api, "last_event_id=1-0", 2)  # older than anything retained
    assert gap[0]["event"] == "gap" and gap[0]["data"]["oldest_retained"] == ids[0]
    assert gap[1]["id"] == ids[0]


async def test_sse_heartbeats_carry_the_position_past_filtered_alerts(api: Api) -> None:
    await api.alerts(alert(1, type="asset_drop"))
    async with api.http.stream(
        "GET", "/alerts/stream?type=churn_risk&last_event_id=0", headers=key("reader")
    ) as resp:
        beat = await asyncio.wait_for(
            anext(e async for e in sse_events(resp.aiter_lines()) if e.get("event") == "heartbeat"),
            5,
        )
    (entry,) = await api.svc.alert_log.latest(1)
    assert beat["id"] == entry.id


async def test_browsers_use_a_short_lived_stream_token(api: Api) -> None:
    token = (await api.http.post("/auth/stream-token", headers=key("reader"))).json()
    assert token["expires_in"] == ApiOptions().stream_token_ttl_seconds
    await api.alerts(alert(1))
    got = await read_events(api, f"last_event_id=0&token={token['token']}", 1, headers={})
    assert got[0]["data"]["alert_id"] == "a1"
    bad = await api.http.get("/alerts/stream?token=" + token["token"][:-3] + "abc")
    assert bad.status_code == 401 and "token" in bad.json()["detail"]
    # A token opens the stream only: never the JSON routes.
    assert (await api.http.get(f"/rules?token={token['token']}")).status_code == 401


async def test_websocket_streams_the_same_events(api: Api) -> None:
    ids = await api.alerts(alert(1), alert(2, type="asset_drop"), alert(3))
    ws_url = api.url.replace("http://", "ws://") + "/alerts/ws?type=churn_risk&last_event_id=0"
    async with websockets.connect(ws_url, additional_headers=key("reader")) as ws:
        got = [orjson.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(2)]
        assert [(m["event"], m["id"], m["data"]["alert_id"]) for m in got] == [
            ("alert", ids[0], "a1"),
            ("alert", ids[2], "a3"),
        ]
        later = await api.alerts(alert(4))
        msg = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        assert msg["id"] == later[0]
    with pytest.raises(websockets.InvalidStatus):
        async with websockets.connect(api.url.replace("http://", "ws://") + "/alerts/ws"):
            pass


async def test_alert_pages_for_polling_clients(api: Api) -> None:
    ids = await api.alerts(*(alert(n, severity="high" if n % 2 else "low") for n in range(1, 6)))
    page = await api.http.get("/alerts?severity=high&limit=3&after=0", headers=key("reader"))
    doc = page.json()
    assert [a["id"] for a in doc["alerts"]] == [ids[0], ids[2]]
    assert doc["position"] == ids[2] and doc["newest"] == ids[-1]
    nxt = await api.http.get(
        f"/alerts?severity=high&after={doc['position']}", headers=key("reader")
    )
    assert [a["alert"]["alert_id"] for a in nxt.json()["alerts"]] == ["a5"]


async def test_stream_clients_are_counted_in_metrics(api: Api) -> None:
    async with api.http.stream("GET", "/alerts/stream", headers=key("reader")) as resp:
        await asyncio.wait_for(anext(resp.aiter_lines()), 5)
        text = (await api.http.get("/metrics")).text
        assert 'vigil_api_stream_clients{transport="sse"} 1.0' in text
    await api.http.get("/customers/zz", headers=key("reader"))
    text = (await api.http.get("/metrics")).text
    assert (
        'vigil_api_requests_total{method="GET",route="/customers/{customer_id}",status="404"}'
        in text
    )


# --------------------------------------------------------------------------- customers, decisions


async def run_pipeline(api: Api, settings: Settings, events: list[dict[str, Any]]) -> MemorySink:
    """The real pipeline on the API's own in-memory state store; its output indexed."""
    sink = MemorySink()
    pipeline, _ = build_pipeline(settings, sink, store=api.svc.store)
    records = [
        InputRecord(orjson.dumps(e), "events", 0, i, None, e["customer_id"].encode())
        for i, e in enumerate(events)
    ]
    await pipeline.process(records)
    await api.svc.index.put(sink.values("decisions"), sink.values("alerts"))
    await api.svc.alert_log.append(sink.values("alerts"))
    return sink


async def test_customer_360_and_the_decision_explanation(api: Api, settings: Settings) -> None:
    sink = await run_pipeline(api, settings, churn_story("c42"))
    alerts = sink.values("alerts")
    assert alerts, "the story raises alerts under the default rules"
    r = await api.http.get("/customers/c42", headers=key("reader"))
    assert r.status_code == 200, r.text
    c = r.json()
    assert c["tier"] == c["features"]["tier"] and c["profile"]["rm_id"] == "rm7"
    assert set(c["scores"]) and c["scores_decision_id"] == c["recent_decisions"][0]["decision_id"]
    assert {a["alert_id"] for a in c["recent_alerts"]} == {a["alert_id"] for a in alerts}
    assert len(c["recent_decisions"]) == 3
    assert c["contact_policy"]["contacts_7d"] == len(c["contacts"])
    assert c["contact_policy"]["max_contacts_7d"] == settings.policy.max_contacts_7d

    fired = alerts[0]
    d = (await api.http.get(f"/decisions/{fired['decision_id']}", headers=key("reader"))).json()
    assert d["record"]["decision_id"] == fired["decision_id"]
    assert fired["alert_id"] in {a["alert_id"] for a in d["alerts"]}
    assert f"Rule {fired['rule_id']} fired: {fired['reason']}" in " ".join(d["explanation"])


# --------------------------------------------------------------------------- OpenAPI


async def test_openapi_documents_every_route_with_models_and_errors(api: Api) -> None:
    doc = (await api.http.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    for name in ("AlertOut", "SubscriptionIn", "SubscriptionOut", "CustomerOut", "DecisionOut"):
        assert name in schemas
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op.get("summary"), (method, path)
            if not path.startswith(("/health", "/metrics")):
                assert "401" in op["responses"], (method, path)
    assert "/alerts/stream" in doc["paths"] and "/console" not in doc["paths"]


# --------------------------------------------------------------------------- webhook dispatcher


async def test_dispatcher_retries_with_backoff_then_dead_letters_on_the_twins() -> None:
    secret = "twin-secret-0123456789"
    clock = FixedClock(time.time())
    options = ApiOptions(
        webhook_max_attempts=2, webhook_backoff_base_seconds=10.0, webhook_timeout_seconds=2.0
    )
    log, subs = MemoryAlertLog(clock, 3600, 100), MemorySubscriptionStore()
    receiver = WebhookReceiver(secret)
    async with serve(receiver) as hook:
        http = new_http_client(options)
        dispatcher = WebhookDispatcher(log, subs, options, clock, http, "test")
        assert await dispatcher.fan_out(0) == 0  # joins the group: later entries only
        for sub_id, path, flt in (
            ("flaky", "/flaky/1", AlertFilter()),
            ("down", "/down", AlertFilter()),
            ("other", "/ok", AlertFilter.parse(type=["asset_drop"])),
        ):
            await subs.add(Subscription(sub_id, "ops", hook + path, flt, secret, None, 0.0))
        await log.append([alert(1)])
        assert await dispatcher.fan_out(0) == 2  # "other" filters it out
        first = await dispatcher.deliver_due()
        assert sorted((r.delivery_id, r.result, r.status_code) for r in first) == [
            ("down:a1", "failed", 500),
            ("flaky:a1", "failed", 503),
        ]
        assert await dispatcher.deliver_due() == []  # backing off
        clock.advance(9.9)
        assert await dispatcher.deliver_due() == []
        clock.advance(2.1)  # past 10 s plus at most 20% spread
        second = {r.delivery_id: r for r in await dispatcher.deliver_due()}
        assert second["flaky:a1"].result == "delivered" and second["flaky:a1"].attempt == 2
        assert second["down:a1"].result == "dead_lettered"
        clock.advance(3600)
        assert await dispatcher.deliver_due() == []  # nothing left to retry
        await http.aclose()
    assert all(r.signature_ok for r in receiver.requests)
    assert [r.attempt for r in receiver.requests if r.path == "/flaky/1"] == [1, 2]
    down = await subs.stats("down", 10, 10)
    assert down.counters == {"delivered": 0, "failed_attempts": 2, "dead_lettered": 1}
    assert down.dead_letters[0]["alert"]["alert_id"] == "a1"
    assert (await subs.stats("other", 10, 10)).recent == []
