"""Scoring every decision with every model: plain dicts in, scores out.

Workers hold a ``ModelScorer`` and hot-swap its models when the learner publishes a newer
snapshot (``install``); the object itself never changes, so the pipeline keeps its reference.

>>> scorer = ModelScorer.fresh(seed=7)
>>> scores = scorer.score({"aum_drop_from_peak_30d_pct": 10.0})
>>> scores["churn_risk"].cold, scores["churn_risk"].score
(True, 0.05)
>>> scorer.propensities({}, ["call_back"])["call_back"]
(0.1, True)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from river import anomaly, compose, linear_model, preprocessing

from engine.types import ModelScore
from online_models.batch_scoring import MIN_BATCH, BatchForm, compile_model
from online_models.catalog import ModelCatalog, ModelSpec, build_catalog
from online_models.snapshots import Snapshot, decode_snapshot, encode_snapshot

OFFER_SNAPSHOT = "offer_response"


def model_inputs(names: Iterable[str], features: Mapping[str, Any]) -> dict[str, float]:
    """The numeric inputs of a model; a missing, non-numeric or non-finite feature is 0.0.

    >>> model_inputs(("a", "b", "c", "d"), {"a": 2, "b": None, "d": float("nan")})
    {'a': 2.0, 'b': 0.0, 'c': 0.0, 'd': 0.0}
    """
    x: dict[str, float] = {}
    for name in names:
        value = features.get(name)
        if value.__class__ is float:  # the common case, first
            x[name] = value if value - value == 0.0 else 0.0
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            f = float(value)
            x[name] = f if f - f == 0.0 else 0.0
        else:
            x[name] = 0.0
    return x


@dataclass(slots=True)
class LiveModel:
    """One River model and what it has learned: examples, and the snapshot it came from."""

    spec: ModelSpec
    model: Any
    examples: int = 0
    snapshot: int = 0  # the published snapshot number it was installed from (0: fresh)
    # The batch form of the model (online_models.batch_scoring), for the model and examples
    # it was compiled from; None: not compiled yet, or the model has no batch form.
    _batch: tuple[Any, int, BatchForm | None] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def cold(self) -> bool:
        return self.examples < self.spec.min_examples

    @property
    def version(self) -> str:
        """``<spec version>.<snapshot number>``: the decision record names both."""
        return f"{self.spec.version}.{self.snapshot}"

    def inputs(self, features: Mapping[str, Any]) -> dict[str, float]:
        return model_inputs(self.spec.inputs, features)

    def predict(self, x: Mapping[str, float]) -> float:
        """The model's own answer (even while cold): P(label) or the anomaly score."""
        if self.spec.kind == "classifier":
            value = float(self.model.predict_proba_one(x).get(True, 0.5))
        else:
            value = float(self.model.score_one(x))
        return value if math.isfinite(value) else self.spec.prior

    def score(self, features: Mapping[str, Any]) -> ModelScore:
        """What a decision sees: the prior while cold, else the model's answer."""
        if self.cold:
            return ModelScore(self.spec.name, self.version, self.spec.prior, True)
        return ModelScore(self.spec.name, self.version, self.predict(self.inputs(features)), False)

    def score_many(self, features: Sequence[Mapping[str, Any]]) -> list[ModelScore]:
        """``score`` of each features mapping, in order; the same numbers, batched when the
        model has a batch form (``online_models.batch_scoring``) and the batch is large."""
        name, version = self.spec.name, self.version
        if self.cold:
            cold = ModelScore(name, version, self.spec.prior, True)
            return [cold] * len(features)
        values = self.predict_many([self.inputs(f) for f in features])
        return [ModelScore(name, version, v, False) for v in values]

    def predict_many(self, xs: Sequence[Mapping[str, float]]) -> list[float]:
        """``predict`` of each row, in order: the same numbers, batched when the model has a
        batch form (``online_models.batch_scoring``) and there are ``MIN_BATCH`` rows or more."""
        compiled = self._compiled() if len(xs) >= MIN_BATCH else None
        if compiled is None:
            return [self.predict(x) for x in xs]
        prior = self.spec.prior
        return [v if math.isfinite(v) else prior for v in compiled.score(xs)]

    def _compiled(self) -> BatchForm | None:
        cached = self._batch
        if cached is None or cached[0] is not self.model or cached[1] != self.examples:
            previous = cached[2] if cached is not None and cached[0] is self.model else None
            form = compile_model(self.model, self.spec.inputs, previous)
            cached = self._batch = (self.model, self.examples, form)
        return cached[2]

    def learn(self, x: Mapping[str, float], label: bool | None = None) -> None:
        if self.spec.kind == "classifier":
            self.model.learn_one(x, bool(label))
        else:
            self.model.learn_one(x)
        self.examples += 1


# River estimators whose learning depends only on their state and the example (no clock, no
# unseeded randomness): two equal models that learn the same examples stay equal.
_DETERMINISTIC_STEPS: tuple[type, ...] = (
    preprocessing.StandardScaler,
    preprocessing.MinMaxScaler,
    linear_model.LogisticRegression,
    anomaly.HalfSpaceTrees,
)


def learns_deterministically(model: Any) -> bool:
    """Whether ``model`` (a River estimator or pipeline) is made only of estimators whose
    learning is deterministic, so a copy can follow it by learning the same examples.

    >>> from online_models.catalog import CHALLENGER_BUILDERS, CHURN_RISK
    >>> learns_deterministically(CHURN_RISK.build(7))
    True
    >>> learns_deterministically(CHALLENGER_BUILDERS["arf"](7))  # unseeded Gaussian estimators
    False
    """
    steps = model.steps.values() if isinstance(model, compose.Pipeline) else (model,)
    return all(type(step) in _DETERMINISTIC_STEPS for step in steps)


