"""Model health: progressive validation on delayed labels, and concept drift.

Every labelled example is judged by the prediction the model made *when the snapshot was taken*
(before it learned that label): rolling ROC AUC and log loss over the last ``window`` labels,
label delay (event time from prediction to label), and ADWIN on the absolute error
``|y - p|``: a change in the error's mean is a drift alarm (a log line and
``vigil_model_drift_total``).

>>> h = ModelHealth.new("m", window=100, delta=0.002)
>>> for i in range(50):
...     _ = h.update(i % 2 == 0, 0.9 if i % 2 == 0 else 0.2, delay=3600.0, at=float(i))
>>> d = h.as_dict()
>>> d["roc_auc"], d["labelled"], d["positives"], d["label_delay_mean_seconds"]
(1.0, 50, 25, 3600.0)
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from river import drift, metrics, utils

from online_models import metrics as prom

log = logging.getLogger(__name__)


@dataclass
class ModelHealth:
    name: str
    auc: Any  # river.metrics.RollingROCAUC
    logloss: Any  # river.utils.Rolling(LogLoss)
    adwin: tuple[Any, Any]  # river.drift.ADWIN on the error of negatives, of positives
    labelled: int = 0
    positives: int = 0
    delay_sum: float = 0.0
    delay_last: float = 0.0
    drifts: int = 0
    last_drift_at: float | None = None
    watch_drift: bool = True
    recent: deque[bool] = field(default_factory=deque)  # the labels inside the rolling window

    @classmethod
    def new(cls, name: str, window: int, delta: float, watch_drift: bool = True) -> ModelHealth:
        """``watch_drift=False`` for an anomaly score: not a probability, its "error" moves
        with every refresh of the detector's window, so ADWIN on it would only cry wolf."""
        return cls(
            name,
            metrics.RollingROCAUC(window_size=window),  # type: ignore[no-untyped-call]
            utils.Rolling(metrics.LogLoss, window_size=window),
            (
                drift.ADWIN(delta=delta),  # type: ignore[no-untyped-call]
                drift.ADWIN(delta=delta),  # type: ignore[no-untyped-call]
            ),
            watch_drift=watch_drift,
            recent=deque(maxlen=window),
        )

    def update(self, y: bool, p: float, delay: float, at: float) -> bool:
        """Judge one prediction by its label; True when ADWIN saw the error drift."""
        p = min(max(p, 0.0), 1.0)
        self.auc.update(y, p)
        self.logloss.update(y, p)
        self.labelled += 1
        self.positives += int(y)
        self.recent.append(y)
        self.delay_sum += delay
        self.delay_last = delay
        prom.LABEL_DELAY.labels(self.name).observe(delay)
        if not self.watch_drift:
            return False
        detector = self.adwin[int(y)]
        before = float(detector.estimation)
        detector.update(abs(float(y) - p))
        # ADWIN also "detects" a model getting better: only a higher error is an alarm.
        if detector.drift_detected and float(detector.estimation) > before:
            self.drifts += 1
            self.last_drift_at = at
            prom.DRIFT.labels(self.name).inc()
            log.warning(
                "concept drift on %s at event time %.0f: its error on %s changed (ADWIN, "
                "%d labels, rolling ROC AUC %.3f)",
                self.name,
                at,
                "positives" if y else "negatives",
                self.labelled,
                self.auc.get(),
            )
            return True
        return False

    def _both_classes(self) -> bool:
        """ROC AUC means something only with positives and negatives in the window."""
        pos = sum(self.recent)
        return 0 < pos < len(self.recent)

    def as_dict(self) -> dict[str, Any]:
        """``roc_auc`` and ``log_loss`` are over the rolling window (None until it holds both
        classes / any label); the counts are since the start."""
        auc = float(self.auc.get()) if self._both_classes() else None
        loss = float(self.logloss.get()) if self.labelled else None
        return {
            "roc_auc": auc,
            "log_loss": loss,
            "labelled": self.labelled,
            "positives": self.positives,
            "label_delay_mean_seconds": self.delay_sum / self.labelled if self.labelled else None,
            "label_delay_last_seconds": self.delay_last if self.labelled else None,
            "drifts": self.drifts,
            "last_drift_at": self.last_drift_at,
        }

    def export(self) -> None:
        """Set the gauges (called per batch, not per example)."""
        if self._both_classes():
            prom.ROC_AUC.labels(self.name).set(float(self.auc.get()))
        if self.labelled:
            prom.LOG_LOSS.labels(self.name).set(float(self.logloss.get()))


def roc_auc(pairs: Iterable[tuple[bool, float]]) -> float:
    """Exact ROC AUC of (label, score) pairs (ties count half); NaN without both classes.

    >>> roc_auc([(True, 0.9), (False, 0.1), (True, 0.4), (False, 0.4)])
    0.875
    """
    ranked = sorted(pairs, key=lambda t: t[1])
    pos = sum(1 for y, _ in ranked if y)
    neg = len(ranked) - pos
    if not pos or not neg:
        return math.nan
    rank_sum = 0.0
    i = 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][1] == ranked[i][1]:
            j += 1
        mid = (i + 1 + j) / 2.0  # the average 1-based rank of the tie group
        rank_sum += mid * sum(1 for y, _ in ranked[i:j] if y)
        i = j
    return (rank_sum - pos * (pos + 1) / 2.0) / (pos * neg)
