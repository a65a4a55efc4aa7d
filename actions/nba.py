"""Next-best-action arbitration. Pure.

Candidates are the catalog actions that answer one of the decision's alert types and serve the
customer's tier. Each gets

    priority = propensity x value x severity weight - cost

where propensity is the ``offer_response`` model's estimate when warm, else the catalog's prior,
and the severity weight is the highest among the alerts the action answers (low 0.5, medium 1,
high 1.5, critical 2). Ties break by lower cost, then action id. The best candidate that the
contact policy allows is chosen; every other candidate is kept with why it lost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from actions.catalog import ActionCatalog, ActionSpec
from actions.policy import PolicyContext, check_contact
from engine.config import PolicySettings
from rules.evaluator import RuleHit

SEVERITY_WEIGHT: dict[str, float] = {"low": 0.5, "medium": 1.0, "high": 1.5, "critical": 2.0}


@dataclass(frozen=True, slots=True)
class Candidate:
    action: ActionSpec
    priority: float
    propensity: float
    status: str  # "chosen", "outranked" or the policy reason it was suppressed


@dataclass(frozen=True, slots=True)
class NbaOutcome:
    chosen: Candidate | None
    candidates: tuple[Candidate, ...]
    lead_grade: str


def lead_grade(hits: Sequence[RuleHit]) -> str:
    """The funnel layer: high (offline RM), mid (remote RM nurturing), low (incubation pool)."""
    weight = max((SEVERITY_WEIGHT[h.severity] for h in hits), default=0.0)
    return "high" if weight >= 1.5 else "mid" if weight >= 1.0 else "low"


def rank(
    hits: Sequence[RuleHit],
    tier: str,
    catalog: ActionCatalog,
    propensities: Mapping[str, float],
) -> list[tuple[ActionSpec, float, float]]:
    """Eligible actions with (priority, propensity), best first."""
    out = []
    for action in catalog.actions:
        if tier not in action.tiers:
            continue
        weights = [SEVERITY_WEIGHT[h.severity] for h in hits if h.alert_type in action.answers]
        if not weights:
            continue
        propensity = propensities.get(action.id, action.propensity)
        priority = propensity * action.value * max(weights) - action.cost
        out.append((action, priority, propensity))
    out.sort(key=lambda c: (-c[1], c[0].cost, c[0].id))
    return out


def choose(
    hits: Sequence[RuleHit],
    tier: str,
    catalog: ActionCatalog,
    ctx: PolicyContext,
    settings: PolicySettings,
    propensities: Mapping[str, float] | None = None,
) -> NbaOutcome:
    grade = lead_grade(hits)
    chosen: Candidate | None = None
    candidates = []
    for action, priority, propensity in rank(hits, tier, catalog, propensities or {}):
        if chosen is not None:
            candidates.append(Candidate(action, priority, propensity, "outranked"))
            continue
        reason = check_contact(action.channel, ctx, settings)
        candidate = Candidate(action, priority, propensity, reason or "chosen")
        if reason is None:
            chosen = candidate
        candidates.append(candidate)
    return NbaOutcome(chosen, tuple(candidates), grade)
