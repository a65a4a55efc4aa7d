"""Alerts and scores against outcomes: true and false positives, censoring, recall, lead time."""

from __future__ import annotations

import math
import random

import pytest

from replay.evaluation import (
    AlertFact,
    OutcomeFact,
    ScoreExample,
    evaluate_alerts,
    evaluate_model,
    lead_histogram,
    log_loss,
    roc_auc,
    score_alerts,
)

H = 30 * 86400.0
DAY = 86400.0


def alert(cid: str, day: float, rule: str = "r1", kind: str = "churn_risk") -> AlertFact:
    return AlertFact(f"a-{cid}-{day}-{rule}", cid, day * DAY, kind, rule)


def test_an_outcome_within_the_horizon_makes_a_true_positive_and_the_edge_counts() -> None:
    outcomes = {"c1": [40 * DAY]}
    m = score_alerts(
        [alert("c1", 10), alert("c1", 9.99)], outcomes, horizon=H, data_start=0, data_end=100 * DAY
    )
    # day 10 + 30 days = day 40 exactly: true; day 9.99: the outcome is past its horizon
    assert (m["true_positive_alerts"], m["false_positive_alerts"]) == (1, 1)
    assert m["precision"] == 1.0  # over customers: c1 has a true-positive alert
    assert m["alert_precision"] == 0.5


def test_alerts_whose_horizon_runs_past_the_data_are_censored_not_false() -> None:
    m = score_alerts(
        [alert("c1", 80), alert("c2", 50), alert("c3", 85)],
        {"c3": [90 * DAY]},
        horizon=H,
        data_start=0,
        data_end=100 * DAY,
    )
    assert m["censored_alerts"] == 1  # c1: day 80 + 30 > 100, no outcome yet
    assert m["false_positive_alerts"] == 1  # c2: day 50 + 30 <= 100, nothing came
    assert m["true_positive_alerts"] == 1  # c3: censored horizon, but the outcome came
    assert m["precision"] == 0.5  # c3 of {c2, c3}; c1 is left out
    assert m["precision_lower_bound"] == pytest.approx(1 / 3, abs=1e-6)


def test_an_alert_after_the_outcome_is_a_false_positive_counted_apart() -> None:
    m = score_alerts(
        [alert("c1", 5), alert("c1", 20)],
        {"c1": [10 * DAY]},
        horizon=H,
        data_start=0,
        data_end=100 * DAY,
    )
    assert (m["true_positive_alerts"], m["false_positive_alerts"]) == (1, 1)
    assert m["alerts_after_outcome"] == 1


def test_recall_is_over_customers_with_the_outcome_and_lead_from_the_first_alert() -> None:
    outcomes = {"c1": [40 * DAY], "c2": [60 * DAY], "c3": [70 * DAY]}
    alerts = [
        alert("c1", 5),  # more than H before the outcome: does not catch it
        alert("c1", 20),
        alert("c1", 30),
        alert("c2", 59),
        alert("c3", 71),  # after the outcome: does not catch it
    ]
    m = score_alerts(alerts, outcomes, horizon=H, data_start=0, data_end=100 * DAY)
    assert m["labelled_customers"] == 3 and m["caught_customers"] == 2
    assert m["recall"] == pytest.approx(2 / 3, abs=1e-6)
    assert m["lead_hours"] == [24.0, 480.0]  # c2: 1 day; c1: from day 20 (the first in window)
    assert m["median_lead_hours"] == 252.0


def test_outcomes_with_a_short_look_back_are_counted() -> None:
    m = score_alerts(
        [], {"c1": [10 * DAY], "c2": [50 * DAY]}, horizon=H, data_start=0, data_end=60 * DAY
    )
    assert m["outcomes_with_short_history"] == 1
    assert m["recall"] == 0.0 and m["precision"] is None


def test_types_and_rules_are_evaluated_against_their_own_label() -> None:
    alerts = [
        alert("c1", 1, "closure", "churn_risk"),
        alert("c2", 1, "drop", "asset_drop"),
        alert("c3", 1, "engage", "engagement_drop"),
    ]
    outcomes = [OutcomeFact("c1", 3 * DAY, "churned"), OutcomeFact("c2", 2 * DAY, "churned")]
    ev = evaluate_alerts(
        alerts,
        outcomes,
        horizon=H,
        data_start=0,
        data_end=100 * DAY,
        rule_types={"quiet_rule": "churn_risk"},
    )
    churn = ev["by_type"]["churn_risk"]
    assert churn["precision"] == 1.0 and churn["recall"] == 0.5  # c2 churned unalerted
    drop = ev["by_type"]["asset_drop"]
    assert drop["precision"] is None and "no 'asset_drop' outcome" in drop["note"]
    assert ev["by_type"]["engagement_drop"]["label"] is None
    assert ev["by_rule"]["quiet_rule"]["alerts"] == 0
    assert ev["by_rule"]["quiet_rule"]["recall"] == 0.0
    assert ev["by_rule"]["closure"]["recall"] == 0.5


def test_roc_auc_matches_the_pairwise_definition() -> None:
    rng = random.Random(3)
    scores = [round(rng.random(), 1) for _ in range(60)]  # many ties
    labels = [rng.random() < 0.3 for _ in range(60)]
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    pairs = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    assert roc_auc(scores, labels) == pytest.approx(pairs / (len(pos) * len(neg)))
    assert roc_auc([0.1, 0.9], [False, True]) == 1.0
    assert roc_auc([0.1, 0.9], [True, True]) is None


def test_log_loss_clips_certain_mistakes() -> None:
    assert log_loss([0.0], [True]) == pytest.approx(-math.log(1e-15))
    assert log_loss([0.5, 0.5], [True, False]) == pytest.approx(math.log(2))
    assert log_loss([], []) is None


def test_model_examples_are_labelled_by_the_outcome_within_the_horizon() -> None:
    examples = [
        ScoreExample("c1", "d1", 1 * DAY, 0.9),  # c1 churns on day 10: positive
        ScoreExample("c2", "d1", 1 * DAY, 0.2),  # nothing in 30 days, observed: negative
        ScoreExample("c3", "d1", 1 * DAY, 0.1),
        ScoreExample("c2", "d2", 90 * DAY, 0.5),  # horizon past the data: censored
    ]
    out = evaluate_model(examples, {"c1": [10 * DAY]}, horizon=H, data_end=100 * DAY)
    assert (out["examples"], out["positives"], out["censored"]) == (3, 1, 1)
    assert out["roc_auc"] == 1.0
    assert out["roc_auc_by_day"][0] == {"day": "d1", "roc_auc": 1.0, "examples": 3, "positives": 1}
    none = evaluate_model(examples, None, horizon=H, data_end=100 * DAY)
    assert none["roc_auc"] is None and none["examples"] == 0


def test_lead_histogram_bins_every_lead() -> None:
    leads = [0.0, 5.9, 6.0, 100.0, 719.0, 720.0, 5000.0]
    hist = lead_histogram(leads)
    assert sum(hist["counts"]) == len(leads)
    assert hist["counts"][0] == 2 and hist["counts"][1] == 1 and hist["counts"][-1] == 2
    assert len(hist["bins"]) == len(hist["counts"])
