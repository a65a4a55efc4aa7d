"""The learner's label joins: snapshots before the outcome only, horizons, offers, bad input."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from online_models.catalog import build_catalog
from online_models.labels import DAY
from online_models.learner import LabelledExample, Learner, LearnerConfig
from online_models.scorer import ModelScorer
from tests.model_state import state_differences

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z, a day boundary


def decision(
    cid: str,
    t: float,
    i: int = 0,
    chosen: tuple[str, ...] = (),
    status: str = "applied",
    **features: float,
) -> dict[str, Any]:
    return {
        "decision_id": f"d-{cid}-{i}-{t}",
        "event_id": f"e-{cid}-{i}-{t}",
        "customer_id": cid,
        "event_type": "transaction",
        "event_time": t,
        "state_status": status,
        "features": features,
        "actions": {"chosen": list(chosen)},
    }


def outcome(cid: str, label: str, t: float, decision_id: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": f"o-{cid}-{label}-{t}",
        "customer_id": cid,
        "type": "outcome",
        "label": label,
        "ts": t,
    }
    if decision_id:
        event["decision_id"] = decision_id
    return event


def outcome_record(event: dict[str, Any], status: str = "applied") -> dict[str, Any]:
    """An outcome as the worker's decision record of it."""
    return {
        "decision_id": f"d-{event['event_id']}",
        "customer_id": event["customer_id"],
        "event_type": "outcome",
        "event_time": event["ts"],
        "state_status": status,
        "input": event,
        "features": {},
        "actions": {"chosen": []},
    }


@pytest.fixture
def make() -> Callable[..., tuple[Learner, list[LabelledExample]]]:
    def build(**config: Any) -> tuple[Learner, list[LabelledExample]]:
        seen: list[LabelledExample] = []
        cfg = LearnerConfig(**{"lateness": 0.0, **config})
        return Learner(cfg, build_catalog(), listener=seen.append), seen

    return build


def churn(seen: list[LabelledExample]) -> list[LabelledExample]:
    return [e for e in seen if e.model == "churn_risk"]


def test_an_outcome_joins_only_snapshots_taken_before_it(make: Callable[..., Any]) -> None:
    learner, seen = make()
    learner.observe_decision(decision("c1", T0 + 3600, closure_page_views_30d=1.0))
    learner.observe_outcome(outcome("c1", "churned", T0 + 2 * DAY))
    # features computed after the prediction time never teach anything about that label
    learner.observe_decision(decision("c1", T0 + 3 * DAY, closure_page_views_30d=9.0))
    assert [(e.ts, e.y) for e in churn(seen)] == [(T0 + 3600, True)]
    assert learner.scorer().models["churn_risk"].examples == 1
    assert learner.health()["pending"]["day_snapshots"] == 1  # the later one waits for its label


def test_a_days_last_decision_is_its_snapshot(make: Callable[..., Any]) -> None:
    learner, seen = make()
    for hour, views in ((1, 1.0), (5, 2.0), (9, 3.0)):
        learner.observe_decision(decision("c1", T0 + hour * 3600, closure_page_views_30d=views))
    learner.observe_outcome(outcome("c1", "churned", T0 + DAY))
    assert [e.ts for e in churn(seen)] == [T0 + 9 * 3600]


def test_positive_window_and_horizon(make: Callable[..., Any]) -> None:
    """14-day positive window, 30-day horizon: 0-14 days before churn positive, 14-30 left
    out, older negative."""
    # a long lateness keeps the watermark before day 0's horizon: nothing falls due
    learner, seen = make(positive_window=14 * DAY, horizon=30 * DAY, lateness=10 * DAY)
    churned_at = T0 + 40 * DAY
    for d in (0, 5, 20, 30, 39):
        learner.observe_decision(decision("c1", T0 + d * DAY))
    learner.observe_outcome(outcome("c1", "churned", churned_at))
    labels = [(round((churned_at - e.ts) / DAY), e.y) for e in churn(seen)]
    assert labels == [(40, False), (35, False), (10, True), (1, True)]
    assert learner.counts["left_out"] == 1  # 20 days before: churned, but no signal yet


