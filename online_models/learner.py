"""The learner: decision records and outcomes in, models that learned from delayed labels out.

Pure and driven by plain data, so the live learner process (``streams.learner``) and replay run
the same code. Feed it every decision record in the order a partition delivers them:

- a decision (``event_type`` not ``outcome``, ``state_status`` ``applied``) keeps a *feature
  snapshot* of the customer's event-time day (the day's last decision wins): the models' inputs
  as the decision saw them and each model's prediction then (the score in the record when it
  came from the same model version and was not cold, else the learner's own). The anomaly
  models learn from the first snapshot of each customer-day (no label needed). A decision that
  chose an action also keeps an offer snapshot under its decision id.
- an outcome (a decision record of an ``outcome`` event, or the raw event through
  ``observe_outcome``) is joined to snapshots taken *before* it, never after:
  ``churned`` labels the customer's earlier day snapshots positive when they are at most
  ``positive_window`` old, leaves out those older but within ``horizon``, negative beyond;
  ``retained`` labels them negative; ``offer_accepted``/``offer_declined`` teach the offer model
  of the action chosen by ``decision_id`` (or, without one, by the customer's latest offer within
  ``offer_horizon``); ``asset_drop`` is remembered to judge the anomaly score. Anything else
  (e.g. ``contacted``) is counted and ignored, as is an outcome nothing can be joined to.
- the event-time watermark (latest decision time minus ``lateness``, or ``advance_to``) turns
  a day's snapshots still pending ``horizon`` after the day ended into negatives.

Each label first judges the prediction made at snapshot time (health: rolling ROC AUC, log
loss, label delay, ADWIN drift), then the model learns from it.

>>> learner = Learner(LearnerConfig(lateness=0.0))
>>> def decision(i, cid, t, **f):
...     return {"decision_id": f"d{i}", "customer_id": cid, "event_type": "transaction",
...             "event_time": t, "state_status": "applied", "features": f}
>>> learner.observe_decision(decision(1, "c1", 1_000_000.0, closure_page_views_30d=3.0))
>>> learner.observe_outcome({"customer_id": "c1", "label": "churned", "ts": 1_086_400.0})
>>> learner.health()["models"]["churn_risk"]["examples"]
1
>>> learner.observe_outcome({"customer_id": "c9", "label": "churned", "ts": 1_086_400.0})
>>> learner.counts["unknown_customer"]
1
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from online_models import metrics as prom
from online_models.catalog import ModelCatalog, build_catalog
from online_models.health import ModelHealth
from online_models.labels import DAY, Checkout, FeatureSnapshot, PendingLabels
from online_models.scorer import OFFER_SNAPSHOT, Learned, LiveModel, ModelScorer, model_inputs
from online_models.settings import ModelSettings
from online_models.snapshots import StateStamp, decode_snapshot, encode_snapshot

log = logging.getLogger(__name__)

# An explicit negative outcome, and the label it denies.
NEGATIVES: Mapping[str, str] = {"retained": "churned"}
OFFER_LABELS: Mapping[str, bool] = {"offer_accepted": True, "offer_declined": False}
LEARNER_STATE = "learner"


@dataclass(frozen=True)
class LearnerConfig:
    """Label horizons and health settings, in event-time seconds."""

    horizon: float = 30 * DAY
    positive_window: float = 14 * DAY
    offer_horizon: float = 14 * DAY
    # Other labels a model is judged by (anomaly health): positive within this window.
    label_windows: Mapping[str, float] | None = None
    lateness: float = 3600.0
    health_window: int = 2000
    drift_delta: float = 0.002
    seed: int = 7

    @classmethod
    def from_settings(cls, s: ModelSettings, seed: int) -> LearnerConfig:
        return cls(
            horizon=s.horizon_seconds,
            positive_window=s.positive_window_seconds,
            offer_horizon=s.offer_horizon_seconds,
            label_windows={"asset_drop": s.asset_drop_horizon_seconds},
            lateness=s.lateness_seconds,
            health_window=s.health_window,
            drift_delta=s.drift_delta,
            seed=seed,
        )

    def window(self, label: str) -> tuple[float, float]:
        """(positive window, horizon) of a label."""
        if self.label_windows and label in self.label_windows:
            w = self.label_windows[label]
            return w, w
        return self.positive_window, self.horizon


@dataclass(frozen=True, slots=True)
class LabelledExample:
    """One prediction judged by its label (what ``listener`` receives)."""

    model: str
    customer_id: str
    decision_id: str
    ts: float  # when the prediction was made (the snapshot)
    label_ts: float  # when the label was known
    y: bool
    p: float


def epoch(value: Any) -> float:
    """Event time as Unix seconds, from a number or an ISO 8601 string with an offset.

    >>> epoch("1970-01-02T00:00:00+00:00"), epoch(5)
    (86400.0, 5.0)
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError(f"timestamp without an offset: {value!r}")
        return parsed.timestamp()
    raise ValueError(f"not a timestamp: {value!r}")


