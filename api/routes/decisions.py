"""A decision's full audit record and its explanation."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, status

from api.deps import ReadKey, ServicesDep
from api.explain import explanation
from api.routes.customers import finite
from api.schemas import DecisionOut, errors

DecisionId = Annotated[str, Path(min_length=1, max_length=128, description="The decision id")]
router = APIRouter(prefix="/decisions", tags=["decisions"])


@router.get(
    "/{decision_id}",
    summary="A decision's audit record, with its explanation",
    description="The input event, the features used, model versions and scores, the rule-set "
    "version, the rules that fired or were suppressed and why, the candidate actions and their "
    "ranking; plus the alerts it raised and the whole in plain sentences. Decisions are kept "
    "for the index's TTL (7 days by default).",
    response_model=DecisionOut,
    responses=errors(401, 403, 404, 422, 503),
)
async def get_decision(decision_id: DecisionId, svc: ServicesDep, _: ReadKey) -> dict[str, Any]:
    record = await svc.index.decision(decision_id)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown decision {decision_id!r}")
    record = finite(record)
    customer_id = str(record.get("customer_id", ""))
    alert_ids = set(record.get("alerts") or [])
    alerts = [
        a
        for a in await svc.index.recent_alerts(customer_id, svc.options.recent_per_customer)
        if a.get("alert_id") in alert_ids
    ]
    return {
        "decision_id": decision_id,
        "customer_id": customer_id,
        "event_id": str(record.get("event_id", "")),
        "event_type": str(record.get("event_type", "")),
        "event_time": str(record.get("event_time", "")),
        "decision_time": str(record.get("decision_time", "")),
        "explanation": explanation(record),
        "alerts": alerts,
        "record": record,
    }