def test_no_outcome_within_the_horizon_is_a_negative_when_the_watermark_passes(
    make: Callable[..., Any],
) -> None:
    learner, seen = make(horizon=30 * DAY, lateness=3600.0)
    learner.observe_decision(decision("c1", T0 + 60))
    learner.observe_decision(decision("c2", T0 + 30 * DAY))
    assert churn(seen) == []
    # the watermark (latest decision - lateness) must pass the end of day 0 + 30 days
    learner.observe_decision(decision("c2", T0 + 31 * DAY + 1800))
    assert churn(seen) == []
    learner.observe_decision(decision("c2", T0 + 31 * DAY + 3600))
    assert [(e.customer_id, e.y) for e in churn(seen)] == [("c1", False)]
    assert learner.health()["models"]["churn_risk"]["label_delay_last_seconds"] == 31 * DAY - 60


def test_advance_to_moves_the_watermark_without_events(make: Callable[..., Any]) -> None:
    learner, seen = make(horizon=30 * DAY)
    learner.observe_decision(decision("c1", T0 + 60))
    learner.advance_to(T0 + 30 * DAY)
    assert churn(seen) == []
    learner.advance_to(T0 + 31 * DAY)
    assert [e.y for e in churn(seen)] == [False]


def test_retained_labels_earlier_snapshots_negative(make: Callable[..., Any]) -> None:
    learner, seen = make()
    learner.observe_decision(decision("c1", T0 + 60, closure_page_views_30d=2.0))
    learner.observe_decision(decision("c1", T0 + DAY + 60, closure_page_views_30d=2.0))
    learner.observe_outcome(outcome("c1", "retained", T0 + 5 * DAY))
    assert [e.y for e in churn(seen)] == [False, False]


def test_a_snapshot_older_than_a_known_outcome_is_labelled_at_once(
    make: Callable[..., Any],
) -> None:
    """Topics are not ordered against each other: a decision may reach the learner after the
    outcome that follows it in event time."""
    learner, seen = make()
    learner.observe_outcome(outcome("c1", "churned", T0 + 2 * DAY))
    assert learner.counts["unknown_customer"] == 1
    learner.observe_decision(decision("c1", T0 + DAY))
    assert [(e.y, e.label_ts) for e in churn(seen)] == [(True, T0 + DAY)]
    assert learner.counts["late_snapshots"] == 1


def test_outcomes_arrive_as_decision_records_and_duplicates_change_nothing(
    make: Callable[..., Any],
) -> None:
    learner, seen = make()
    learner.observe_decision(decision("c1", T0 + 60))
    event = outcome("c1", "churned", T0 + DAY)
    learner.observe_decision(outcome_record(event))
    learner.observe_decision(outcome_record(event, status="duplicate"))
    learner.observe_decision(decision("c1", T0 + 60, status="duplicate"))
    assert len(churn(seen)) == 1
    assert learner.counts["duplicate_outcome"] == 1 and learner.counts["not_applied"] == 1


def test_offer_responses_teach_the_propensity_of_the_action_chosen(
    make: Callable[..., Any],
) -> None:
    learner, seen = make(offer_horizon=14 * DAY)
    offered = decision("c1", T0 + 60, chosen=("rm_call_retention",), aum=100_000.0)
    learner.observe_decision(offered)
    learner.observe_decision(decision("c2", T0 + 120, chosen=("sms_rate_offer",)))
    learner.observe_outcome(outcome("c1", "offer_accepted", T0 + DAY, offered["decision_id"]))
    # without a decision id: the customer's latest offer within the offer horizon
    learner.observe_outcome(outcome("c2", "offer_declined", T0 + DAY))
    # once answered, an offer is not answered again; unknown decisions are counted, not learned
    learner.observe_outcome(outcome("c1", "offer_declined", T0 + DAY, offered["decision_id"]))
    learner.observe_outcome(outcome("c3", "offer_accepted", T0 + DAY, "d-nope"))
    offers = [(e.customer_id, e.y) for e in seen if e.model == "offer_response"]
    assert offers == [("c1", True), ("c2", False)]
    assert learner.counts["unknown_decision"] == 2
    health = learner.health()["models"]["offer_response"]
    assert health["actions"] == {"rm_call_retention": 1, "sms_rate_offer": 1}
    props = learner.scorer().propensities({}, ["rm_call_retention", "never_offered"])
    assert props["never_offered"] == (0.1, True)
    assert props["rm_call_retention"][1] is True  # 1 response < 30: still cold


