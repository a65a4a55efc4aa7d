"""Health and metrics: the only routes without an API key."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/health/live", summary="The process is up")
async def live() -> dict[str, str]:
    return {"status": "ok"}


async def _kafka_answers(bootstrap: str, timeout: float = 1.0) -> bool:
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout)
    except (TimeoutError, OSError, ValueError):
        return False
    writer.close()
    return True


@router.get("/health/ready", summary="Kafka and Redis answer; rules are loaded")
async def ready(svc: ServicesDep) -> JSONResponse:
    checks = {
        "redis": await svc.store.ping(),
        "kafka": await _kafka_answers(svc.settings.kafka.bootstrap_servers),
        "rules": svc.rules.current is not None,
    }
    ok = all(checks.values())
    body = {
        "status": "ok" if ok else "unavailable",
        "checks": checks,
        "ruleset_version": svc.rules.current.version,
    }
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