class Learner:
    """Every model's learning, from plain decision records and outcome events."""

    def __init__(
        self,
        config: LearnerConfig | None = None,
        catalog: ModelCatalog | None = None,
        pending: PendingLabels | None = None,
        listener: Callable[[LabelledExample], None] | None = None,
    ) -> None:
        self.config = config or LearnerConfig()
        self.catalog = catalog or build_catalog()
        self.pending = pending if pending is not None else PendingLabels()
        self.listener = listener
        self._scorer = ModelScorer.fresh(self.config.seed, self.catalog)
        self._inputs = self.catalog.inputs()
        self._offer_spec = self.catalog.offer_spec()
        specs = self.catalog.specs()
        self._classifiers = [s.name for s in specs if s.kind == "classifier" and s.label]
        self._anomalies = [s.name for s in specs if s.kind == "anomaly"]
        self._terminal = {s.label for s in specs if s.kind == "classifier" and s.label}
        self._terminal |= {neg for neg, pos in NEGATIVES.items() if pos in self._terminal}
        self._marked = {s.label for s in specs if s.label} | self._terminal
        kinds = {s.name: s.kind for s in specs}
        if self._offer_spec is not None:
            kinds[OFFER_SNAPSHOT] = "classifier"
        self.health_by_model = {
            n: ModelHealth.new(
                n, self.config.health_window, self.config.drift_delta, kind == "classifier"
            )
            for n, kind in kinds.items()
        }
        self.counts: Counter[str] = Counter()
        self.max_ts: float | None = None
        self.floor: float | None = None
        self.next_due_day: int | None = None
        self.changes = 0  # examples learned since the last snapshot was taken
        self._learned: list[Learned] | None = None  # kept only after keep_learned()

    # -- feeding -------------------------------------------------------------------------

    def observe(
        self, records: Iterable[Mapping[str, Any]], pending: PendingLabels | None = None
    ) -> None:
        """Observe decision records in order (outcome records included)."""
        for record in records:
            self.observe_decision(record, pending)

    def observe_decision(
        self, record: Mapping[str, Any], pending: PendingLabels | None = None
    ) -> None:
        """One decision record from the ``decisions`` topic (or replay's sink)."""
        store = self.pending if pending is None else pending
        try:
            if record.get("event_type") == "outcome":
                if record.get("state_status") == "duplicate":
                    self.counts["duplicate_outcome"] += 1
                    return
                self.observe_outcome(record["input"], store)
                return
            self.counts["decisions"] += 1
            if record.get("state_status") != "applied":
                # A redelivery (same decision again) or a late event decided on newer state.
                self.counts["not_applied"] += 1
                return
            cid = str(record["customer_id"])
            ts = epoch(record["event_time"])
            features = record["features"]
            decision_id = str(record["decision_id"])
        except (KeyError, TypeError, ValueError, AttributeError):
            self._bad()
            return
        self._see(ts)
        self._snapshot(store, cid, ts, decision_id, features, record)
        self._advance(store)

    def observe_outcome(
        self, event: Mapping[str, Any], pending: PendingLabels | None = None
    ) -> None:
        """One outcome event (``label``, ``customer_id``, ``ts``, optional ``decision_id``)."""
        store = self.pending if pending is None else pending
        try:
            label = str(event["label"])
            cid = str(event["customer_id"])
            ts = epoch(event["ts"])
            decision_id = event.get("decision_id")
        except (KeyError, TypeError, ValueError, AttributeError):
            self._bad()
            return
        if label in self._terminal:
            store.mark(cid, label, ts)
            snaps = store.take_days_before(cid, ts)
            if not snaps:
                self._outcome(label, "unknown_customer")
                return
            marks = store.marks(cid)
            for snap in snaps:
                self._finalize(cid, snap, marks, ts)
            self._outcome(label, "joined")
        elif label in OFFER_LABELS and self._offer_spec is not None:
            offer = store.take_offer(
                cid, str(decision_id) if decision_id else None, ts, ts - self.config.offer_horizon
            )
            if offer is None or offer.action is None:
                self._outcome(label, "unknown_decision")
                return
            self._learn_offer(cid, offer, OFFER_LABELS[label], ts)
            self._outcome(label, "joined")
        elif label in self._marked:
            store.mark(cid, label, ts)
            self._outcome(label, "marked")
        else:
            self._outcome(label, "ignored")

    def advance_to(self, ts: float, pending: PendingLabels | None = None) -> None:
        """Move the event-time watermark to ``ts`` (e.g. at the end of a quiet period)."""
        self.floor = ts if self.floor is None else max(self.floor, ts)
        self._advance(self.pending if pending is None else pending)

    # -- the learning ------------------------------------------------------------------

    def _see(self, ts: float) -> None:
        if self.max_ts is None or ts > self.max_ts:
            self.max_ts = ts

    @property
    def watermark(self) -> float | None:
        """Event time up to which the learner holds every decision: the latest decision's time
        minus the allowed lateness, or what ``advance_to`` said, whichever is later."""
        if self.max_ts is None:
            return self.floor
        wm = self.max_ts - self.config.lateness
        return wm if self.floor is None or wm > self.floor else self.floor

    def _due_at(self, day: int) -> float:
        """When a day's pending snapshots become negatives."""
        return (day + 1) * DAY + self.config.horizon

    def _snapshot(
        self,
        store: PendingLabels,
        cid: str,
        ts: float,
        decision_id: str,
        features: Mapping[str, Any],
        record: Mapping[str, Any],
    ) -> None:
        day = int(ts // DAY)
        x = model_inputs(self._inputs, features)
        models = self._scorer.models
        scores = record.get("scores") or {}
        preds = {name: self._prediction(live, x, scores.get(name)) for name, live in models.items()}
        snap = FeatureSnapshot(ts, decision_id, x, preds)
        marks = store.marks(cid)
        late = any(marks.get(label, float("-inf")) > ts for label in self._terminal)
        new_day = not store.has_day(cid, day)
        if new_day:
            for name in self._anomalies:
                live = models[name]
                self._learn(name, live, _sub(x, live.spec.inputs), None)
        wm = self.watermark
        if late or (wm is not None and wm >= self._due_at(day)):
            # Its label is already known (an outcome came first) or its horizon passed.
            self.counts["late_snapshots"] += 1
            self._finalize(cid, snap, marks, max(wm or ts, ts))
        else:
            store.put_day(cid, day, snap)
            self.counts["snapshots"] += int(new_day)
            if self.next_due_day is None or day < self.next_due_day:
                self.next_due_day = day
        chosen = (record.get("actions") or {}).get("chosen") or ()
        if chosen and self._offer_spec is not None:
            ox = _sub(x, self._offer_spec.inputs)
            for action in chosen:
                live_offer = self._scorer.offers.get(str(action))
                p = live_offer.predict(ox) if live_offer else self._offer_spec.prior
                store.put_offer(
                    cid, FeatureSnapshot(ts, decision_id, x, {OFFER_SNAPSHOT: p}, str(action))
                )
                self.counts["offer_snapshots"] += 1

    @staticmethod
    def _prediction(live: LiveModel, x: Mapping[str, float], served: Any) -> float:
        """The score the decision was served if it came from this model warm, else our own."""
        if served.__class__ is dict and served.get("cold") is False:
            score = served.get("score")
            version = served.get("version")
            if (
                score.__class__ is float
                and version.__class__ is str
                and version.startswith(live.spec.version)
                and version[len(live.spec.version) : len(live.spec.version) + 1] == "."
            ):
                return score
        return live.predict(_sub(x, live.spec.inputs))

    def _label(self, label: str, ts: float, marks: Mapping[str, float]) -> bool | None:
        """True / False / None (left out: the label came after the positive window but within
        the horizon, so the snapshot is neither a clean positive nor a negative)."""
        at = marks.get(label)
        if at is None or at <= ts:
            return False
        positive, horizon = self.config.window(label)
        if at - ts <= positive:
            return True
        if at - ts <= horizon:
            return None
        return False

    def _finalize(
        self, cid: str, snap: FeatureSnapshot, marks: Mapping[str, float], at: float
    ) -> None:
        models = self._scorer.models
        for name in self._classifiers:
            live = models[name]
            y = self._label(live.spec.label or "", snap.ts, marks)
            if y is None:
                self.counts["left_out"] += 1
                continue
            self._judge(name, cid, snap, y, at)
            self._learn(name, live, _sub(snap.x, live.spec.inputs), y)
        for name in self._anomalies:
            label = models[name].spec.label
            if label:
                y = self._label(label, snap.ts, marks)
                if y is not None:
                    self._judge(name, cid, snap, y, at)

    def _judge(self, name: str, cid: str, snap: FeatureSnapshot, y: bool, at: float) -> None:
        p = snap.preds.get(name)
        if p is None:
            return
        self.health_by_model[name].update(y, p, max(at - snap.ts, 0.0), at)
        if self.listener is not None:
            self.listener(LabelledExample(name, cid, snap.decision_id, snap.ts, at, y, p))

    def _learn_offer(self, cid: str, offer: FeatureSnapshot, y: bool, at: float) -> None:
        spec = self._offer_spec
        assert spec is not None and offer.action is not None
        live = self._scorer.offers.get(offer.action)
        if live is None:
            live = LiveModel(spec, spec.build(self.config.seed))
            self._scorer.offers[offer.action] = live
        self._judge(OFFER_SNAPSHOT, cid, offer, y, at)
        self._learn(OFFER_SNAPSHOT, live, _sub(offer.x, spec.inputs), y, offer.action)

    def _learn(
        self,
        name: str,
        live: LiveModel,
        x: dict[str, float],
        y: bool | None,
        action: str | None = None,
    ) -> None:
        live.learn(x, y)
        self.changes += 1
        prom.EXAMPLES.labels(name).inc()
        if self._learned is not None:
            self._learned.append(Learned(name, x, y, action))

    def keep_learned(self) -> None:
        """From now on keep every example learned, in order, for ``take_learned``: a scorer
        equal to this learner's models that ``follow``s them stays equal (replay)."""
        self._learned = []

    def take_learned(self) -> list[Learned]:
        """The examples learned since the last call (``keep_learned`` first)."""
        if self._learned is None:
            raise RuntimeError("keep_learned() was not called")
        taken, self._learned = self._learned, []
        return taken

    def _advance(self, store: PendingLabels) -> None:
        wm = self.watermark
        if wm is None or self.next_due_day is None:
            return
        while wm >= self._due_at(self.next_due_day):
            day = self.next_due_day
            at = self._due_at(day)
            for cid, snap in store.take_due(day):
                self._finalize(cid, snap, store.marks(cid), at)
                store.expire(cid, at - self.config.horizon)
            self.next_due_day = day + 1

    def _outcome(self, label: str, result: str) -> None:
        self.counts[result] += 1
        prom.OUTCOMES.labels(label if len(label) <= 32 else "other", result).inc()

    def _bad(self) -> None:
        self.counts["bad_records"] += 1
        prom.BAD_RECORDS.inc()

    # -- batches against a store that loads what they need ------------------------------

    def plan(self, records: Iterable[Mapping[str, Any]]) -> Checkout:
        """What ``observe`` of these records will read from the label store."""
        full: set[str] = set()
        days: dict[str, set[int]] = {}
        offers: dict[str, float] = {}
        max_ts = self.max_ts
        first_day = self.next_due_day
        for r in records:
            try:
                if r.get("event_type") == "outcome":
                    ev = r["input"]
                    cid, label, ts = str(ev["customer_id"]), str(ev["label"]), epoch(ev["ts"])
                    if label in self._terminal:
                        full.add(cid)
                    elif label in OFFER_LABELS:
                        since = ts - self.config.offer_horizon
                        offers[cid] = min(offers.get(cid, since), since)
                    days.setdefault(cid, set())
                elif r.get("state_status") == "applied":
                    cid, ts = str(r["customer_id"]), epoch(r["event_time"])
                    day = int(ts // DAY)
                    days.setdefault(cid, set()).add(day)
                    max_ts = ts if max_ts is None else max(max_ts, ts)
                    first_day = day if first_day is None else min(first_day, day)
            except (KeyError, TypeError, ValueError, AttributeError):
                continue
        due: tuple[int, ...] = ()
        lowest = None if max_ts is None else max_ts - self.config.lateness
        floors = [m for m in (lowest, self.floor) if m is not None]
        if floors and first_day is not None:
            last = int((max(floors) - self.config.horizon) // DAY) - 1
            due = tuple(range(first_day, last + 1))
        return Checkout(
            frozenset(full),
            {c: frozenset(d) for c, d in days.items() if c not in full},
            offers,
            due,
        )

    # -- serving, health, snapshots -----------------------------------------------------

    def scorer(self) -> ModelScorer:
        """A scorer over the learner's own models (live: it sees every update at once)."""
        return self._scorer

    def health(self) -> dict[str, Any]:
        """Per model: health, examples learned, cold; the learner's counters and watermark."""
        models: dict[str, Any] = {}
        for name, live in self._scorer.models.items():
            models[name] = {
                **self.health_by_model[name].as_dict(),
                "examples": live.examples,
                "cold": live.cold,
                "version": live.version,
                "kind": live.spec.kind,
            }
        if self._offer_spec is not None:
            offers = self._scorer.offers
            models[OFFER_SNAPSHOT] = {
                **self.health_by_model[OFFER_SNAPSHOT].as_dict(),
                "examples": sum(m.examples for m in offers.values()),
                "cold": all(m.cold for m in offers.values()) if offers else True,
                "version": f"{self._offer_spec.version}.{self._scorer.offer_snapshot}",
                "kind": "classifier",
                "actions": {a: m.examples for a, m in sorted(offers.items())},
            }
        return {
            "models": models,
            "counts": dict(sorted(self.counts.items())),
            "watermark": self.watermark,
            "pending": self.pending.size(),
        }

    def export_metrics(self) -> None:
        for h in self.health_by_model.values():
            h.export()
        for name, live in self._scorer.models.items():
            prom.COLD.labels(name).set(1.0 if live.cold else 0.0)
        if self.watermark is not None:
            prom.WATERMARK.set(self.watermark)

    def snapshot_names(self) -> tuple[str, ...]:
        names = tuple(self._scorer.models)
        return names + ((OFFER_SNAPSHOT,) if self._offer_spec else ()) + (LEARNER_STATE,)

    def _state_stamp(self) -> StateStamp:
        text = "|".join(f"{s.name}:{s.version}" for s in self.catalog.specs())
        if self._offer_spec is not None:
            text += f"|{self._offer_spec.name}:{self._offer_spec.version}"
        return StateStamp(LEARNER_STATE, hashlib.sha256(text.encode()).hexdigest()[:10])

    def export(self, name: str) -> bytes:
        """The stamped snapshot of a model, ``offer_response`` or the learner's own state."""
        created = self.watermark or 0.0
        if name != LEARNER_STATE:
            return self._scorer.export(name, created)
        state = {
            "health": self.health_by_model,
            "counts": dict(self.counts),
            "max_ts": self.max_ts,
            "floor": self.floor,
            "next_due_day": self.next_due_day,
        }
        return encode_snapshot(self._state_stamp(), state, sum(self.counts.values()), created)

    def published(self, name: str, number: int) -> None:
        """Record that ``name`` was published as snapshot ``number``."""
        if name == OFFER_SNAPSHOT:
            self._scorer.offer_snapshot = number
            for live in self._scorer.offers.values():
                live.snapshot = number
        elif name in self._scorer.models:
            self._scorer.models[name].snapshot = number

    def restore(self, name: str, number: int, blob: bytes) -> None:
        """Take back a published snapshot (after a restart); ``SnapshotError`` if refused."""
        if name != LEARNER_STATE:
            self._scorer.install(name, number, blob)
            return
        state = decode_snapshot(blob, self._state_stamp()).state
        self.health_by_model.update(state["health"])
        self.counts = Counter(state["counts"])
        self.max_ts = state["max_ts"]
        self.floor = state["floor"]
        self.next_due_day = state["next_due_day"]


def _sub(x: Mapping[str, float], names: tuple[str, ...]) -> dict[str, float]:
    return {n: x.get(n, 0.0) for n in names}
