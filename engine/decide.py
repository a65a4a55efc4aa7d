"""One decision, from an event and the customer's state after it. Pure: no I/O, no clock.

score -> rules -> lead grade -> experiments -> next-best action under the contact policy -> the
alert, action and audit records. The same function runs live, in the API's what-if and in replay;
it depends only on its arguments.

Propensities for arbitration come from ``ctx.scorer.propensities(features, action_ids)`` when
the scorer has that method (the ``offer_response`` model: action id -> (propensity, cold)), asked
for the eligible candidates only; otherwise, and for a cold action, from the catalog's prior.
The bank-wide daily capacity already used per channel is passed in ``capacity_used`` (counted by
the store); the capacity a decision takes is returned in ``Decision.reservations`` so the store
can count it idempotently.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from typing import Any

from actions.catalog import ActionCatalog
from actions.experiments import ExperimentView
from actions.experiments import view as experiment_view
from actions.nba import NO_ACTION, NbaOutcome, choose
from actions.policy import (
    CapacityReservation,
    CompiledPolicy,
    PolicyContext,
    compile_policy,
    customer_timezone,
)
from actions.routing import grade_lead
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
    # Daily channel capacity this decision takes: the store adds each key to its (channel, day)
    # set in the same commit as the effects (a redelivery adds nothing new).
    reservations: tuple[CapacityReservation, ...] = ()


@dataclass(frozen=True)
class DecisionContext:
    """What a decision reads besides the event and the state: versions and configuration.

    Built once per rule set; ``compiled_policy`` and ``rule_types`` are derived here.
    """

    scorer: ModelScorer
    rules: RuleSet
    catalog: ActionCatalog
    policy: PolicySettings
    audit_features: tuple[str, ...]
    compiled_policy: CompiledPolicy = field(init=False, repr=False, compare=False)
    rule_types: Mapping[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "compiled_policy", compile_policy(self.policy))
        types = {r.id: r.spec.alert_type for r in self.rules.rules}
        object.__setattr__(self, "rule_types", types)


def decide(
    event: AnyEvent,
    state: CustomerState,
    ctx: DecisionContext,
    decided_at: float,
    *,
    capacity_used: Mapping[str, int] | None = None,
    scores: Mapping[str, ModelScore] | None = None,
) -> Decision:
    """``scores``: every model's score of ``state.features`` when the caller scored its batch
    at once (``ModelScorer.score_many``); else they are scored here."""
    decision_id = stable_id("d", event.customer_id, event.event_id)
    fields = event_to_dict(event)
    features = state.features
    tier = str(features.get("tier", "long_tail"))
    if scores is None:
        scores = ctx.scorer.score(features)
    env: dict[str, Any] = dict(features)
    for name, s in scores.items():
        env[f"score_{name}"] = s.score
        env[f"cold_{name}"] = s.cold
    env.update(event_env(fields, ts=event.epoch))
    env.update(profile_env(state.profile))

    if event.type == "outcome" or state.status == "too_late":
        # A too-late event (older than the deduplication horizon behind the customer's newest
        # event) is recorded but raises nothing: the state no longer remembers whether it was
        # applied, so it may be a redelivery whose first decision was already published (its
        # batch was emitted before the later events that moved the watermark), and deciding it
        # again on today's state would raise alerts it never had.
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
    event_time, decision_time = iso(event.epoch), _decision_time(decided_at)
    policy = ctx.compiled_policy
    tz, tz_default = customer_timezone(state.profile, policy)
    hits = outcome.hits
    experiments = experiment_view(
        ctx.catalog,
        event.customer_id,
        event.epoch,
        [h.alert_type for h in hits],
        state.fired,
        ctx.rule_types,
        decision_id,
    )
    nba = NO_ACTION
    if hits:
        lead = grade_lead(
            [(h.rule_id, h.severity) for h in hits],
            {m: scores[m].score for m in policy.lead_models if m in scores and not scores[m].cold},
            high=policy.lead_high,
            mid=policy.lead_mid,
        )
        source = getattr(ctx.scorer, "propensities", None)
        nba = choose(
            hits,
            tier=tier,
            segment=state.profile.get("segment"),
            env=env,
            catalog=ctx.catalog,
            policy=policy,
            ctx=PolicyContext(
                ts=event.epoch,
                profile=state.profile,
                contacts=state.contacts,
                days_since_last_complaint=float(features.get("days_since_last_complaint", 9999.0)),
                decision_id=decision_id,
                capacity_used=capacity_used or {},
            ),
            lead=lead,
            propensities=(lambda ids: source(features, ids)) if callable(source) else None,
            experiment=experiments,
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
                channel=nba.chosen.channel,
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
        contacts = (Contact(event.epoch, nba.chosen.channel, decision_id, spec.id),)
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
        experiments=experiments,
        capacity_used=capacity_used or {},
    )
    reservations = (nba.reservation,) if nba.reservation is not None else ()
    return Decision(decision_id, alerts, actions, effects, record, reservations)


@lru_cache(maxsize=1)
def _decision_time(decided_at: float) -> str:
    """``iso(decided_at)``, remembered: every decision of a batch has the same time."""
    return iso(decided_at)


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
    experiments: ExperimentView,
    capacity_used: Mapping[str, int],
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
        "actions": _actions_record(nba, actions, ctx, capacity_used),
        "timezone": {"name": timezone[0], "default_used": timezone[1]},
        "experiment": experiments.record(),
    }


def _actions_record(
    nba: NbaOutcome,
    actions: tuple[ActionOut, ...],
    ctx: DecisionContext,
    capacity_used: Mapping[str, int],
) -> dict[str, Any]:
    """Arbitration explained: the lead and its route through the funnel, every candidate with
    why it lost, the actions that were not eligible, and the capacity taken."""
    lead = nba.lead
    return {
        "chosen": [a.action_id for a in actions],
        "lead_grade": nba.lead_grade,
        "lead": None
        if lead is None
        else {
            "score": lead.score,
            "grade": lead.grade,
            "evidence": dict(lead.evidence),
            "layer": nba.chosen.layer if nba.chosen is not None else None,
            "fell": [
                {"layer": s.layer, "reasons": list(s.reasons)}
                for s in nba.route
                if s.result == "fell"
            ],
        },
        "route": [
            {"layer": s.layer, "result": s.result, "reasons": list(s.reasons)} for s in nba.route
        ],
        "catalog_version": ctx.catalog.version,
        "policy_version": ctx.compiled_policy.version,
        "candidates": [
            {
                "action_id": action.id,
                "channel": channel,
                "layer": layer,
                "priority": round(priority, 6),
                "propensity": propensity,
                "propensity_source": source,
                "status": status,
                "stage": stage,
            }
            for (priority, propensity, source, action, channel, layer), (
                status,
                stage,
            ) in nba.rows()
        ],
        "ineligible": [{"action_id": i.action_id, "reason": i.reason} for i in nba.ineligible],
        "capacity": {
            "used": dict(capacity_used),
            "reserved": [
                {"channel": r.channel, "day": r.day, "key": r.key}
                for r in ((nba.reservation,) if nba.reservation else ())
            ],
        },
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
