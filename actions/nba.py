"""Next-best-action arbitration under the contact policy and the lead funnel. Pure.

**Candidates.** Every catalog action that answers one of the decision's alert types is considered;
one that does not serve the customer's tier or segment, or whose ``eligible_when`` is false, is
recorded as *ineligible* with the reason. Each eligible action yields one candidate per channel.

**Priority.**

    priority = propensity x value x weight x severity weight - cost

``propensity`` is the ``offer_response`` model's estimate for the action when the scorer provides
it and it is warm, else the catalog's prior; ``value`` and ``cost`` are the action's (currency
units); ``weight`` its business weight (default 1); the severity weight is the highest among the
alerts the action answers (low 0.5, medium 1, high 1.5, critical 2). Candidates are ranked by
priority, then lower cost, then action id, then the channel's place in the action's list: the
ranking is a total order, so the same inputs always give the same choice.

**Choice.** The lead funnel (``actions.routing``) says which layers the lead may use, its own
first. Layer by layer, the best-ranked candidate the contact policy allows is chosen; if none is,
the lead falls to the next layer. An experiment's control group gets no action; a variant may
limit the actions. Every candidate keeps why it lost (``status``) and at which stage.

The values made per decision are named tuples rather than frozen dataclasses: as immutable, and
several times cheaper to build (docs/actions.md: at most 30 µs per decision with 50 actions).

>>> from pathlib import Path
>>> from actions.catalog import load_catalog
>>> from actions.policy import compile_policy
>>> from actions.routing import grade_lead
>>> from engine.config import PolicySettings
>>> from rules.evaluator import RuleHit
>>> hits = [RuleHit("r1", "churn_risk", "high", 90, "why", {})]
>>> policy = compile_policy(PolicySettings())
>>> out = choose(hits, tier="basic", segment=None, env={},
...              catalog=load_catalog(Path("actions/catalog.yaml")), policy=policy,
...              ctx=PolicyContext(ts=1767319200.0, profile={"consent_rm_call": "0"}, contacts=(),
...                                days_since_last_complaint=9999.0, decision_id="d1"),
...              lead=grade_lead([("r1", "high")], {}, high=0.75, mid=0.5))
>>> out.chosen.action.id, out.chosen.channel
('robot_call_checkin', 'robot_call')
>>> [(s.layer, s.result, s.reasons) for s in out.route]
[('high', 'fell', ('no_offline_rm_for_tier',)), ('mid', 'chosen', ('no_consent_rm_call',))]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from operator import itemgetter
from typing import Any, NamedTuple, Protocol

from actions.catalog import ActionCatalog, ActionSpec
from actions.experiments import NO_EXPERIMENTS, ExperimentView
from actions.policy import (
    CapacityReservation,
    CompiledPolicy,
    ContactChecker,
    PolicyContext,
    bank_day,
)
from actions.routing import LAYER_OF_CHANNEL, LAYERS, Lead, layers_for
from rules.evaluator import RuleHit
from rules.expressions import Expression

SEVERITY_WEIGHT: dict[str, float] = {"low": 0.5, "medium": 1.0, "high": 1.5, "critical": 2.0}


class PropensitySource(Protocol):
    """What a scorer offers when it has the ``offer_response`` model (``ModelScorer`` does):
    per action id, the propensity to respond and whether the model is still cold for it.
    ``engine.decide`` calls it with the features only (the actions that have a model)."""

    def propensities(
        self, features: Mapping[str, Any], actions: Iterable[str] | None = None
    ) -> Mapping[str, tuple[float, bool]]: ...


# {action_id: (propensity, cold)}, or a function of the action ids wanted returning it.
Propensities = (
    Mapping[str, tuple[float, bool]] | Callable[[Sequence[str]], Mapping[str, tuple[float, bool]]]
)


class Candidate(NamedTuple):
    """One (action, channel) considered. ``status``: ``chosen``, ``outranked`` or the reason it
    was refused; ``stage``: where it was decided (chosen, rank, routing, experiment, policy)."""

    priority: float
    propensity: float
    propensity_source: str
    action: ActionSpec
    channel: str
    layer: str
    status: str
    stage: str


class Ineligible(NamedTuple):
    action_id: str
    reason: str


class RouteStep(NamedTuple):
    """A funnel layer tried for the lead: ``chosen`` there, or ``fell`` to the next, with the
    reasons (in rank order, distinct) its candidates were refused."""

    layer: str
    result: str
    reasons: tuple[str, ...]


class NbaOutcome(NamedTuple):
    """The choice, the lead and its route through the funnel, the ineligible actions, the
    capacity reservation, and every candidate with its verdict.

    The candidates are kept compact (the ranking, one (status, stage) per entry, the entries
    whose eligibility condition failed) and made into ``Candidate`` values on demand: ``rows()``
    yields (ranked entry, verdict) pairs without building them, ``candidates`` builds them.
    ``ids`` (each entry's action id) is needed only with ``failed``, which only a ranking by
    priors has (a re-ranking leaves those actions out).
    """

    chosen: Candidate | None
    lead: Lead | None
    route: tuple[RouteStep, ...] = ()
    ineligible: tuple[Ineligible, ...] = ()
    reservation: CapacityReservation | None = None
    ranked: Sequence[_Ranked] = ()
    verdicts: Sequence[tuple[str, str]] = ()
    ids: Sequence[str] = ()
    failed: AbstractSet[str] = frozenset()

    @property
    def lead_grade(self) -> str:
        return self.lead.grade if self.lead is not None else "none"

    def rows(self) -> Iterable[tuple[_Ranked, tuple[str, str]]]:
        """(priority, propensity, source, action, channel, layer), (status, stage): in rank
        order, eligible candidates only."""
        if not self.failed:
            return zip(self.ranked, self.verdicts, strict=True)
        failed = self.failed
        return (
            (c, v)
            for c, v, i in zip(self.ranked, self.verdicts, self.ids, strict=True)
            if i not in failed
        )

    @property
    def candidates(self) -> tuple[Candidate, ...]:
        # A ranked entry is a Candidate's first six fields (tuple.__new__: no per-field call).
        return tuple([_new(Candidate, c + v) for c, v in self.rows()])


NO_ACTION = NbaOutcome(None, None)
_new = tuple.__new__
_NONE: frozenset[str] = frozenset()
# The layers above the first layer a lead may use.
_ABOVE: dict[str, tuple[str, ...]] = {g: LAYERS[: LAYERS.index(g)] for g in LAYERS}
_CHOSEN = ("chosen", "chosen")
_OUTRANKED = ("outranked", "rank")
_LOWER_LAYER = ("outranked", "routing")
_ABOVE_GRADE = ("above_lead_grade", "routing")
_NO_OFFLINE_RM = ("no_offline_rm_for_tier", "routing")
_CONTROL = ("control_group", "experiment")
_NOT_IN_VARIANT = ("not_in_variant", "experiment")


def ineligibility(
    action: ActionSpec,
    tier: str,
    segment: str | None,
    env: Mapping[str, Any],
    catalog: ActionCatalog,
) -> str | None:
    """None when the action may serve this customer, else why not."""
    why = _static_ineligibility(action, tier, segment)
    return why if why is not None else _condition_fails(action, env, catalog)


def _static_ineligibility(action: ActionSpec, tier: str, segment: str | None) -> str | None:
    if tier not in action.tiers:
        return "ineligible_tier"
    if action.segments and segment not in action.segments:
        return "ineligible_segment"
    return None


def _condition_fails(
    action: ActionSpec, env: Mapping[str, Any], catalog: ActionCatalog
) -> str | None:
    condition = catalog.conditions.get(action.id)
    if condition is None:
        return None
    try:
        return None if condition.evaluate(env) else "ineligible_condition"
    except (TypeError, ValueError, ArithmeticError) as exc:
        return f"eligibility_error: {exc}"


# (priority, propensity, propensity source, action, channel, layer): one ranked candidate, the
# first six fields of a Candidate.
_Ranked = tuple[float, float, str, ActionSpec, str, str]
# An eligible action in a plan: id, value x weight x severity weight, cost, its candidates ranked
# by its prior propensity, and their tails (action, channel, layer), in channel order.
_Eligible = tuple[str, float, float, tuple[_Ranked, ...], tuple[tuple[ActionSpec, str, str], ...]]
# An eligibility condition and the eligible actions that have it (evaluated once for them all).
_Check = tuple[Callable[[Mapping[str, Any]], Any], tuple[str, ...]]
_PLAN_CACHE_SIZE = 4096
_PRIORITY = itemgetter(0)
_TIE_BREAK = itemgetter(2, 0)  # (cost, action id) of an eligible action: unique


class _Plan(NamedTuple):
    """A ranking: candidates in rank order (by priors: each one's action id beside it), the
    indexes of each funnel layer's candidates in rank order, the eligible actions in tie-break
    order (cost, then id), the eligibility conditions left to evaluate, and the ineligible
    actions."""

    ranked: Sequence[_Ranked]
    ids: Sequence[str]
    by_layer: Mapping[str, Sequence[int]]
    weighted: tuple[_Eligible, ...]
    checks: tuple[_Check, ...]
    ineligible: tuple[Ineligible, ...]


def _evaluator(condition: Expression) -> Callable[[Mapping[str, Any]], Any]:
    """The compiled closure of a condition when it exposes it (no method call), else evaluate."""
    fn = getattr(condition, "fn", None)
    return fn if callable(fn) else condition.evaluate


def _by_priority(ranked: list[_Ranked]) -> list[_Ranked]:
    """Candidates listed in tie-break order -- by cost, then action id, each action's channels
    in their listed order -- put in rank order. The sort is stable: sorting by priority alone
    keeps the tie-break order among equal priorities, so the whole total order comes out of
    one sort whose key is a field of the candidate (no key tuple made per candidate)."""
    ranked.sort(key=_PRIORITY, reverse=True)
    return ranked


def _layer_indexes(ranked: Sequence[_Ranked]) -> dict[str, list[int]]:
    """The indexes of each funnel layer's candidates, in rank order."""
    by_layer: dict[str, list[int]] = {layer: [] for layer in LAYERS}
    for i, c in enumerate(ranked):
        by_layer[c[5]].append(i)
    return by_layer


def _checks(action_ids: Iterable[str], conditions: Mapping[str, Expression]) -> tuple[_Check, ...]:
    """The eligibility conditions of these actions, each distinct condition once: actions often
    share one (a holding such as ``wealth_buy_90d > 0``), and the same text over the same
    features gives the same answer (or the same error)."""
    sharing: dict[str, list[str]] = {}
    evaluators: dict[str, Callable[[Mapping[str, Any]], Any]] = {}
    for action_id in action_ids:
        condition = conditions.get(action_id)
        if condition is not None:
            sharing.setdefault(condition.source, []).append(action_id)
            evaluators.setdefault(condition.source, _evaluator(condition))
    return tuple((evaluators[text], tuple(ids)) for text, ids in sharing.items())


def _plan(
    severity: Mapping[str, float], tier: str, segment: str | None, catalog: ActionCatalog
) -> _Plan:
    """The ranking by prior propensities of these alerts for this tier and segment, memoised
    on the catalog (a pure function of its key and the catalog)."""
    key = (tuple(sorted(severity.items())), tier, segment if catalog.uses_segments else None)
    cache = catalog.plans
    hit = cache.get(key)
    if hit is not None:
        return hit  # type: ignore[no-any-return]
    seen: set[str] = set()
    weighted: list[_Eligible] = []
    ineligible: list[Ineligible] = []
    for alert_type in severity:
        for action in catalog.answering(alert_type):
            if action.id in seen:
                continue
            seen.add(action.id)
            why = _static_ineligibility(action, tier, segment)
            if why is not None:
                ineligible.append(Ineligible(action.id, why))
                continue
            weight = max([severity.get(t, 0.0) for t in action.answers])
            tails = tuple((action, c, LAYER_OF_CHANNEL[c]) for c in action.channels)
            scale = action.value * action.weight * weight
            head = (action.propensity * scale - action.cost, action.propensity, "prior")
            by_prior = tuple([head + tail for tail in tails])
            weighted.append((action.id, scale, action.cost, by_prior, tails))
    weighted.sort(key=_TIE_BREAK)
    ranked = _by_priority([c for e in weighted for c in e[3]])
    by_layer = _layer_indexes(ranked)
    plan = _Plan(
        tuple(ranked),
        tuple([c[3].id for c in ranked]),
        {layer: tuple(ix) for layer, ix in by_layer.items()},
        tuple(weighted),
        _checks([e[0] for e in weighted], catalog.conditions),
        tuple(ineligible),
    )
    if len(cache) >= _PLAN_CACHE_SIZE:
        cache.clear()
    cache[key] = plan
    return plan


def _arrange(
    hits: Sequence[RuleHit],
    tier: str,
    segment: str | None,
    env: Mapping[str, Any],
    catalog: ActionCatalog,
    propensities: Propensities | None,
) -> tuple[_Plan, frozenset[str] | set[str], list[Ineligible]]:
    """This decision's ranking, the actions whose condition failed, every ineligible action."""
    severity: dict[str, float] = {}
    for hit in hits:
        w = SEVERITY_WEIGHT[hit.severity]
        if w > severity.get(hit.alert_type, 0.0):
            severity[hit.alert_type] = w
    plan = _plan(severity, tier, segment, catalog)
    ineligible = list(plan.ineligible)
    failed: set[str] = set()
    for condition, action_ids in plan.checks:
        try:
            if condition(env):
                continue
            why = "ineligible_condition"
        except (TypeError, ValueError, ArithmeticError) as exc:
            why = f"eligibility_error: {exc}"
        failed.update(action_ids)
        for action_id in action_ids:
            ineligible.append(_new(Ineligible, (action_id, why)))
    if len(ineligible) > 1:
        ineligible.sort()
    if callable(propensities):  # asked only for the eligible actions
        wanted = [e[0] for e in plan.weighted if not (failed and e[0] in failed)]
        propensities = propensities(wanted) if wanted else None
    if propensities:
        for _, cold in propensities.values():
            if not cold:  # a warm propensity: ranked again
                return _rerank(plan, failed, propensities), _NONE, ineligible
    return plan, failed, ineligible


def _rerank(
    plan: _Plan, failed: AbstractSet[str], propensities: Mapping[str, tuple[float, bool]]
) -> _Plan:
    """The plan's eligible candidates ranked again with the model's warm propensities (a value
    outside [0, 1] is not used: the action keeps its candidates by prior). Listed in the
    plan's tie-break order, one stable sort by priority ranks them (see ``_by_priority``)."""
    get = propensities.get
    ranked: list[_Ranked] = []
    for action_id, scale, cost, by_prior, tails in plan.weighted:
        if failed and action_id in failed:
            continue
        learned = get(action_id)
        if learned is not None and not learned[1] and 0.0 <= learned[0] <= 1.0:
            propensity = float(learned[0])
            head = (propensity * scale - cost, propensity, "model")
            for tail in tails:
                ranked.append(head + tail)
        else:
            ranked += by_prior
    _by_priority(ranked)
    return _Plan(ranked, (), _layer_indexes(ranked), plan.weighted, (), ())


def rank(
    hits: Sequence[RuleHit],
    *,
    tier: str,
    segment: str | None,
    env: Mapping[str, Any],
    catalog: ActionCatalog,
    propensities: Propensities | None = None,
) -> tuple[list[_Ranked], list[Ineligible]]:
    """Eligible (priority, propensity, source, action, channel, layer), best first; and the
    actions that answer an alert but may not serve this customer, by id."""
    plan, failed, ineligible = _arrange(hits, tier, segment, env, catalog, propensities)
    if not failed:
        return list(plan.ranked), ineligible
    return [c for c, i in zip(plan.ranked, plan.ids, strict=True) if i not in failed], ineligible


def choose(
    hits: Sequence[RuleHit],
    *,
    tier: str,
    segment: str | None,
    env: Mapping[str, Any],
    catalog: ActionCatalog,
    policy: CompiledPolicy,
    ctx: PolicyContext,
    lead: Lead,
    propensities: Propensities | None = None,
    experiment: ExperimentView = NO_EXPERIMENTS,
) -> NbaOutcome:
    """Rank, route through the funnel, apply the experiment and the contact policy.

    ``propensities``: ``{action_id: (propensity, cold)}``, or a function of the eligible action
    ids returning it (so a scorer predicts only for those); cold or missing: the prior.
    """
    plan, failed, ineligible = _arrange(hits, tier, segment, env, catalog, propensities)
    ranked, ids, by_layer = plan.ranked, plan.ids, plan.by_layer
    layers = layers_for(lead.grade)
    control = experiment.control
    allowed = experiment.allowed
    # (status, stage) per ranked index. By default a candidate in a layer above the lead's grade
    # is refused by routing, and one in a layer never reached is outranked by routing (a higher
    # layer served the lead); the layers tried below overwrite what they decide.
    if control is not None:
        verdict = [_CONTROL] * len(ranked)
    else:
        verdict = [_LOWER_LAYER] * len(ranked)
        for layer in _ABOVE[layers[0]]:
            for i in by_layer[layer]:
                verdict[i] = _ABOVE_GRADE
        if allowed is not None:
            for layer in layers:
                for i in by_layer[layer]:
                    if ranked[i][3].id not in allowed:
                        verdict[i] = _NOT_IN_VARIANT

    chosen_i: int | None = None
    route: list[RouteStep] = []
    checker = ContactChecker(ctx, policy)
    checked: dict[str, str | None] = {}
    for layer in layers if control is None else ():
        pool = by_layer[layer]
        if layer == "high" and tier not in policy.offline_rm_tiers:
            for i in pool:
                verdict[i] = _NO_OFFLINE_RM
            route.append(_new(RouteStep, (layer, "fell", (_NO_OFFLINE_RM[0],))))
            continue
        reasons: list[str] = []
        tried = False
        for n, i in enumerate(pool):
            if (failed and ids[i] in failed) or verdict[i] is _NOT_IN_VARIANT:
                continue
            tried = True
            channel = ranked[i][4]
            if channel in checked:
                reason = checked[channel]
            else:
                reason = checked[channel] = checker.check(channel)
            if reason is None:
                chosen_i = i
                verdict[i] = _CHOSEN
                for j in pool[n + 1 :]:
                    if verdict[j] is _LOWER_LAYER:
                        verdict[j] = _OUTRANKED
                break
            verdict[i] = (reason, "policy")
            if reason not in reasons:
                reasons.append(reason)
        if not tried:
            reasons.append("no_candidate")
        result = "fell" if chosen_i is None else "chosen"
        route.append(_new(RouteStep, (layer, result, tuple(reasons))))
        if chosen_i is not None:
            break

    chosen = _new(Candidate, ranked[chosen_i] + _CHOSEN) if chosen_i is not None else None
    reservation = None
    if chosen is not None and chosen.channel in policy.daily_capacity:
        reservation = CapacityReservation(
            chosen.channel, bank_day(ctx.ts, policy), f"{ctx.decision_id}:{chosen.action.id}"
        )
    return NbaOutcome(
        chosen, lead, tuple(route), tuple(ineligible), reservation, ranked, verdict, ids, failed
    )
