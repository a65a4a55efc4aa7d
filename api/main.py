"""The API's app factory: settings in, a FastAPI app out. A separate process from the workers.

Background tasks run in the app's lifespan: the topic consumer (alerts and decisions topics into
the alert log and the index), the alert tail (fan-out to SSE/WebSocket clients), the webhook
dispatcher, and a rule-folder watcher. ``backend="memory"`` swaps every Redis adapter for its
in-memory twin (tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal

import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import metrics
from api.alert_log import MemoryAlertLog, RedisAlertLog
from api.auth import parse_api_keys
from api.deps import Services
from api.index import MemoryIndex, RedisIndex
from api.indexer import TopicIndexer
from api.options import ApiOptions
from api.readiness import KafkaCheck
from api.routes import alerts, auth, console, customers, decisions, health, rules, subscriptions
from api.streaming import AlertTail
from api.subscriptions import MemorySubscriptionStore, RedisSubscriptionStore
from api.webhooks import WebhookDispatcher, new_http_client
from engine.clock import Clock, WallClock
from engine.config import Settings
from engine.errors import InfrastructureError
from engine.ports import StateStore
from engine.wiring import redis_store, store_limits
from features.memory_store import MemoryStateStore
from online_models.catalog import model_names
from rules.reload import RuleSetHolder

log = logging.getLogger(__name__)

DESCRIPTION = """\
Alerts as they fire (Server-Sent Events, WebSocket, signed webhooks), the customer 360 view, the
audit record of every decision, the rules, and the engine's health.

**Auth**: every route except `/health/*` and `/metrics` needs `Authorization: Bearer <API key>`.
Keys are configured hashed (`VIGIL_API__API_KEYS`) with scopes `read` (customers, decisions,
alerts, rules), `subscribe` (webhooks) and `admin` (rule reload, every subscription). Browsers
trade a key for a short-lived stream token (`POST /auth/stream-token`) for the alert stream.

**Errors** are JSON `{"detail": ...}`: 401/403 for credentials, 404 for unknown ids, 422 for
invalid parameters or bodies (each field named), 503 when Redis or Kafka is unavailable.

The live console is at [/console](/console). See docs/api.md.
"""


def build_services(
    settings: Settings,
    store: StateStore | None,
    options: ApiOptions,
    clock: Clock,
    backend: Literal["redis", "memory"],
) -> Services:
    prefix = settings.redis.key_prefix
    client: aioredis.Redis | None = None
    if backend == "memory":
        alert_log: Any = MemoryAlertLog(
            clock, options.alert_retention_seconds, options.alert_log_max
        )
        index: Any = MemoryIndex(clock, options.index_ttl_seconds, options.recent_per_customer)
        subs: Any = MemorySubscriptionStore()
        state = store or MemoryStateStore(store_limits(settings))
    else:
        password = settings.redis.password.get_secret_value() if settings.redis.password else None
        client = aioredis.Redis.from_url(settings.redis.url, password=password)
        alert_log = RedisAlertLog(
            client, prefix, clock, options.alert_retention_seconds, options.alert_log_max
        )
        index = RedisIndex(client, prefix, options.index_ttl_seconds, options.recent_per_customer)
        subs = RedisSubscriptionStore(client, prefix)
        state = store or redis_store(settings)
    svc = Services(
        settings=settings,
        options=options,
        clock=clock,
        store=state,
        rules=RuleSetHolder(settings.rules_dir, model_names()),
        api_keys=parse_api_keys(settings.api.api_keys.get_secret_value()),
        alert_log=alert_log,
        index=index,
        subscriptions=subs,
        tail=AlertTail(alert_log),
        kafka=KafkaCheck(settings, options.kafka_timeout_seconds, options.ready_cache_seconds),
        models=model_names(),
        redis=client,
    )
    if options.run_consumer:
        svc.indexer = TopicIndexer(
            settings, alert_log, index, clock, options.alert_retention_seconds
        )
    if options.run_webhooks:
        consumer = f"{socket.gethostname()}-{os.getpid()}"
        svc.dispatcher = WebhookDispatcher(
            alert_log, subs, options, clock, new_http_client(options), consumer
        )
    return svc


class MetricsMiddleware:
    """Counts requests by route template, method and status; times them to the first byte."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state = {"status": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                route = scope.get("route")
                path = getattr(route, "path", None) or "unmatched"
                metrics.REQUEST_SECONDS.labels(path).observe(time.perf_counter() - started)
                metrics.REQUESTS.labels(path, scope["method"], str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, send_wrapper)


async def _watch_rules(svc: Services) -> None:
    while True:
        await asyncio.sleep(svc.settings.worker.rules_reload_seconds)
        await asyncio.to_thread(svc.rules.check)


async def _close(svc: Services) -> None:
    closers: list[Callable[[], Awaitable[Any]]] = [svc.store.close, svc.kafka.close]
    if svc.dispatcher is not None:
        closers.append(svc.dispatcher.close)
    if svc.redis is not None:
        closers.append(svc.redis.aclose)
    for close in closers:
        with contextlib.suppress(Exception):
            await close()


def create_app(
    settings: Settings,
    store: StateStore | None = None,
    *,
    options: ApiOptions | None = None,
    clock: Clock | None = None,
    backend: Literal["redis", "memory"] = "redis",
) -> FastAPI:
    opts = options or ApiOptions.from_settings(settings.api)
    svc = build_services(settings, store, opts, clock or WallClock(), backend)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        jobs: list[Callable[[], Awaitable[None]]] = [svc.tail.run, lambda: _watch_rules(svc)]
        if svc.indexer is not None:
            jobs.append(svc.indexer.run)
        if svc.dispatcher is not None:
            jobs.append(svc.dispatcher.run)
        tasks = [asyncio.create_task(_supervised(job)) for job in jobs]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await _close(svc)

    app = FastAPI(
        title="Vigil API",
        version="0.2.0",
        summary="Real-time customer-event decisioning: alerts, customers, decisions, rules.",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.services = svc
    app.add_middleware(MetricsMiddleware)
    for exc_type in (InfrastructureError, RedisError, ConnectionError, TimeoutError):
        app.add_exception_handler(exc_type, _unavailable)
    app.add_exception_handler(RequestValidationError, _invalid)
    for module in (health, alerts, auth, subscriptions, customers, decisions, rules, console):
        app.include_router(module.router)
    return app


async def _supervised(job: Callable[[], Awaitable[None]]) -> None:
    """Run a background task; restart it after an error (Redis down...), backing off."""
    delay = 0.5
    while True:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "API task %s: %s: %s", getattr(job, "__qualname__", job), type(exc).__name__, exc
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 10.0)


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    """422 listing every wrong field; a secret's value is never echoed back."""
    assert isinstance(exc, RequestValidationError)
    details = []
    for error in exc.errors():
        error = dict(error)
        error.pop("url", None)
        if any("secret" in str(part).lower() for part in error.get("loc", ())):
            error.pop("input", None)
        details.append(error)
    return JSONResponse({"detail": jsonable_encoder(details)}, status_code=422)


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("%s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
    return JSONResponse(
        {"detail": f"a backing service is unavailable: {type(exc).__name__}"},
        status_code=503,
        headers={"Retry-After": "2"},
    )
