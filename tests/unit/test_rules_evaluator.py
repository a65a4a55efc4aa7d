"""Evaluating a rule set: scope, priority, suppressions, cooldowns, explanations, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.types import Fired
from online_models.catalog import model_names
from rules.evaluator import RuleSet
from rules.loader import load_rules

MODELS = tuple(model_names())
RULES = """\
version: 1
rules:
  - id: drop_basic
    description: AUM drop, basic tier.
    alert_type: asset_drop
    severity: high
    scope: {tiers: [basic]}
    when: aum_drop_from_peak_30d_pct >= 30 and aum_peak_30d >= 50000
    priority: 80
    cooldown: 7d
    suppress: [opted_out]
    reason: "AUM {aum:,.0f} is {aum_drop_from_peak_30d_pct:.0f}% below {aum_peak_30d:,.0f}"
  - id: drop_family
    description: Same, family segment only, any tier.
    alert_type: asset_drop
    severity: low
    scope: {segments: [family]}
    when: aum_drop_from_peak_30d_pct >= 30
    priority: 90
    cooldown: 1d
    reason: "family drop {aum_drop_from_peak_30d_pct:.0f}%"
  - id: model_or_page
    description: Either signal.
    alert_type: churn_risk
    severity: medium
    when: (score_churn_risk >= 0.8 and not cold_churn_risk) or event_page == 'account_closure'
    priority: 80
    cooldown: 0s
    reason: "score {score_churn_risk:.2f}, page {event_page}"
  - id: divides
    description: A ratio.
    alert_type: churn_risk
    severity: low
    when: transfer_out_other_bank_7d / aum > 2
    priority: 5
    reason: "ratio"
