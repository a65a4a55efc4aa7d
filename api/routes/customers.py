"""A customer's current state: features, tier, profile, cooldowns and contacts (read-only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, status

from api.deps import ReadKey, ServicesDep
from features.state import state_as_dict

Annotated_id = Annotated[str, Path(min_length=1, max_length=128, description="The customer id")]
router = APIRouter(prefix="/customers", tags=["customers"])


@router.get("/{customer_id}", summary="A customer's current features and contact-policy state")
async def get_customer(customer_id: Annotated_id, svc: ServicesDep, _: ReadKey) -> dict[str, Any]:
    state = await svc.store.read(customer_id)
    if state is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown customer {customer_id!r}")
    return state_as_dict(state)