def test_an_offer_response_after_the_offer_horizon_joins_nothing(
    make: Callable[..., Any],
) -> None:
    learner, _ = make(offer_horizon=7 * DAY)
    learner.observe_decision(decision("c1", T0 + 60, chosen=("push_wealth_content",)))
    learner.observe_outcome(outcome("c1", "offer_accepted", T0 + 8 * DAY))
    assert learner.counts["unknown_decision"] == 1


def test_warm_propensities_come_from_the_actions_own_model(make: Callable[..., Any]) -> None:
    learner, _ = make()
    for i in range(40):
        rich = i % 2 == 0
        d = decision(f"c{i}", T0 + i, chosen=("a1",), aum=500_000.0 if rich else 1_000.0)
        learner.observe_decision(d)
        label = "offer_accepted" if rich else "offer_declined"
        learner.observe_outcome(outcome(f"c{i}", label, T0 + DAY, d["decision_id"]))
    props = learner.scorer().propensities({"aum": 500_000.0})
    low = learner.scorer().propensities({"aum": 1_000.0})
    assert props["a1"][1] is False and props["a1"][0] > low["a1"][0]


def test_bad_input_is_counted_and_ignored(make: Callable[..., Any]) -> None:
    learner, _ = make()
    learner.observe_decision({"event_type": "transaction", "state_status": "applied"})
    learner.observe_decision(decision("c1", float("nan")) | {"event_time": "yesterday"})
    learner.observe_decision(decision("c1", T0) | {"event_time": "2026-01-01T00:00:00"})
    learner.observe_outcome({"label": "churned"})
    learner.observe_outcome(outcome("c1", "contacted", T0))
    learner.observe_decision(outcome_record(outcome("c1", "churned", T0)) | {"input": None})
    assert learner.counts["bad_records"] == 5
    assert learner.counts["ignored"] == 1
    assert learner.scorer().models["churn_risk"].examples == 0


def test_the_anomaly_model_learns_one_snapshot_per_customer_day(
    make: Callable[..., Any],
) -> None:
    learner, _ = make()
    for hour in range(5):
        learner.observe_decision(decision("c1", T0 + hour * 3600, outflow_24h=10.0 * hour))
    learner.observe_decision(decision("c1", T0 + DAY + 60))
    learner.observe_decision(decision("c2", T0 + DAY + 60))
    assert learner.scorer().models["asset_drop"].examples == 3


def test_the_anomaly_score_is_judged_against_asset_drop_outcomes(
    make: Callable[..., Any],
) -> None:
    learner, seen = make(label_windows={"asset_drop": 3 * DAY})
    learner.observe_decision(decision("c1", T0 + 60))
    learner.observe_decision(decision("c2", T0 + 60))
    learner.observe_outcome(outcome("c1", "asset_drop", T0 + DAY))
    assert learner.counts["marked"] == 1
    learner.advance_to(T0 + 32 * DAY)
    judged = sorted((e.customer_id, e.y) for e in seen if e.model == "asset_drop")
    assert judged == [("c1", True), ("c2", False)]


def test_a_cold_model_serves_its_prior_until_enough_examples(make: Callable[..., Any]) -> None:
    learner, _ = make()
    scorer = learner.scorer()
    features = {"closure_page_views_30d": 3.0, "transfer_out_other_bank_share_30d": 0.9}
    assert (
        scorer.score(features)["churn_risk"].score,
        scorer.score(features)["churn_risk"].cold,
    ) == (0.05, True)
    for i in range(200):
        cid = f"c{i}"
        risky = i % 4 == 0
        learner.observe_decision(
            decision(cid, T0 + i, closure_page_views_30d=3.0 if risky else 0.0)
        )
        learner.observe_outcome(outcome(cid, "churned" if risky else "retained", T0 + DAY))
    warm = scorer.score(features)["churn_risk"]
    assert warm.cold is False and warm.score != 0.05
    assert warm.score > scorer.score({})["churn_risk"].score


