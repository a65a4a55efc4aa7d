"""Alerts and model scores measured against outcomes. Pure: plain values in, plain data out.

The definitions (also written into every report, see ``DEFINITIONS``):

- An alert type is matched to an outcome label (``churn_risk`` -> ``churned``, ``asset_drop`` ->
  ``asset_drop``). H is the horizon (30 days by default); the data ends at the latest event time.
- An alert at time t is a *true positive* when the customer has a matching outcome at a time o
  with t <= o <= t + H. Otherwise it is *censored* when t + H is after the end of the data (the
  outcome may still come), and a *false positive* when the whole horizon was observed. An alert
  raised after the customer's outcome with no later outcome in its horizon is a false positive
  (counted also as ``alerts_after_outcome``).
- ``precision`` is over alerted customers: customers with a true-positive alert divided by the
  customers with at least one alert that is not censored. ``alert_precision`` is the same over
  alerts.
- ``recall`` is over customers with the outcome (``labelled_customers``): those with an alert in
  [o - H, o] before one of their outcomes o, divided by all of them. Outcomes less than H after
  the start of the data had a shorter look-back (``outcomes_with_short_history``).
- ``median_lead_hours``: for each caught customer, hours from the first alert in [o - H, o] to
  their first caught outcome o; the median over caught customers.

>>> alerts = [AlertFact("a1", "c1", 0.0, "churn_risk", "r1"),
...           AlertFact("a2", "c2", 0.0, "churn_risk", "r1")]
>>> outcomes = [OutcomeFact("c1", 36 * 3600.0, "churned"), OutcomeFact("c3", 50.0, "churned")]
>>> ev = evaluate_alerts(alerts, outcomes, horizon=30 * 86400.0, data_start=0.0,
...                      data_end=60 * 86400.0)
>>> m = ev["by_type"]["churn_risk"]
>>> m["precision"], m["recall"], m["median_lead_hours"], m["labelled_customers"]
(0.5, 0.5, 36.0, 2)
"""

from __future__ import annotations

import math
import statistics
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_LABELS: Mapping[str, str] = {"churn_risk": "churned", "asset_drop": "asset_drop"}
# Lead-time histogram bin edges, hours (the last bin is open-ended).
LEAD_BINS_HOURS: tuple[float, ...] = (0, 6, 12, 24, 48, 72, 120, 168, 336, 504, 720)

DEFINITIONS: dict[str, str] = {
    "matching_outcome": (
        "Each alert type is matched to an outcome label: {labels}. Alert types without a label "
        "are counted but not evaluated."
    ),
    "horizon": "H = {horizon_days:g} days of event time.",
    "true_positive": (
        "An alert at time t is a true positive when the customer has a matching outcome at o "
        "with t <= o <= t + H."
    ),
    "false_positive": (
        "An alert that is not a true positive and whose whole horizon lies inside the data "
        "(t + H <= the last event time). Alerts raised after the customer's outcome, with no "
        "later outcome within H, are false positives (also counted as alerts_after_outcome)."
    ),
    "censored": (
        "An alert that is not a true positive but whose horizon runs past the end of the data: "
        "the outcome may still come. Censored alerts are left out of precision."
    ),
    "precision": (
        "Over alerted customers: customers with at least one true-positive alert divided by "
        "customers with at least one alert that is not censored. alert_precision is the same "
        "ratio over alerts."
    ),
    "precision_lower_bound": (
        "Customers with a true-positive alert divided by all alerted customers, censored ones "
        "included: precision if no censored alert turned out true."
    ),
    "recall": (
        "Over customers with the outcome (labelled_customers): customers with an alert in "
        "[o - H, o] for one of their outcomes o, divided by all customers with the outcome. "
        "Outcomes less than H after the first event had a shorter look-back "
        "(outcomes_with_short_history)."
    ),
    "lead_time": (
        "For each caught customer: hours from the first alert in [o - H, o] to the first "
        "outcome o that was caught. median_lead_hours is the median over caught customers."
    ),
    "per_rule": "The same measures restricted to the alerts of one rule.",
    "model_examples": (
        "One example per model, customer and UTC day: the customer's highest score of that day "
        "at time s. Positive when a matching outcome follows within H (s <= o <= s + H); "
        "negative when none does and s + H is inside the data; censored (left out) otherwise."
    ),
    "model_metrics": (
        "roc_auc: the probability that a positive example scores above a negative one (ties "
        "count half). log_loss: the mean negative log-likelihood of the labels, scores clipped "
        "to [1e-15, 1 - 1e-15] (an anomaly score is not a calibrated probability). "
        "roc_auc_by_day: the same per day of the examples (null without both classes)."
    ),
}


@dataclass(frozen=True, slots=True)
class AlertFact:
    alert_id: str
    customer_id: str
    ts: float
    type: str
    rule_id: str


