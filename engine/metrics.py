"""Prometheus metrics of the workers and the API. Names ``vigil_*``; latencies in seconds.

The pipeline reports through the ``engine.ports.PipelineMetrics`` port: ``PrometheusMetrics``
live (the worker, the API's what-if), ``NoMetrics`` in replay, whose month of history would
otherwise count into the process's pipeline counters, at ~4 us per event. (The replay's learner
still counts its examples and outcomes into ``vigil_model_*``.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from prometheus_client import Counter, Histogram

from actions.experiments import experiment_counts

if TYPE_CHECKING:
    from engine.decide import Decision

LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.00075,
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

EVENTS = Counter("vigil_events_total", "Input records by event type and result", ["type", "result"])
DLQ = Counter("vigil_dlq_total", "Records sent to the dead-letter topic, by reason", ["reason"])
DUPLICATES = Counter("vigil_duplicates_total", "Redelivered events recognised by event_id")
LATE = Counter("vigil_late_events_total", "Events beyond the allowed lateness", ["status"])
STAGE = Histogram(
    "vigil_stage_seconds",
    "Time per batch in each pipeline stage",
    ["stage"],
    buckets=LATENCY_BUCKETS,
)
END_TO_END = Histogram(
    "vigil_end_to_end_seconds",
    "Decision time minus the time the record reached Kafka",
    buckets=LATENCY_BUCKETS,
)
BATCH = Histogram(
    "vigil_batch_size", "Records per batch", buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
)
ALERTS = Counter("vigil_alerts_total", "Alerts raised", ["type", "rule"])
ACTIONS = Counter("vigil_actions_total", "Actions chosen", ["channel"])
SUPPRESSIONS = Counter("vigil_suppressions_total", "Alerts and actions suppressed", ["reason"])
RULE_ERRORS = Counter(
    "vigil_rule_errors_total", "Rule conditions that failed to evaluate", ["rule"]
)
RETRIES = Counter("vigil_batch_retries_total", "Batches retried after an infrastructure error")
RULE_RELOAD_FAILURES = Counter(
    "vigil_rule_reload_failures_total", "Changed rule files refused (the old set keeps serving)"
)
EXPERIMENT_EXPOSURES = Counter(
    "vigil_experiment_exposures_total",
    "Customers first exposed to an experiment, by variant (control included)",
    ["experiment", "variant"],
)
EXPERIMENT_OUTCOMES = Counter(
    "vigil_experiment_outcomes_total",
    "Outcomes of exposed customers by variant: uplift = a variant's rate minus control's",
    ["experiment", "variant", "label"],
)


class PrometheusMetrics:
    """The ``vigil_*`` counters and histograms above."""

    def dead_letter(self, reason: str) -> None:
        DLQ.labels(reason).inc()
        EVENTS.labels("invalid", "dead_letter").inc()

    def decided(
        self, event_type: str, status: str, decision: Decision, waited: float | None
    ) -> None:
        """One decision: its event, alerts, actions, suppressions, experiments, rule errors;
        ``waited``: decision time minus the record's Kafka timestamp, when it has one."""
        EVENTS.labels(event_type, status).inc()
        if status == "duplicate":
            DUPLICATES.inc()
        elif status in ("late", "too_late"):
            LATE.labels(status).inc()
        for alert in decision.alerts:
            ALERTS.labels(alert.type, alert.rule_id).inc()
        for action in decision.actions:
            ACTIONS.labels(action.channel).inc()
        record = decision.record
        for s in record["rules"]["suppressed"]:
            SUPPRESSIONS.labels(s["reason"]).inc()
        for c in record["actions"]["candidates"]:
            # routing outcomes (above the lead's layer, outranked) are not suppressions
            if c.get("stage") in ("policy", "experiment"):
                SUPPRESSIONS.labels(c["status"]).inc()
        exposures, outcomes = experiment_counts(record)
        for experiment, variant in exposures:
            EXPERIMENT_EXPOSURES.labels(experiment, variant).inc()
        for experiment, variant, label in outcomes:
            EXPERIMENT_OUTCOMES.labels(experiment, variant, label).inc()
        for e in record["rules"]["errors"]:
            RULE_ERRORS.labels(e["rule_id"]).inc()
        if waited is not None:
            END_TO_END.observe(max(waited, 0.0))

    def batch(self, size: int, stages: Sequence[tuple[str, float]]) -> None:
        """A batch's size and the seconds it spent in each stage."""
        BATCH.observe(size)
        for stage, seconds in stages:
            STAGE.labels(stage).observe(seconds)


class NoMetrics:
    """Reports nothing (replay)."""

    def dead_letter(self, reason: str) -> None:
        pass

    def decided(
        self, event_type: str, status: str, decision: Decision, waited: float | None
    ) -> None:
        pass

    def batch(self, size: int, stages: Sequence[tuple[str, float]]) -> None:
        pass
