"""Stream tokens for browsers (EventSource and WebSocket cannot send an Authorization header)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api import tokens
from api.deps import STREAM_TOKENS, ReadKey, ServicesDep
from api.schemas import StreamTokenOut, errors
from engine.events import iso

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/stream-token",
    summary="A short-lived token for the alert stream (browsers)",
    description="Exchanges an API key with the read scope for a token valid only on "
    "`/alerts/stream` and `/alerts/ws` (as `?token=`), for a few minutes. The key itself never "
    "goes into a URL; a token that leaks into a log expires soon and opens nothing else.",
    response_model=StreamTokenOut,
    responses=errors(401, 403, 503),
)
async def stream_token(svc: ServicesDep, key: ReadKey) -> dict[str, Any]:
    secret = await svc.index.shared_secret(STREAM_TOKENS)
    now, ttl = svc.clock.now(), svc.options.stream_token_ttl_seconds
    return {
        "token": tokens.issue(secret, key.name, now, ttl),
        "expires_at": iso(int(now) + ttl),
        "expires_in": ttl,
    }
