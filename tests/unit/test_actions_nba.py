"""Arbitration and the lead funnel: priorities, deterministic ties, eligibility, routing between
layers when a layer is refused, and the record of why each candidate lost."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from actions.catalog import ActionCatalog, parse_catalog
from actions.nba import NbaOutcome, choose, rank
from actions.policy import PolicyContext, compile_policy
from actions.routing import LAYER_OF_CHANNEL, grade_lead, layers_for, lead_score
from engine.config import PolicySettings
from engine.events import CHANNELS
from engine.types import Contact
from rules.evaluator import RuleHit

MORNING = 1767578400.0  # 10:00 in Shanghai
NIGHT = 1767621600.0  # 22:00 in Shanghai


def action(
    id: str, channels: list[str], value: float, cost: float, propensity: float, **extra: Any
) -> dict[str, Any]:
    return {
        "id": id,
        "description": id,
        "goal": "retain",
        "channels": channels,
        "answers": extra.pop("answers", ["churn_risk", "asset_drop"]),
        "value": value,
        "cost": cost,
        "propensity": propensity,
        "template_id": "t_" + "_".join(channels),
        **extra,
    }


def funnel_doc() -> dict[str, Any]:
    actions = [
        action("visit", ["rm_handoff"], 5000, 300, 0.3, tiers=["affluent", "basic"]),
        action("call", ["rm_call"], 1500, 60, 0.2, tiers=["basic", "affluent"]),
        action("robot", ["robot_call"], 400, 2, 0.1),
        action("sms_offer", ["sms"], 300, 0.05, 0.06),
        action("nudge", ["push", "in_app"], 120, 0.01, 0.05),
        action("digest", ["email"], 60, 0.01, 0.03, eligible_when="wealth_buy_90d > 0"),
        action("family_sms", ["sms"], 900, 0.05, 0.05, segments=["family"]),
    ]
    channel_sets = sorted({tuple(a["channels"]) for a in actions})
    templates = [{"id": "t_" + "_".join(c), "channels": list(c), "text": "x"} for c in channel_sets]
    return {"templates": templates, "actions": actions}


def catalog_of(d: dict[str, Any]) -> ActionCatalog:
    return parse_catalog(d, source="test", version="v", models=["churn_risk"])


FUNNEL = catalog_of(funnel_doc())


def hit(severity: str = "high", alert_type: str = "churn_risk", rule: str = "r1") -> RuleHit:
    return RuleHit(rule, alert_type, severity, 50, "why", {})


def decide_nba(
    hits: Sequence[RuleHit],
    *,
    tier: str = "affluent",
    segment: str | None = None,
    env: Mapping[str, Any] | None = None,
    catalog: ActionCatalog = FUNNEL,
    ts: float = MORNING,
    profile: Mapping[str, str] | None = None,
    contacts: tuple[Contact, ...] = (),
    capacity: Mapping[str, int] | None = None,
    propensities: Mapping[str, tuple[float, bool]] | None = None,
    **settings: Any,
) -> NbaOutcome:
    policy = compile_policy(PolicySettings(**settings))
    lead = grade_lead(
        [(h.rule_id, h.severity) for h in hits], {}, high=policy.lead_high, mid=policy.lead_mid
    )
    return choose(
        hits,
        tier=tier,
        segment=segment,
        env=env or {"wealth_buy_90d": 0.0},
        catalog=catalog,
        policy=policy,
        ctx=PolicyContext(ts, profile or {}, contacts, 9999.0, "d1", capacity or {}),
        lead=lead,
        propensities=propensities,
    )


def statuses(out: NbaOutcome) -> dict[tuple[str, str], str]:
    return {(c.action.id, c.channel): c.status for c in out.candidates}


def test_lead_score_is_a_noisy_or_of_alerts_and_warm_models() -> None:
    assert lead_score([0.75]) == 0.75
    assert lead_score([0.5, 0.5]) == 0.75
    lead = grade_lead([("a", "medium")], {"churn_risk": 0.6}, high=0.75, mid=0.5)
    assert lead.score == pytest.approx(0.8) and lead.grade == "high"
    assert grade_lead([("a", "low")], {}, high=0.75, mid=0.5).grade == "low"
    assert grade_lead([("a", "low")], {}, high=0.75, mid=0.2).grade == "mid"
    assert layers_for("high") == ("high", "mid", "low") and layers_for("low") == ("low",)
    assert set(LAYER_OF_CHANNEL) == set(CHANNELS)


def test_priority_is_propensity_value_weight_severity_minus_cost() -> None:
    ranked, _ = rank([hit("medium")], tier="affluent", segment=None, env={}, catalog=FUNNEL)
    by_id = {c[3].id: c[0] for c in ranked}
    assert by_id["call"] == pytest.approx(0.2 * 1500 * 1.0 * 1.0 - 60)
    ranked, _ = rank([hit("critical")], tier="affluent", segment=None, env={}, catalog=FUNNEL)
    assert {c[3].id: c[0] for c in ranked}["call"] == pytest.approx(0.2 * 1500 * 2.0 - 60)
    # the business weight multiplies
    d = funnel_doc()
    d["actions"][1]["weight"] = 3.0
    ranked, _ = rank([hit("medium")], tier="affluent", segment=None, env={}, catalog=catalog_of(d))
    assert {c[3].id: c[0] for c in ranked}["call"] == pytest.approx(0.2 * 1500 * 3.0 - 60)
    # the strongest alert the action answers gives the severity weight
    two = [hit("low", "asset_drop", "r2"), hit("high", "churn_risk", "r1")]
    ranked, _ = rank(two, tier="affluent", segment=None, env={}, catalog=FUNNEL)
    assert {c[3].id: c[0] for c in ranked}["call"] == pytest.approx(0.2 * 1500 * 1.5 - 60)


def test_ties_break_by_cost_then_id_whatever_the_catalog_order() -> None:
    d = funnel_doc()
    d["actions"] = [
        action("b_offer", ["sms"], 100, 1.0, 0.1),
        action("a_offer", ["sms"], 100, 1.0, 0.1),
        action("cheap", ["sms"], 99, 0.0, 0.1),  # same priority (9.0), lower cost
    ]
    d["templates"] = [{"id": "t_sms", "channels": ["sms"], "text": "x"}]
    orders = set()
    rng = random.Random(1)
    for _ in range(5):
        rng.shuffle(d["actions"])
        out = decide_nba([hit("medium")], catalog=catalog_of(d))
        orders.add(tuple(c.action.id for c in out.candidates))
        assert out.chosen is not None and out.chosen.action.id == "cheap"
    assert orders == {("cheap", "a_offer", "b_offer")}


def test_a_warm_offer_response_propensity_replaces_the_prior_and_a_cold_one_does_not() -> None:
    warm = {"sms_offer": (0.9, False), "nudge": (0.9, True)}
    ranked, _ = rank(
        [hit("medium")], tier="long_tail", segment=None, env={}, catalog=FUNNEL, propensities=warm
    )
    by_id = {c[3].id: (c[0], c[1], c[2]) for c in ranked}
    assert by_id["sms_offer"][0] == pytest.approx(0.9 * 300 - 0.05)
    assert by_id["sms_offer"][1:] == (0.9, "model")
    assert by_id["nudge"][1:] == (0.05, "prior")
    assert ranked[0][3].id == "sms_offer"


def test_ineligible_actions_are_recorded_with_the_reason() -> None:
    out = decide_nba([hit("high")], tier="long_tail", segment="student")
    assert dict(out.ineligible) == {
        "call": "ineligible_tier",
        "visit": "ineligible_tier",
        "digest": "ineligible_condition",
        "family_sms": "ineligible_segment",
    }
    out = decide_nba([hit("high")], tier="long_tail", segment="family", env={"wealth_buy_90d": 5.0})
    assert "digest" not in dict(out.ineligible) and "family_sms" not in dict(out.ineligible)


def test_actions_sharing_a_condition_are_each_recorded_when_it_fails_or_errs() -> None:
    d = funnel_doc()
    d["actions"] += [
        action("second_digest", ["email"], 50, 0.01, 0.02, eligible_when="wealth_buy_90d > 0"),
        action("rich_sms", ["sms"], 300, 0.05, 0.04, eligible_when="aum >= 100"),
    ]
    catalog = catalog_of(d)
    out = decide_nba([hit("high")], tier="long_tail", catalog=catalog, env={"aum": 500.0})
    reasons = dict(out.ineligible)
    assert reasons["digest"] == reasons["second_digest"] == "ineligible_condition"
    assert "rich_sms" not in reasons
    assert list(out.ineligible) == sorted(out.ineligible)
    env = {"wealth_buy_90d": 1.0, "aum": "x"}
    out = decide_nba([hit("high")], tier="long_tail", catalog=catalog, env=env)
    reasons = dict(out.ineligible)
    assert "digest" not in reasons and "second_digest" not in reasons
    assert reasons["rich_sms"].startswith("eligibility_error: aum holds 'x'")


def test_warm_propensities_tie_by_cost_then_id_then_channel_whatever_the_catalog_order() -> None:
    d = funnel_doc()
    d["actions"] = [
        action("b_offer", ["sms", "push"], 100, 1.0, 0.3),
        action("a_offer", ["push", "sms"], 100, 1.0, 0.2),
        action("cheap", ["email"], 99, 0.0, 0.1),  # same warm priority (9.0), lower cost
        action("cold", ["sms"], 100, 1.0, 0.1),  # no warm propensity: its prior, 9.0 too
    ]
    d["templates"] = [
        {"id": "t_" + "_".join(a["channels"]), "channels": a["channels"], "text": "x"}
        for a in d["actions"]
    ]
    warm = {"b_offer": (0.1, False), "a_offer": (0.1, False), "cheap": (0.1, False)}
    rng = random.Random(2)
    orders = set()
    for _ in range(5):
        rng.shuffle(d["actions"])
        ranked, _ = rank(
            [hit("medium")],
            tier="basic",
            segment=None,
            env={},
            catalog=catalog_of(d),
            propensities=warm,
        )
        orders.add(tuple((c[3].id, c[4], c[2]) for c in ranked))
    assert orders == {
        (
            ("cheap", "email", "model"),
            ("a_offer", "push", "model"),
            ("a_offer", "sms", "model"),
            ("b_offer", "sms", "model"),
            ("b_offer", "push", "model"),
            ("cold", "sms", "prior"),
        )
    }


def test_a_high_lead_of_an_affluent_customer_goes_to_the_offline_rm() -> None:
    out = decide_nba([hit("high")], tier="affluent")
    assert out.chosen is not None and out.chosen.channel == "rm_handoff"
    assert [(s.layer, s.result) for s in out.route] == [("high", "chosen")]
    assert out.reservation is not None and out.reservation.channel == "rm_handoff"
    assert out.reservation.key == "d1:visit" and out.reservation.day == "2026-01-05"
    lower = {c.status for c in out.candidates if c.layer != "high"}
    assert lower == {"outranked"}


def test_a_tier_without_an_offline_rm_falls_to_remote_nurturing_and_says_so() -> None:
    out = decide_nba([hit("high")], tier="basic")
    assert out.chosen is not None and out.chosen.action.id == "call"
    assert [(s.layer, s.result, s.reasons) for s in out.route] == [
        ("high", "fell", ("no_offline_rm_for_tier",)),
        ("mid", "chosen", ()),
    ]
    assert statuses(out)[("visit", "rm_handoff")] == "no_offline_rm_for_tier"
    # the tiers with an offline RM are configurable
    out = decide_nba([hit("high")], tier="basic", offline_rm_tiers=("basic", "affluent"))
    assert out.chosen is not None and out.chosen.channel == "rm_handoff"


def test_when_rm_capacity_is_used_up_the_lead_falls_to_the_next_layer() -> None:
    full = {"rm_handoff": 100, "rm_call": 500}
    out = decide_nba([hit("high")], tier="affluent", capacity=full)
    assert out.chosen is not None and out.chosen.action.id == "robot"
    assert [(s.layer, s.result, s.reasons) for s in out.route] == [
        ("high", "fell", ("capacity_rm_handoff",)),
        ("mid", "chosen", ("capacity_rm_call",)),
    ]
    assert statuses(out)[("visit", "rm_handoff")] == "capacity_rm_handoff"
    assert out.reservation is None  # robot calls have no daily capacity


def test_a_refused_mid_layer_falls_to_the_incubation_pool() -> None:
    out = decide_nba([hit("medium")], tier="basic", ts=NIGHT)
    assert out.chosen is not None and out.chosen.channel == "push"  # SMS is quiet at night too
    assert [(s.layer, s.result, s.reasons) for s in out.route] == [
        ("mid", "fell", ("quiet_hours",)),
        ("low", "chosen", ("quiet_hours",)),
    ]
    assert statuses(out)[("visit", "rm_handoff")] == "above_lead_grade"


def test_a_low_lead_never_reaches_a_human() -> None:
    out = decide_nba([hit("low")], tier="affluent")
    assert out.chosen is not None and out.chosen.layer == "low"
    above = {c.status for c in out.candidates if c.layer in ("high", "mid")}
    assert above == {"above_lead_grade"}


def test_a_refused_channel_downgrades_to_the_actions_next_channel() -> None:
    out = decide_nba(
        [hit("low")], tier="long_tail", profile={"consent_push": "0", "consent_sms": "0"}
    )
    assert out.chosen is not None and (out.chosen.action.id, out.chosen.channel) == (
        "nudge",
        "in_app",
    )
    assert statuses(out)[("nudge", "push")] == "no_consent_push"
    assert statuses(out)[("sms_offer", "sms")] == "no_consent_sms"


def test_nothing_allowed_means_no_action_and_every_layer_says_why() -> None:
    out = decide_nba([hit("high")], tier="affluent", profile={"opted_out": "1"})
    assert out.chosen is None and out.reservation is None
    assert [(s.layer, s.result, s.reasons) for s in out.route] == [
        ("high", "fell", ("opted_out",)),
        ("mid", "fell", ("opted_out",)),
        ("low", "fell", ("opted_out",)),
    ]
    assert {c.status for c in out.candidates} == {"opted_out"}
    assert {c.stage for c in out.candidates} == {"policy"}


def test_candidates_are_listed_in_rank_order_with_one_chosen() -> None:
    out = decide_nba([hit("high"), hit("medium", "asset_drop", "r2")], tier="basic")
    priorities = [c.priority for c in out.candidates]
    assert priorities == sorted(priorities, reverse=True)
    assert [c.status for c in out.candidates].count("chosen") == 1
    assert out.chosen == next(c for c in out.candidates if c.status == "chosen")


def test_the_same_inputs_give_the_same_outcome() -> None:
    a = decide_nba([hit("high")], tier="basic", ts=NIGHT, env={"wealth_buy_90d": 3.0})
    FUNNEL.plans.clear()
    b = decide_nba([hit("high")], tier="basic", ts=NIGHT, env={"wealth_buy_90d": 3.0})
    assert a == b


@pytest.mark.parametrize("seed", range(8))
def test_ranking_with_and_without_a_model_is_the_documented_total_order(seed: int) -> None:
    """Random catalogs with many ties: both ranking paths (memoised priors, re-ranked warm model
    propensities) give exactly (-priority, cost, id, channel position)."""
    rng = random.Random(seed)
    digital = ["sms", "push", "in_app", "email"]
    actions = []
    for i in range(30):
        channels = rng.sample(digital, rng.randint(1, 3)) if i % 3 else [rng.choice(CHANNELS)]
        actions.append(
            action(
                f"a{i:02d}",
                channels,
                rng.choice([100.0, 200.0]),
                rng.choice([0.0, 1.0]),
                rng.choice([0.05, 0.1]),
                answers=rng.sample(["churn_risk", "asset_drop", "engagement_drop"], 2),
                eligible_when=rng.choice([None, "wealth_buy_90d > 0", "aum >= 100"]),
            )
        )
    for a in actions:
        if a["eligible_when"] is None:
            del a["eligible_when"]
    channel_sets = {tuple(a["channels"]) for a in actions}
    templates = [{"id": "t_" + "_".join(c), "channels": list(c), "text": "x"} for c in channel_sets]
    catalog = catalog_of({"templates": templates, "actions": actions})
    hits = [hit("high"), hit("low", "engagement_drop", "r2")]
    env = {"wealth_buy_90d": float(rng.choice([0, 1])), "aum": float(rng.choice([0, 500]))}
    warm = {
        a["id"]: (rng.choice([0.05, 0.1, 0.2]), rng.random() < 0.3)
        for a in actions
        if rng.random() < 0.7
    }
    severity = {"churn_risk": 1.5, "asset_drop": 0.0, "engagement_drop": 0.5}
    for propensities in (None, warm):
        ranked, ineligible = rank(
            hits, tier="basic", segment=None, env=env, catalog=catalog, propensities=propensities
        )
        expected = []
        for spec in catalog.actions:
            condition = catalog.conditions.get(spec.id)
            if condition is not None and not condition.evaluate(env):
                assert (spec.id, "ineligible_condition") in ineligible
                continue
            learned = (propensities or {}).get(spec.id)
            p = learned[0] if learned and not learned[1] else spec.propensity
            w = max(severity[t] for t in spec.answers)
            priority = p * (spec.value * spec.weight * w) - spec.cost
            for position, channel in enumerate(spec.channels):
                expected.append((-priority, spec.cost, spec.id, position, channel))
        expected.sort()
        assert [(c[3].id, c[4]) for c in ranked] == [(e[2], e[4]) for e in expected]
