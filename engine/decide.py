"""One decision, from an event and the customer's state after it. Pure: no I/O, no clock.

score -> rules -> next-best action -> the alert, action and audit records. The same function
runs live, in the API's what-if and in replay; it depends only on its arguments.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from actions.catalog import ActionCatalog
from actions.nba import NbaOutcome, choose
from actions.policy import PolicyContext, customer_timezone
from engine.config import PolicySettings
from engine.events import AnyEvent, event_to_dict, iso
from engine.types import ActionOut, AlertOut, Contact, CustomerState, Effects, Fired, ModelScore
from online_models.scorer import ModelScorer
from rules.evaluator import RuleOutcome, RuleSet
from rules.names import event_env, profile_env


def stable_id(prefix: str, *parts: str) -> str:
    """A deterministic id: the same inputs give the same id on every redelivery and in replay.

    >>> stable_id("d", "c1", "e1") == stable_id("d", "c1", "e1")
    True
    """
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=12).hexdigest()
    return f"{prefix}-{digest}"


@dataclass(frozen=True, slots=True)
class Decision:
    decision_id: str
    alerts: tuple[AlertOut, ...]
    actions: tuple[ActionOut, ...]
    effects: Effects
    record: dict[str, Any]


@dataclass(frozen=True)
class DecisionContext:
    """What a decision reads besides the event and the state: versions and configuration."""

    scorer: ModelScorer
    rules: RuleSet
    catalog: ActionCatalog
    policy: PolicySettings
    audit_features: tuple[str, ...]


def decide(
    event: AnyEvent, state: CustomerState, ctx: DecisionContext, decided_at: float
) -> Decision:
    decision_id = stable_id("d", event.customer_id, event.event_id)
    fields = event_to_dict(event)
    features = state.features
    tier = str(features.get("tier", "long_tail"))
    scores = ctx.scorer.score(features)
    env: dict[str, Any] = dict(features)
    for name, s in scores.items():
        env[f"score_{name}"] = s.score
        env[f"cold_{name}"] = s.cold
    env.update(event_env({**fields, "ts": event.epoch}))
    env.update(profile_env(state.profile))

    if event.type == "outcome":
        outcome = RuleOutcome()
    else:
        outcome = ctx.rules.evaluate(
            env,
            tier=tier,
            segment=state.profile.get("segment"),
            fired=state.fired,
            ts=event.epoch,
            decision_id=decision_id,
        )
    event_time, decision_time = iso(event.epoch), iso(decided_at)
    tz, tz_default = customer_timezone(state.profile, ctx.policy)
    nba = (
        choose(
            outcome.hits,
            tier,
            ctx.catalog,
            PolicyContext(
                ts=event.epoch,
                profile=state.profile,
                contacts=state.contacts,
                days_since_last_complaint=float(features.get("days_since_last_complaint", 9999.0)),
                decision_id=decision_id,
            ),
            ctx.policy,
        )
        if outcome.hits
        else NbaOutcome(None, (), "none")
    )

    score_values = {name: s.score for name, s in scores.items()}
    alerts = tuple(
        AlertOut(
            alert_id=stable_id("a", decision_id, hit.rule_id),
            decision_id=decision_id,
            event_id=event.event_id,
            customer_id=event.customer_id,
            type=hit.alert_type,
            severity=hit.severity,
            rule_id=hit.rule_id,
            ruleset_version=ctx.rules.version,
            reason=hit.reason,
            conditions=hit.values,
            scores=score_values,
            tier=tier,
            rm_id=state.profile.get("rm_id"),
            event_time=event_time,
            decision_time=decision_time,
        )
        for hit in outcome.hits
    )
    actions: tuple[ActionOut, ...] = ()
    contacts: tuple[Contact, ...] = ()
    if nba.chosen is not None:
        spec = nba.chosen.action
        actions = (
            ActionOut(
                action_msg_id=stable_id("x", decision_id, spec.id),
                idempotency_key=f"{decision_id}:{spec.id}",
                decision_id=decision_id,
                event_id=event.event_id,
                customer_id=event.customer_id,
                action_id=spec.id,
                channel=spec.channel,
                goal=spec.goal,
                template_id=spec.template_id,
                priority=round(nba.chosen.priority, 6),
                answers_alerts=tuple(a.alert_id for a in alerts if a.type in spec.answers),
                lead_grade=nba.lead_grade,
                event_time=event_time,
                decision_time=decision_time,
                catalog_version=ctx.catalog.version,
            ),
        )
        contacts = (Contact(event.epoch, spec.channel, decision_id, spec.id),)
    effects = Effects(
        customer_id=event.customer_id,
        fired={a.rule_id: Fired(event.epoch, decision_id) for a in alerts},
        contacts=contacts,
    )
    record = _audit_record(
        event_fields=fields,
        decision_id=decision_id,
        state=state,
        scores=scores,
        outcome=outcome,
        nba=nba,
        alerts=alerts,
        actions=actions,
        ctx=ctx,
        event_time=event_time,
        decision_time=decision_time,
        timezone=(tz, tz_default),
    )
    return Decision(decision_id, alerts, actions, effects, record)


def _audit_record(
    *,
    event_fields: Mapping[str, Any],
    decision_id: str,
    state: CustomerState,
    scores: Mapping[str, ModelScore],
    outcome: RuleOutcome,
    nba: NbaOutcome,
    alerts: tuple[AlertOut, ...],
    actions: tuple[ActionOut, ...],
    ctx: DecisionContext,
    event_time: str,
    decision_time: str,
    timezone: tuple[str, bool],
) -> dict[str, Any]:
    """The decision explains itself: inputs, features used, versions, what fired and why."""
    features = state.features
    return {
        "decision_id": decision_id,
        "event_id": event_fields["event_id"],
        "customer_id": event_fields["customer_id"],
        "event_type": event_fields["type"],
        "event_time": event_time,
        "decision_time": decision_time,
        "state_status": state.status,
        "input": dict(event_fields),
        "tier": features.get("tier"),
        "features": {name: features.get(name) for name in ctx.audit_features},
        "scores": {
            name: {"score": s.score, "version": s.version, "cold": s.cold}
            for name, s in scores.items()
        },
        "ruleset_version": ctx.rules.version,
        "rules": {
            "fired": [
                {"rule_id": h.rule_id, "reason": h.reason, "values": dict(h.values)}
                for h in outcome.hits
            ],
            "suppressed": [{"rule_id": s.rule_id, "reason": s.reason} for s in outcome.suppressed],
            "errors": [{"rule_id": s.rule_id, "reason": s.reason} for s in outcome.errors],
        },
        "alerts": [a.alert_id for a in alerts],
        "actions": {
            "chosen": [a.action_id for a in actions],
            "lead_grade": nba.lead_grade,
            "catalog_version": ctx.catalog.version,
            "candidates": [
                {
                    "action_id": c.action.id,
                    "channel": c.action.channel,
                    "priority": round(c.priority, 6),
                    "propensity": c.propensity,
                    "status": c.status,
                }
                for c in nba.candidates
            ],
        },
        "timezone": {"name": timezone[0], "default_used": timezone[1]},
        "experiment": None,
    }


def alert_message(alert: AlertOut) -> dict[str, Any]:
    return asdict(alert)


def action_message(action: ActionOut) -> dict[str, Any]:
    out = asdict(action)
    out["answers_alerts"] = list(action.answers_alerts)
    return out


def with_batch_effects(state: CustomerState, earlier: Effects | None) -> CustomerState:
    """The state as seen after earlier decisions of the same batch (not yet in the store)."""
    if earlier is None or not earlier:
        return state
    fired = dict(state.fired)
    for rule_id, f in earlier.fired.items():
        old = fired.get(rule_id)
        if old is None or f.ts > old.ts:
            fired[rule_id] = f
    known = {(c.decision_id, c.action_id) for c in state.contacts}
    extra = tuple(c for c in earlier.contacts if (c.decision_id, c.action_id) not in known)
    return replace(state, fired=fired, contacts=state.contacts + extra)


def merge_effects(a: Effects | None, b: Effects) -> Effects:
    if a is None:
        return b
    fired = dict(a.fired)
    for rule_id, f in b.fired.items():
        if rule_id not in fired or f.ts > fired[rule_id].ts:
            fired[rule_id] = f
    return Effects(a.customer_id, fired, a.contacts + b.contacts)