def test_drift_is_an_alert_a_log_line_and_a_metric(
    make: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    from prometheus_client import REGISTRY

    def drifts() -> float:
        value = REGISTRY.get_sample_value("vigil_model_drift_total", {"model": "churn_risk"})
        return value or 0.0

    learner, _ = make()
    before = drifts()
    # a long stable concept (closure-page visitors churn), then it flips
    for i in range(3000):
        cid, flipped = f"c{i}", i >= 1500
        risky = i % 5 == 0
        learner.observe_decision(
            decision(cid, T0 + i, closure_page_views_30d=3.0 if risky else 0.0)
        )
        label = "churned" if risky != flipped else "retained"
        with caplog.at_level(logging.WARNING, logger="online_models.health"):
            learner.observe_outcome(outcome(cid, label, T0 + i + 0.5))
    health = learner.health()["models"]["churn_risk"]
    assert health["drifts"] >= 1 and health["last_drift_at"] > T0 + 1500
    assert drifts() >= before + 1
    assert any("concept drift on churn_risk" in r.getMessage() for r in caplog.records)


def test_health_has_what_replay_reports(make: Callable[..., Any]) -> None:
    learner, _ = make()
    health = learner.health()
    for name in ("churn_risk", "asset_drop", "offer_response"):
        model = health["models"][name]
        assert {"roc_auc", "log_loss", "examples", "cold", "labelled", "drifts"} <= set(model)
    assert {"counts", "watermark", "pending"} <= set(health)


def test_a_scorer_that_follows_the_examples_learned_holds_the_learners_models(
    make: Callable[..., Any],
) -> None:
    learner, _ = make(offer_horizon=14 * DAY)
    with pytest.raises(RuntimeError, match="keep_learned"):
        learner.take_learned()
    learner.keep_learned()
    for day in range(3):
        for c in range(6):
            t = T0 + day * DAY + 600 * c
            chosen = ("rm_call_retention",) if c % 2 else ("sms_rate_offer",)
            learner.observe_decision(
                decision(f"c{c}", t, chosen=chosen, aum=1000.0 * c + day, outflow_7d=50.0 * day)
            )
    learner.observe_outcome(outcome("c1", "churned", T0 + 3 * DAY))
    learner.observe_outcome(outcome("c2", "retained", T0 + 3 * DAY))
    learner.observe_outcome(outcome("c3", "offer_accepted", T0 + 3 * DAY))
    learner.observe_outcome(outcome("c4", "offer_declined", T0 + 3 * DAY))
    learned = learner.take_learned()
    assert {e.name for e in learned} == {"asset_drop", "churn_risk", "offer_response"}
    assert learner.take_learned() == []  # taken once

    follower = ModelScorer.fresh(learner.config.seed, learner.catalog)
    follower.follow(learned, 4, learner.config.seed)
    own = learner.scorer()
    for name, live in own.models.items():
        assert follower.models[name].examples == live.examples > 0
        assert state_differences(follower.models[name].model, live.model) == [], name
        assert follower.models[name].version.endswith(".4")
    assert sorted(follower.offers) == sorted(own.offers) == ["rm_call_retention", "sms_rate_offer"]
    for action, live in own.offers.items():
        assert follower.offers[action].examples == live.examples == 1
        assert state_differences(follower.offers[action].model, live.model) == [], action
    # one example fewer is a different model
    assert learned[0].name == "asset_drop"
    behind = ModelScorer.fresh(learner.config.seed, learner.catalog)
    behind.follow(learned[1:], 4, learner.config.seed)
    assert state_differences(behind.models["asset_drop"].model, own.models["asset_drop"].model)