"""


@pytest.fixture
def ruleset(tmp_path: Path) -> RuleSet:
    (tmp_path / "r.yaml").write_text(RULES)
    return load_rules(tmp_path, MODELS)


def env(**values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "aum": 130000.0,
        "aum_peak_30d": 200000.0,
        "aum_drop_from_peak_30d_pct": 35.0,
        "transfer_out_other_bank_7d": 0.0,
        "score_churn_risk": 0.1,
        "cold_churn_risk": False,
        "event_page": None,
        "profile_opted_out": False,
    }
    return {**base, **values}


def evaluate(
    ruleset: RuleSet,
    values: dict[str, Any],
    tier: str = "basic",
    segment: str | None = None,
    fired: dict[str, Fired] | None = None,
    ts: float = 1000.0,
    decision_id: str = "d2",
) -> Any:
    return ruleset.evaluate(
        values, tier=tier, segment=segment, fired=fired or {}, ts=ts, decision_id=decision_id
    )


def test_a_hit_carries_the_rule_its_reason_and_the_values_that_held(ruleset: RuleSet) -> None:
    out = evaluate(ruleset, env())
    assert [h.rule_id for h in out.hits] == ["drop_basic"]
    hit = out.hits[0]
    assert (hit.alert_type, hit.severity, hit.priority) == ("asset_drop", "high", 80)
    assert hit.reason == "AUM 130,000 is 35% below 200,000"
    assert hit.values == {"aum_drop_from_peak_30d_pct": 35.0, "aum_peak_30d": 200000.0}
    assert hit.condition == "aum_drop_from_peak_30d_pct >= 30 and aum_peak_30d >= 50000"
    assert hit.held == (
        ("aum_drop_from_peak_30d_pct >= 30", {"aum_drop_from_peak_30d_pct": 35.0}),
        ("aum_peak_30d >= 50000", {"aum_peak_30d": 200000.0}),
    )


def test_scope_by_tier_and_segment(ruleset: RuleSet) -> None:
    assert [h.rule_id for h in evaluate(ruleset, env(), tier="affluent").hits] == []
    both = evaluate(ruleset, env(), tier="basic", segment="family")
    assert [h.rule_id for h in both.hits] == ["drop_family", "drop_basic"]  # priority order
    only_family = evaluate(ruleset, env(), tier="long_tail", segment="family")
    assert [h.rule_id for h in only_family.hits] == ["drop_family"]


def test_rules_run_by_priority_then_id(ruleset: RuleSet) -> None:
    values = env(score_churn_risk=0.9, transfer_out_other_bank_7d=300000.0)
    out = evaluate(ruleset, values, segment="family")
    assert [h.rule_id for h in out.hits] == [
        "drop_family",
        "drop_basic",
        "model_or_page",
        "divides",
    ]


def test_an_or_condition_reports_the_alternative_that_held(ruleset: RuleSet) -> None:
    out = evaluate(ruleset, env(aum_drop_from_peak_30d_pct=0.0, event_page="account_closure"))
    (hit,) = out.hits
    assert hit.rule_id == "model_or_page"
    assert hit.held == (("event_page == 'account_closure'", {"event_page": "account_closure"}),)
    assert hit.reason == "score 0.10, page account_closure"


def test_a_suppression_records_its_reason(ruleset: RuleSet) -> None:
    out = evaluate(ruleset, env(profile_opted_out=True))
    assert out.hits == ()
    assert [(s.rule_id, s.reason) for s in out.suppressed] == [("drop_basic", "opted_out")]


def test_at_most_one_alert_per_customer_per_rule_per_cooldown(ruleset: RuleSet) -> None:
    day = 86400.0
    earlier = {"drop_basic": Fired(0.0, "d1")}
    inside = evaluate(ruleset, env(), fired=earlier, ts=7 * day - 1)
    assert inside.hits == () and [s.reason for s in inside.suppressed] == ["cooldown"]
    after = evaluate(ruleset, env(), fired=earlier, ts=7 * day)
    assert [h.rule_id for h in after.hits] == ["drop_basic"]
    # an older event arriving late is inside the cooldown too
    late = evaluate(ruleset, env(), fired={"drop_basic": Fired(3 * day, "d1")}, ts=day)
    assert late.hits == ()
    # the same decision decided again (a redelivery) re-raises its own alert
    again = evaluate(ruleset, env(), fired=earlier, ts=10.0, decision_id="d1")
    assert [h.rule_id for h in again.hits] == ["drop_basic"]
    # other rules have their own cooldowns
    other = evaluate(ruleset, env(), fired={"drop_family": Fired(0.0, "d1")}, ts=10.0)
    assert [h.rule_id for h in other.hits] == ["drop_basic"]


def test_a_zero_cooldown_alerts_every_time(ruleset: RuleSet) -> None:
    values = env(aum_drop_from_peak_30d_pct=0.0, score_churn_risk=0.95)
    out = evaluate(ruleset, values, fired={"model_or_page": Fired(1000.0, "d1")}, ts=1000.0)
    assert [h.rule_id for h in out.hits] == ["model_or_page"]


def test_a_rule_that_fails_to_evaluate_is_recorded_and_the_others_still_run(
    ruleset: RuleSet,
) -> None:
    # a value of the wrong type (an environment the engine never builds) breaks one rule only
    out = evaluate(ruleset, env(transfer_out_other_bank_7d="lots"))
    assert [h.rule_id for h in out.hits] == ["drop_basic"]
    assert [e.rule_id for e in out.errors] == ["divides"]
    assert out.errors[0].reason.startswith("evaluation_error:")


def test_missing_values_never_fire_and_never_fail(ruleset: RuleSet) -> None:
    out = evaluate(ruleset, {})
    assert out.hits == () and out.errors == () and out.suppressed == ()


def test_division_by_zero_does_not_fire(ruleset: RuleSet) -> None:
    out = evaluate(ruleset, env(aum=0.0, transfer_out_other_bank_7d=5.0))
    assert "divides" not in [h.rule_id for h in out.hits] and out.errors == ()


def test_nothing_to_say_returns_the_shared_empty_outcome(ruleset: RuleSet) -> None:
    first = evaluate(ruleset, env(aum_drop_from_peak_30d_pct=1.0))
    second = evaluate(ruleset, env(aum_drop_from_peak_30d_pct=2.0))
    assert first is second and first.hits == ()


def test_the_fast_path_agrees_with_the_plain_evaluation_on_the_default_rules() -> None:
    """Every default rule's guard-and-rest path gives the same truth as its condition."""
    default = load_rules(Path(__file__).resolve().parents[2] / "rules" / "default", MODELS)
    samples = [
        env(),
        env(aum_drop_from_peak_30d_pct=0.0),
        env(transfer_out_other_bank_7d=150000.0, transfer_out_other_bank_share_7d=0.75),
        env(event_type="app", event_page="account_closure", closure_page_views_30d=1.0),
        env(score_churn_risk=0.9, score_asset_drop=0.95, cold_asset_drop=False),
        {},
    ]
    for rule in default.rules:
        for values in samples:
            assert bool(rule.when.evaluate(values)) == bool(rule.when.evaluate_fast(values))
