"""Health and metrics: the only routes without an API key.

``/metrics`` is open so Prometheus can scrape it (deploy/prometheus/prometheus.yml does, without
credentials); it carries counts, latencies and route templates, never customer data. Expose the
API's port only where Prometheus may reach it, or put /metrics behind the network's own controls.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import ServicesDep
from api.schemas import LiveOut, ReadyOut

router = APIRouter(tags=["health"])


@router.get("/health/live", summary="The process is up", response_model=LiveOut)
async def live() -> LiveOut:
    return LiveOut(status="ok")


@router.get(
    "/health/ready",
    summary="Kafka, Redis, models, rules and the alert consumer are ready",
    description="200 when every check passes, 503 (same body) when one fails; `details` says "
    "why. The Kafka check is a metadata request with a timeout, cached for a few seconds.",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "At least one check failed"}},
)
async def ready(svc: ServicesDep) -> JSONResponse:
    details: dict[str, object] = {}
    try:
        redis_ok = await svc.store.ping()
        if svc.redis is not None:
            redis_ok = bool(await svc.redis.ping()) and redis_ok
    except Exception as exc:  # any failure is "not ready", with the reason
        redis_ok = False
        details["redis"] = f"{type(exc).__name__}: {exc}"[:200]
    kafka = await svc.kafka.check()
    details["kafka"] = kafka
    checks = {
        "redis": redis_ok,
        "kafka": bool(kafka["ok"]),
        "models": bool(svc.models),
        "rules": svc.rules.current is not None,
    }
    if svc.indexer is not None:
        checks["consumer"] = svc.indexer.assigned
        if svc.indexer.last_error:
            details["consumer"] = svc.indexer.last_error
    if svc.dispatcher is not None:
        checks["webhooks"] = svc.dispatcher.running
    ok = all(checks.values())
    body = ReadyOut(
        status="ok" if ok else "unavailable",
        checks=checks,
        details=details,
        ruleset_version=svc.rules.current.version,
        models=list(svc.models),
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ok else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics (open, for the scraper)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
