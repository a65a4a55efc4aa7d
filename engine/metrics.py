"""Prometheus metrics of the workers and the API. Names ``vigil_*``; latencies in seconds."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
