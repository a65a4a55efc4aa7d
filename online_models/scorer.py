"""Scoring every decision with every model: plain dicts in, scores out.

>>> scorer = ModelScorer.fresh(seed=7)
>>> scores = scorer.score({"aum_drop_from_peak_30d_pct": 10.0})
>>> scores["churn_risk"].cold, scores["churn_risk"].score
(True, 0.05)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.types import ModelScore
from online_models.catalog import CATALOG, ModelSpec


@dataclass
class LiveModel:
    spec: ModelSpec
    model: Any
    examples: int = 0

    @property
    def cold(self) -> bool:
        return self.examples < self.spec.min_examples

    def inputs(self, features: Mapping[str, Any]) -> dict[str, float]:
        x = {}
        for name in self.spec.inputs:
            value = features.get(name, 0.0)
            x[name] = float(value) if isinstance(value, (int, float)) else 0.0
        return x

    def score(self, features: Mapping[str, Any]) -> ModelScore:
        if self.cold:
            return ModelScore(self.spec.name, self.spec.version, self.spec.prior, True)
        x = self.inputs(features)
        if self.spec.kind == "classifier":
            value = float(self.model.predict_proba_one(x).get(True, self.spec.prior))
        else:
            value = float(self.model.score_one(x))
        if not math.isfinite(value):
            value = self.spec.prior
        return ModelScore(self.spec.name, self.spec.version, value, False)

    def learn(self, features: Mapping[str, Any], label: bool | None = None) -> None:
        x = self.inputs(features)
        if self.spec.kind == "classifier":
            self.model.learn_one(x, bool(label))
        else:
            self.model.learn_one(x)
        self.examples += 1


@dataclass
class ModelScorer:
    """Every catalog model, scored on each decision."""

    models: dict[str, LiveModel] = field(default_factory=dict)

    @classmethod
    def fresh(cls, seed: int) -> ModelScorer:
        return cls({s.name: LiveModel(s, s.build(seed)) for s in CATALOG})

    def score(self, features: Mapping[str, Any]) -> dict[str, ModelScore]:
        return {name: m.score(features) for name, m in self.models.items()}

    def versions(self) -> dict[str, str]:
        return {name: m.spec.version for name, m in self.models.items()}
