"""Prometheus metrics of the online models, all named ``vigil_model_*``.

Learner: examples learned, rolling ROC AUC and log loss, label delay, drift alarms, outcomes
joined or ignored (with the reason), snapshots published, its event-time watermark.
Workers (and the learner): the snapshot number each model serves, snapshots refused.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_DAY = 86400.0

EXAMPLES = Counter(
    "vigil_model_examples_total", "Examples a model learned from (the learner).", ["model"]
)
ROC_AUC = Gauge(
    "vigil_model_roc_auc", "Rolling progressive-validation ROC AUC of a model.", ["model"]
)
LOG_LOSS = Gauge(
    "vigil_model_log_loss", "Rolling progressive-validation log loss of a model.", ["model"]
)
LABEL_DELAY = Histogram(
    "vigil_model_label_delay_seconds",
    "Event time from a model's prediction (the feature snapshot) to the label that judged it.",
    ["model"],
    buckets=(
        3600.0,
        6 * 3600.0,
        _DAY,
        3 * _DAY,
        7 * _DAY,
        14 * _DAY,
        21 * _DAY,
        30 * _DAY,
        60 * _DAY,
    ),
)
DRIFT = Counter(
    "vigil_model_drift_total", "Concept drift alarms (ADWIN on a model's error).", ["model"]
)
OUTCOMES = Counter(
    "vigil_model_outcomes_total",
    "Outcomes seen by the learner: joined, unknown_customer, unknown_decision or ignored.",
    ["label", "result"],
)
BAD_RECORDS = Counter(
    "vigil_model_bad_records_total", "Records the learner could not read (skipped)."
)
SNAPSHOTS_PUBLISHED = Counter(
    "vigil_model_snapshots_published_total", "Snapshots the learner published.", ["model"]
)
SNAPSHOT_BYTES = Gauge(
    "vigil_model_snapshot_bytes", "Size of a model's latest published snapshot.", ["model"]
)
SNAPSHOT_SERVED = Gauge(
    "vigil_model_snapshot_served", "Snapshot number a process serves for a model.", ["model"]
)
SNAPSHOT_REFUSED = Counter(
    "vigil_model_snapshot_refused_total",
    "Snapshots refused (corrupt, other River version or model version).",
    ["model"],
)
COLD = Gauge("vigil_model_cold", "1 while a model still answers with its cold prior.", ["model"])
WATERMARK = Gauge(
    "vigil_model_watermark_seconds", "The learner's event-time watermark (Unix seconds)."
)
LEARN_BATCH = Histogram(
    "vigil_model_learn_batch_seconds",
    "Learner time per batch of decision records (Redis round trips included).",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