@dataclass(frozen=True, slots=True)
class OutcomeFact:
    customer_id: str
    ts: float
    label: str


@dataclass(frozen=True, slots=True)
class ScoreExample:
    """A model's highest score for a customer on one UTC day, and when it was given."""

    customer_id: str
    day: str
    ts: float
    score: float


def definitions(labels: Mapping[str, str], horizon_days: float) -> dict[str, str]:
    """The definitions with this run's labels and horizon filled in."""
    pairs = ", ".join(f"{t} -> {label}" for t, label in sorted(labels.items()))
    return {
        k: v.format(labels=pairs or "(none)", horizon_days=horizon_days)
        for k, v in DEFINITIONS.items()
    }


def outcome_index(outcomes: Iterable[OutcomeFact]) -> dict[str, dict[str, list[float]]]:
    """Outcome times by label, then customer, sorted."""
    index: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for o in outcomes:
        index[o.label][o.customer_id].append(o.ts)
    for per_customer in index.values():
        for times in per_customer.values():
            times.sort()
    return {label: dict(v) for label, v in index.items()}


def next_outcome(times: Sequence[float], t: float) -> float | None:
    """The first outcome time at or after t.

    >>> next_outcome([5.0, 9.0], 6.0), next_outcome([5.0], 6.0)
    (9.0, None)
    """
    i = bisect_left(times, t)
    return times[i] if i < len(times) else None


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 6) if den else None


def score_alerts(
    alerts: Sequence[AlertFact],
    outcomes: Mapping[str, list[float]],
    *,
    horizon: float,
    data_start: float,
    data_end: float,
) -> dict[str, Any]:
    """Precision, recall and lead time of a group of alerts against one label's outcomes."""
    tp_alerts = fp_alerts = censored = after = 0
    evaluable: set[str] = set()
    tp_customers: set[str] = set()
    alert_times: dict[str, list[float]] = defaultdict(list)
    for a in alerts:
        alert_times[a.customer_id].append(a.ts)
        times = outcomes.get(a.customer_id, [])
        o = next_outcome(times, a.ts)
        if o is not None and o <= a.ts + horizon:
            tp_alerts += 1
            evaluable.add(a.customer_id)
            tp_customers.add(a.customer_id)
        elif a.ts + horizon > data_end:
            censored += 1
        else:
            fp_alerts += 1
            evaluable.add(a.customer_id)
            if times and times[0] < a.ts:
                after += 1
    leads: list[float] = []
    short_history = 0
    for customer, times in outcomes.items():
        if times[0] - horizon < data_start:
            short_history += 1
        mine = sorted(alert_times.get(customer, ()))
        for o in times:
            i = bisect_left(mine, o - horizon)
            if i < len(mine) and mine[i] <= o:
                leads.append((o - mine[i]) / 3600.0)
                break
    return {
        "precision": _ratio(len(tp_customers), len(evaluable)),
        "precision_lower_bound": _ratio(len(tp_customers), len(alert_times)),
        "recall": _ratio(len(leads), len(outcomes)),
        "median_lead_hours": round(statistics.median(leads), 3) if leads else None,
        "labelled_customers": len(outcomes),
        "caught_customers": len(leads),
        "alerts": len(alerts),
        "alerted_customers": len(alert_times),
        "true_positive_customers": len(tp_customers),
        "false_positive_customers": len(evaluable - tp_customers),
        "alert_precision": _ratio(tp_alerts, tp_alerts + fp_alerts),
        "true_positive_alerts": tp_alerts,
        "false_positive_alerts": fp_alerts,
        "censored_alerts": censored,
        "alerts_after_outcome": after,
        "outcomes_with_short_history": short_history,
        "lead_hours": sorted(round(x, 3) for x in leads),
    }


def _unevaluated(alerts: Sequence[AlertFact], label: str | None, note: str) -> dict[str, Any]:
    return {
        "label": label,
        "precision": None,
        "recall": None,
        "median_lead_hours": None,
        "labelled_customers": 0,
        "alerts": len(alerts),
        "alerted_customers": len({a.customer_id for a in alerts}),
        "note": note,
        "lead_hours": [],
    }


