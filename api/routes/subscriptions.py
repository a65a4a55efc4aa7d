"""Webhook subscriptions: create, list, inspect (status, deliveries, dead letters), delete.

A subscription belongs to the API key that created it (``subscribe`` scope); other keys see it
only with the ``admin`` scope. Its secret is never returned.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Response, status

from api.auth import ApiKey
from api.deps import ServicesDep, SubscribeKey
from api.filters import AlertFilter
from api.schemas import SubscriptionIn, SubscriptionListOut, SubscriptionOut, errors
from api.subscriptions import Subscription, SubscriptionStats
from engine.events import iso

router = APIRouter(prefix="/subscriptions", tags=["subscriptions"])
SubscriptionId = Annotated[
    str, Path(min_length=1, max_length=64, description="The subscription id")
]
SHOWN_DELIVERIES = 20
SHOWN_DEAD = 20


def _iso(ts: float | None) -> str | None:
    return iso(ts) if ts is not None else None


def subscription_out(sub: Subscription, stats: SubscriptionStats) -> dict[str, Any]:
    failing = stats.last_failure_at is not None and (
        stats.last_success_at is None or stats.last_failure_at > stats.last_success_at
    )
    return {
        "id": sub.id,
        "url": sub.url,
        "owner": sub.owner,
        "description": sub.description,
        "filters": sub.filter.as_dict(),
        "created_at": iso(sub.created_at),
        "status": "failing" if failing else "active",
        "stats": {
            **stats.counters,
            "last_success_at": _iso(stats.last_success_at),
            "last_failure_at": _iso(stats.last_failure_at),
            "last_error": stats.last_error or None,
        },
        "recent_deliveries": [
            {
                **{k: v for k, v in d.items() if k != "entry_id"},
                "event_id": d["entry_id"],
                "at": iso(d["at"]),
            }
            for d in stats.recent
        ],
        "dead_letters": [
            {**d, "dead_lettered_at": iso(d["dead_lettered_at"])} for d in stats.dead_letters
        ],
    }


async def _visible(svc: ServicesDep, sub_id: str, key: ApiKey) -> Subscription:
    sub = await svc.subscriptions.get(sub_id)
    if sub is None or (sub.owner != key.name and "admin" not in key.scopes):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown subscription {sub_id!r}")
    return sub


@router.post(
    "",
    summary="Subscribe a URL to alerts (webhook)",
    description="Every alert matching `filters` is POSTed to `url`, signed with `secret` "
    '(header `Vigil-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`), '
    "retried with exponential backoff and dead-lettered after the last attempt. Only http and "
    "https URLs are accepted.",
    status_code=status.HTTP_201_CREATED,
    response_model=SubscriptionOut,
    responses=errors(400, 401, 403, 422, 503),
)
async def create_subscription(
    body: SubscriptionIn, svc: ServicesDep, key: SubscribeKey
) -> dict[str, Any]:
    f = body.filters
    sub = Subscription(
        id="sub_" + secrets.token_hex(8),
        owner=key.name,
        url=str(body.url),
        filter=AlertFilter.parse(type=f.type, severity=f.severity, tier=f.tier, rm_id=f.rm_id),
        secret=body.secret.get_secret_value(),
        description=body.description,
        created_at=svc.clock.now(),
    )
    await svc.subscriptions.add(sub)
    return subscription_out(sub, SubscriptionStats())


@router.get(
    "",
    summary="The caller's subscriptions (all of them with the admin scope)",
    response_model=SubscriptionListOut,
    responses=errors(401, 403, 503),
)
async def list_subscriptions(svc: ServicesDep, key: SubscribeKey) -> dict[str, Any]:
    out = []
    for sub in await svc.subscriptions.all():
        if sub.owner == key.name or "admin" in key.scopes:
            out.append(subscription_out(sub, await svc.subscriptions.stats(sub.id, 0, 0)))
    return {"subscriptions": out}


@router.get(
    "/{subscription_id}",
    summary="A subscription's status, delivery counters, recent deliveries and dead letters",
    response_model=SubscriptionOut,
    responses=errors(401, 403, 404, 422, 503),
)
async def get_subscription(
    subscription_id: SubscriptionId, svc: ServicesDep, key: SubscribeKey
) -> dict[str, Any]:
    sub = await _visible(svc, subscription_id, key)
    stats = await svc.subscriptions.stats(sub.id, SHOWN_DELIVERIES, SHOWN_DEAD)
    return subscription_out(sub, stats)


@router.delete(
    "/{subscription_id}",
    summary="Delete a subscription (its queued deliveries are dropped)",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(401, 403, 404, 422, 503),
)
async def delete_subscription(
    subscription_id: SubscriptionId, svc: ServicesDep, key: SubscribeKey
) -> Response:
    sub = await _visible(svc, subscription_id, key)
    await svc.subscriptions.remove(sub.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
