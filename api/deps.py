"""Dependencies of the routes: the app's services and the caller's API key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api import tokens
from api.alert_log import AlertLog
from api.auth import ApiKey, authenticate
from api.index import Index
from api.indexer import TopicIndexer
from api.options import ApiOptions
from api.readiness import KafkaCheck
from api.streaming import AlertTail
from api.subscriptions import SubscriptionStore
from api.webhooks import WebhookDispatcher
from engine.clock import Clock
from engine.config import Settings
from engine.ports import StateStore
from rules.reload import RuleSetHolder

STREAM_TOKENS = "stream-token"  # which shared secret signs stream tokens (its name)


@dataclass
class Services:
    settings: Settings
    options: ApiOptions
    clock: Clock
    store: StateStore
    rules: RuleSetHolder
    api_keys: tuple[ApiKey, ...]
    alert_log: AlertLog
    index: Index
    subscriptions: SubscriptionStore
    tail: AlertTail
    kafka: KafkaCheck
    models: tuple[str, ...]
    redis: aioredis.Redis | None = None
    indexer: TopicIndexer | None = None
    dispatcher: WebhookDispatcher | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(services)]
_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`")


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"}
    )


def check_key(presented: str | None, scope: str, keys: tuple[ApiKey, ...]) -> ApiKey:
    """The key, or the HTTPException (401 unknown/missing, 403 lacks scope) to raise."""
    if not presented:
        raise _unauthorized("missing API key: send Authorization: Bearer <key>")
    key = authenticate(presented, keys)
    if key is None:
        raise _unauthorized("unknown API key")
    if scope not in key.scopes:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"this API key lacks the {scope!r} scope")
    return key


def require(scope: str):  # type: ignore[no-untyped-def]
    def check(
        svc: ServicesDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> ApiKey:
        return check_key(credentials.credentials if credentials else None, scope, svc.api_keys)

    return check


async def stream_key(svc: Services, authorization: str | None, token: str | None) -> ApiKey:
    """A key with the ``read`` scope from ``Authorization: Bearer <key>`` or a stream token
    (``?token=``, for browsers). A token is refused once its key is gone or lost ``read``."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer":
            raise _unauthorized("Authorization must be 'Bearer <key>'")
        return check_key(value.strip(), "read", svc.api_keys)
    if not token:
        raise _unauthorized(
            "missing credentials: send Authorization: Bearer <key>, or ?token= from "
            "POST /auth/stream-token"
        )
    secret = await svc.index.shared_secret(STREAM_TOKENS)
    name = tokens.check(secret, token, svc.clock.now())
    key = next((k for k in svc.api_keys if k.name == name), None)
    if name is None or key is None:
        raise _unauthorized("invalid or expired stream token")
    if "read" not in key.scopes:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this token's key lacks the 'read' scope")
    return key


ReadKey = Annotated[ApiKey, Depends(require("read"))]
SubscribeKey = Annotated[ApiKey, Depends(require("subscribe"))]
AdminKey = Annotated[ApiKey, Depends(require("admin"))]