def evaluate_alerts(
    alerts: Sequence[AlertFact],
    outcomes: Iterable[OutcomeFact],
    *,
    horizon: float,
    data_start: float,
    data_end: float,
    labels: Mapping[str, str] = DEFAULT_LABELS,
    rule_types: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``by_type`` and ``by_rule`` measures (see the module docstring for the definitions).

    ``rule_types`` (rule id -> alert type) adds rules that raised no alert, with zero alerts.
    """
    index = outcome_index(outcomes)
    by_type_alerts: dict[str, list[AlertFact]] = defaultdict(list)
    by_rule_alerts: dict[str, list[AlertFact]] = defaultdict(list)
    rule_type: dict[str, str] = dict(rule_types or {})
    for a in alerts:
        by_type_alerts[a.type].append(a)
        by_rule_alerts[a.rule_id].append(a)
        rule_type.setdefault(a.rule_id, a.type)
    types = sorted(set(labels) | set(by_type_alerts) | set(rule_type.values()))

    def measure(group: Sequence[AlertFact], alert_type: str) -> dict[str, Any]:
        label = labels.get(alert_type)
        if label is None:
            return _unevaluated(group, None, f"no outcome label is matched to {alert_type}")
        if label not in index:
            return _unevaluated(group, label, f"the input holds no {label!r} outcome")
        out = score_alerts(
            group, index[label], horizon=horizon, data_start=data_start, data_end=data_end
        )
        return {"label": label, **out}

    by_type = {t: measure(by_type_alerts.get(t, []), t) for t in types}
    by_rule = {
        r: {"alert_type": rule_type[r], **measure(by_rule_alerts.get(r, []), rule_type[r])}
        for r in sorted(rule_type)
    }
    return {"by_type": by_type, "by_rule": by_rule}


def lead_histogram(lead_hours: Sequence[float]) -> dict[str, Any]:
    """Counts of lead times in ``LEAD_BINS_HOURS`` bins (the last bin open-ended).

    >>> lead_histogram([1.0, 30.0, 800.0])["counts"][:4], lead_histogram([])["counts"][-1]
    ([1, 0, 0, 1], 0)
    """
    edges = LEAD_BINS_HOURS
    counts = [0] * len(edges)
    for h in lead_hours:
        i = max(bisect_left(edges, h + 1e-12) - 1, 0)
        counts[min(i, len(edges) - 1)] += 1
    labels = [f"{edges[i]:g}-{edges[i + 1]:g}h" for i in range(len(edges) - 1)]
    labels.append(f">={edges[-1]:g}h")
    return {"bins": labels, "counts": counts}


def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Area under the ROC curve (Mann-Whitney, ties count half); None without both classes.

    >>> roc_auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True])
    0.75
    >>> roc_auc([0.5, 0.5, 0.5], [True, False, False])
    0.5
    """
    n = len(scores)
    n_pos = sum(1 for y in labels if y)
    n_neg = n - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    pairs = sorted(zip(scores, labels, strict=True), key=lambda p: p[0])
    rank_sum = 0.0
    i = 0
    while i < n:
        j = i
        while j < n and pairs[j][0] == pairs[i][0]:
            j += 1
        positives = sum(1 for k in range(i, j) if pairs[k][1])
        rank_sum += positives * (i + 1 + j) / 2.0
        i = j
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def log_loss(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Mean negative log-likelihood, scores clipped to [1e-15, 1 - 1e-15]; None when empty.

    >>> round(log_loss([0.9, 0.2], [True, False]), 4)
    0.1643
    """
    if not scores:
        return None
    total = 0.0
    for p, y in zip(scores, labels, strict=True):
        p = min(max(p, 1e-15), 1 - 1e-15)
        total -= math.log(p) if y else math.log(1 - p)
    return total / len(scores)


def evaluate_model(
    examples: Iterable[ScoreExample],
    outcomes: Mapping[str, list[float]] | None,
    *,
    horizon: float,
    data_end: float,
) -> dict[str, Any]:
    """ROC AUC, log loss and per-day ROC AUC of a model's daily examples against outcomes."""
    if outcomes is None:
        return {
            "roc_auc": None,
            "log_loss": None,
            "examples": 0,
            "positives": 0,
            "censored": 0,
            "roc_auc_by_day": [],
            "note": "the input holds no matching outcome",
        }
    scores: list[float] = []
    labels: list[bool] = []
    days: dict[str, tuple[list[float], list[bool]]] = defaultdict(lambda: ([], []))
    censored = 0
    for ex in examples:
        o = next_outcome(outcomes.get(ex.customer_id, []), ex.ts)
        if o is not None and o <= ex.ts + horizon:
            y = True
        elif ex.ts + horizon > data_end:
            censored += 1
            continue
        else:
            y = False
        scores.append(ex.score)
        labels.append(y)
        day = days[ex.day]
        day[0].append(ex.score)
        day[1].append(y)
    auc = roc_auc(scores, labels)
    loss = log_loss(scores, labels)
    by_day = []
    for day_name in sorted(days):
        day_scores, day_labels = days[day_name]
        day_auc = roc_auc(day_scores, day_labels)
        by_day.append(
            {
                "day": day_name,
                "roc_auc": None if day_auc is None else round(day_auc, 6),
                "examples": len(day_scores),
                "positives": sum(day_labels),
            }
        )
    return {
        "roc_auc": None if auc is None else round(auc, 6),
        "log_loss": None if loss is None else round(loss, 6),
        "examples": len(scores),
        "positives": sum(labels),
        "censored": censored,
        "roc_auc_by_day": by_day,
    }
