"""Helpers for testing the API and its subscribers on loopback (like httpx's MockTransport,
shipped with the package): serve an ASGI app on a free 127.0.0.1 port inside the running event
loop, and a webhook receiver that verifies signatures and fails on purpose.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.types import Receive, Scope, Send

from api.signing import ATTEMPT_HEADER, DELIVERY_HEADER, SIGNATURE_HEADER, verify


@asynccontextmanager
async def serve(
    app: Any, host: str = "127.0.0.1", start_timeout: float = 10.0
) -> AsyncIterator[str]:
    """Run ``app`` with uvicorn (lifespan on) on a free port; yields its base URL."""
    config = uvicorn.Config(
        app, host=host, port=0, log_level="warning", lifespan="on", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the server stopped during start-up")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise TimeoutError("the server did not start")
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), 5.0)
        except TimeoutError:
            server.force_exit = True
            await asyncio.wait_for(task, 5.0)


@dataclass
class Received:
    path: str
    delivery_id: str
    attempt: int
    signature_ok: bool
    body: dict[str, Any]
    status: int
    at: float


@dataclass
class WebhookReceiver:
    """An ASGI webhook endpoint. Paths choose its behaviour:

    - ``/ok``: 204 when the signature verifies, 401 otherwise;
    - ``/flaky/<n>``: 503 for the first ``n`` attempts of each delivery, then like ``/ok``;
    - ``/down``: always 500.
    """

    secret: str
    requests: list[Received] = field(default_factory=list)
    _seen: dict[tuple[str, str], int] = field(default_factory=dict)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        path = scope["path"]
        delivery = headers.get(DELIVERY_HEADER.lower(), "")
        ok = verify(self.secret, headers.get(SIGNATURE_HEADER.lower(), ""), body, time.time())
        key = (path, delivery)
        self._seen[key] = self._seen.get(key, 0) + 1
        if path == "/down":
            status = 500
        elif path.startswith("/flaky/") and self._seen[key] <= int(path.rsplit("/", 1)[1]):
            status = 503
        else:
            status = 204 if ok else 401
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            doc = {}
        self.requests.append(
            Received(
                path,
                delivery,
                int(headers.get(ATTEMPT_HEADER.lower(), "0") or 0),
                ok,
                doc,
                status,
                time.time(),
            )
        )
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def sse_events(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, str]]:
    """Parse an SSE body (``response.aiter_lines()``) into ``{"id", "event", "data"}`` dicts."""
    event: dict[str, str] = {}
    async for line in lines:
        if not line:
            if "data" in event:
                yield event
            event = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data" and "data" in event:
            event["data"] += "\n" + value
        elif name in ("id", "event", "data", "retry"):
            event[name] = value


def churn_story(cid: str, rm_id: str = "rm7") -> list[dict[str, Any]]:
    """Events of a basic-tier customer who moves most of their money to another bank, then
    looks at closing the account: the default rules raise churn alerts on them."""
    return [
        {
            "event_id": f"{cid}-p",
            "type": "profile",
            "customer_id": cid,
            "ts": "2026-01-01T09:00:00+08:00",
            "aum": 200000.0,
            "segment": "family",
            "timezone": "Asia/Shanghai",
            "rm_id": rm_id,
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
    ]