@dataclass(frozen=True, slots=True)
class Learned:
    """One example a model learned, as the learner learned it (see ``ModelScorer.follow``)."""

    name: str  # a model's name, or ``offer_response`` for the offer model of ``action``
    x: dict[str, float]
    y: bool | None
    action: str | None = None


@dataclass
class ModelScorer:
    """Every catalog model, scored on each decision; offer propensities per action."""

    models: dict[str, LiveModel] = field(default_factory=dict)
    offers: dict[str, LiveModel] = field(default_factory=dict)
    offer_spec: ModelSpec | None = None
    offer_snapshot: int = 0

    @classmethod
    def fresh(cls, seed: int, catalog: ModelCatalog | None = None) -> ModelScorer:
        cat = catalog or build_catalog()
        return cls({s.name: LiveModel(s, s.build(seed)) for s in cat.specs()}, {}, cat.offer_spec())

    def score(self, features: Mapping[str, Any]) -> dict[str, ModelScore]:
        """Champions and shadow challengers; rules can read only the champions."""
        return {name: m.score(features) for name, m in self.models.items()}

    def score_many(self, features: Sequence[Mapping[str, Any]]) -> list[dict[str, ModelScore]]:
        """``score`` of each features mapping of a batch, in order (the models do not change
        within a batch: snapshots are installed between batches)."""
        columns = [m.score_many(features) for m in self.models.values()]
        names = list(self.models)
        return (
            [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]
            if columns
            else [{} for _ in features]
        )

    def propensities(
        self, features: Mapping[str, Any], actions: Iterable[str] | None = None
    ) -> dict[str, tuple[float, bool]]:
        """``{action_id: (propensity, cold)}``: the ``offer_response`` model of each action.

        With ``actions``, every one of them is answered (an action never offered yet gets the
        prior, cold); without, the actions that have a model.
        """
        spec = self.offer_spec
        wanted = list(self.offers) if actions is None else list(actions)
        out: dict[str, tuple[float, bool]] = {}
        x: dict[str, float] | None = None
        for action in wanted:
            live = self.offers.get(action)
            if live is None or live.cold:
                out[action] = (spec.prior if spec else 0.0, True)
                continue
            if x is None:
                x = live.inputs(features)
            out[action] = (live.predict(x), False)
        return out

    def versions(self) -> dict[str, str]:
        return {name: m.version for name, m in self.models.items()}

    def snapshot_numbers(self) -> dict[str, int]:
        """The published snapshot each model (and the offer models) was installed from."""
        out = {name: m.snapshot for name, m in self.models.items()}
        if self.offer_spec is not None:
            out[OFFER_SNAPSHOT] = self.offer_snapshot
        return out

    # -- following a learner in the same process ------------------------------------------

    def follow(self, examples: Iterable[Learned], number: int, seed: int) -> None:
        """Learn ``examples`` in order, then serve as published snapshot ``number``.

        A scorer whose models equal a learner's, and that learns the same examples in the same
        order, ends with the same models, for models that ``learns_deterministically`` (their
        learning depends on the model's state and the example only). Replay hands models over
        this way instead of pickling and unpickling every model at every snapshot. A new offer
        model starts as the learner's does: built with ``seed``.
        """
        for ex in examples:
            if ex.name == OFFER_SNAPSHOT:
                spec = self.offer_spec
                if spec is None or ex.action is None:
                    raise KeyError(ex.name)
                live = self.offers.get(ex.action)
                if live is None:
                    live = self.offers[ex.action] = LiveModel(spec, spec.build(seed))
            else:
                live = self.models[ex.name]
            live.learn(ex.x, ex.y)
        for live in self.models.values():
            live.snapshot = number
        for live in self.offers.values():
            live.snapshot = number
        if self.offer_spec is not None:
            self.offer_snapshot = number

    # -- snapshots -----------------------------------------------------------------------

    def export(self, name: str, created: float = 0.0) -> bytes:
        """The stamped snapshot of one model (or of every offer model, ``offer_response``)."""
        if name == OFFER_SNAPSHOT:
            if self.offer_spec is None:
                raise KeyError(name)
            state = {a: (m.model, m.examples) for a, m in sorted(self.offers.items())}
            examples = sum(m.examples for m in self.offers.values())
            return encode_snapshot(self.offer_spec, state, examples, created)
        live = self.models[name]
        return encode_snapshot(live.spec, live.model, live.examples, created)

    def install(self, name: str, number: int, blob: bytes) -> Snapshot:
        """Replace a model by a published snapshot; ``SnapshotError`` and nothing changes when
        the snapshot is corrupt or was made by another River version or model version."""
        if name == OFFER_SNAPSHOT:
            if self.offer_spec is None:
                raise KeyError(name)
            snap = decode_snapshot(blob, self.offer_spec)
            offers = {
                action: LiveModel(self.offer_spec, model, examples, number)
                for action, (model, examples) in dict(snap.state).items()
            }
            self.offers = offers  # one assignment: a decision sees the old or the new set
            self.offer_snapshot = number
            return snap
        current = self.models[name]
        snap = decode_snapshot(blob, current.spec)
        self.models[name] = LiveModel(current.spec, snap.state, snap.header.examples, number)
        return snap
