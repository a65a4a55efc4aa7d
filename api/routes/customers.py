"""The customer 360 view: current state, the scores of the latest decision, recent history."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, status

from api.deps import ReadKey, ServicesDep
from api.explain import contact_counters
from api.schemas import CustomerOut, errors
from engine.events import iso

CustomerId = Annotated[str, Path(min_length=1, max_length=128, description="The customer id")]
router = APIRouter(prefix="/customers", tags=["customers"])
RECENT = 20


def finite(value: Any) -> Any:
    """JSON has no NaN or infinity: such numbers become null.

    >>> finite({"a": float("inf"), "b": [1.5, float("nan")]})
    {'a': None, 'b': [1.5, None]}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def summary(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "decision_id": record.get("decision_id", ""),
        "event_id": record.get("event_id", ""),
        "event_type": record.get("event_type", ""),
        "event_time": record.get("event_time", ""),
        "decision_time": record.get("decision_time", ""),
        "alerts": list(record.get("alerts") or []),
        "actions": list((record.get("actions") or {}).get("chosen") or []),
    }


@router.get(
    "/{customer_id}",
    summary="A customer's 360 view",
    description="Current features, tier and profile; model scores of the latest decision; "
    "alert cooldowns, contacts and contact-policy counters; recent alerts and decisions.",
    response_model=CustomerOut,
    responses=errors(401, 403, 404, 422, 503),
)
async def get_customer(customer_id: CustomerId, svc: ServicesDep, _: ReadKey) -> dict[str, Any]:
    state = await svc.store.read(customer_id)
    if state is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown customer {customer_id!r}")
    decisions = await svc.index.recent_decisions(customer_id, RECENT)
    alerts = await svc.index.recent_alerts(customer_id, RECENT)
    latest = decisions[0] if decisions else None
    features = finite(dict(state.features))
    complaint = features.get("days_since_last_complaint")
    return {
        "customer_id": state.customer_id,
        "as_of": iso(state.now),
        "tier": features.get("tier"),
        "features": features,
        "profile": dict(state.profile),
        "scores": finite(latest.get("scores") or {}) if latest else {},
        "scores_decision_id": latest.get("decision_id") if latest else None,
        "cooldowns": {
            rule: {"last_fired_at": iso(f.ts), "decision_id": f.decision_id}
            for rule, f in sorted(state.fired.items())
        },
        "contacts": [
            {
                "at": iso(c.ts),
                "channel": c.channel,
                "decision_id": c.decision_id,
                "action_id": c.action_id,
            }
            for c in sorted(state.contacts, key=lambda c: c.ts, reverse=True)
        ],
        "contact_policy": contact_counters(
            state.contacts,
            state.now,
            float(complaint) if isinstance(complaint, int | float) else 9999.0,
            svc.settings.policy,
        ),
        "recent_alerts": alerts,
        "recent_decisions": [summary(d) for d in decisions],
    }
