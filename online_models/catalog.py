"""The model registry: named River pipelines, each with a version, its inputs and a cold prior.

A model that has learned from fewer than ``min_examples`` labelled examples is *cold*: it returns
its documented ``prior`` instead of its own prediction, and the decision says ``cold``.

- ``churn_risk`` (classifier): probability that the customer's ``churned`` outcome follows
  within the label horizon; prior 0.05 until 200 labelled examples.
- ``asset_drop`` (anomaly): how unusual the flows and balance moves are, 0..1; learns without
  labels from one snapshot per customer and day; prior 0.0 until 500 examples.
- ``offer_response`` (classifier, one per action): probability that an offer of that action is
  accepted; prior 0.1 until 30 responses to that action.
- a challenger (``arf`` or ``hoeffding``) may shadow each classifier champion as
  ``<champion>_challenger``: scored and recorded, never readable by rules.

>>> [s.name for s in CATALOG]
['churn_risk', 'asset_drop']
>>> build_catalog(challenger="arf").names()
('churn_risk', 'asset_drop', 'churn_risk_challenger')
>>> len(CATALOG[0].version)
10
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Literal

from river import anomaly, compose, forest, linear_model, optim, preprocessing, tree

CHURN_INPUTS: tuple[str, ...] = (
    "aum_drop_from_peak_30d_pct",
    "aum_change_vs_7d_pct",
    "transfer_out_other_bank_share_7d",
    "transfer_out_other_bank_share_30d",
    "transfer_out_other_bank_count_30d",
    "salary_count_35d",
    "tx_count_7d_vs_prev4w",
    "login_count_7d_vs_prev4w",
    "closure_page_views_30d",
    "sensitive_page_views_7d",
    "complaint_count_90d",
    "days_since_last_login",
    "days_since_last_tx",
    "net_flow_30d",
)
ASSET_DROP_INPUTS: tuple[str, ...] = (
    "aum_drop_from_peak_30d_pct",
    "aum_change_vs_7d_pct",
    "outflow_24h",
    "outflow_7d",
    "transfer_out_other_bank_share_7d",
    "net_flow_7d",
)
# Offer inputs come from the features every decision record carries (the models' inputs and
# "aum"), so the learner can rebuild them from the record alone.
OFFER_INPUTS: tuple[str, ...] = (
    "aum",
    "aum_change_vs_7d_pct",
    "net_flow_30d",
    "salary_count_35d",
    "tx_count_7d_vs_prev4w",
    "login_count_7d_vs_prev4w",
    "days_since_last_login",
    "complaint_count_90d",
)

Kind = Literal["classifier", "anomaly"]


@dataclass(frozen=True)
class ModelSpec:
    """One named model: what it reads, how it is built, what it says while cold.

    ``label`` is the outcome it predicts: a classifier learns from it (joined to the snapshot
    taken before it, within the horizon); an anomaly detector learns without labels and is only
    judged against it (health).
    """

    name: str
    kind: Kind
    inputs: tuple[str, ...]
    build: Callable[[int], Any]
    prior: float
    min_examples: int
    description: str
    label: str | None = None

    @cached_property
    def version(self) -> str:
        """Name, inputs and construction: a snapshot of another version is refused."""
        text = f"{self.name}|{self.kind}|{','.join(self.inputs)}|{self.build.__doc__}"
        return hashlib.sha256(text.encode()).hexdigest()[:10]


def _churn_model(seed: int) -> Any:
    """StandardScaler | LogisticRegression(SGD lr=0.005)"""
    return preprocessing.StandardScaler() | linear_model.LogisticRegression(
        optimizer=optim.SGD(0.005)
    )


def _asset_drop_model(seed: int) -> Any:
    """MinMaxScaler | HalfSpaceTrees(n_trees=10, height=8, window_size=250)"""
    return compose.Pipeline(
        preprocessing.MinMaxScaler(),
        anomaly.HalfSpaceTrees(n_trees=10, height=8, window_size=250, seed=seed),
    )


def _offer_model(seed: int) -> Any:
    """StandardScaler | LogisticRegression(SGD lr=0.01)"""
    return preprocessing.StandardScaler() | linear_model.LogisticRegression(
        optimizer=optim.SGD(0.01)
    )


def _arf(seed: int) -> Any:
    """ARFClassifier(n_models=10, seed)"""
    return forest.ARFClassifier(n_models=10, seed=seed)


def _hoeffding(seed: int) -> Any:
    """HoeffdingAdaptiveTreeClassifier(seed)"""
    return tree.HoeffdingAdaptiveTreeClassifier(seed=seed)


CHALLENGER_BUILDERS: Mapping[str, Callable[[int], Any]] = {"arf": _arf, "hoeffding": _hoeffding}

CHURN_RISK = ModelSpec(
    name="churn_risk",
    kind="classifier",
    inputs=CHURN_INPUTS,
    build=_churn_model,
    prior=0.05,
    min_examples=200,
    description="Probability that the customer leaves within the label horizon.",
    label="churned",
)
ASSET_DROP = ModelSpec(
    name="asset_drop",
    kind="anomaly",
    inputs=ASSET_DROP_INPUTS,
    build=_asset_drop_model,
    prior=0.0,
    min_examples=500,
    description="How unusual the customer's flows and balance moves are (0..1).",
    label="asset_drop",
)
OFFER_RESPONSE = ModelSpec(
    name="offer_response",
    kind="classifier",
    inputs=OFFER_INPUTS,
    build=_offer_model,
    prior=0.1,
    min_examples=30,
    description="Per action: probability that the customer accepts the offer.",
    label="offer_accepted",
)

# The champions every decision is scored with; rules read score_<name> and cold_<name>.
CATALOG: tuple[ModelSpec, ...] = (CHURN_RISK, ASSET_DROP)


def model_names() -> tuple[str, ...]:
    """The models rules may read (champions only: challengers are shadow)."""
    return tuple(spec.name for spec in CATALOG)


def challenger_spec(champion: ModelSpec, kind: str) -> ModelSpec:
    """A shadow challenger of a classifier champion: same inputs, prior and label."""
    if kind not in CHALLENGER_BUILDERS:
        raise ValueError(f"unknown challenger {kind!r}; known: {sorted(CHALLENGER_BUILDERS)}")
    return replace(
        champion,
        name=f"{champion.name}_challenger",
        build=CHALLENGER_BUILDERS[kind],
        description=f"Shadow challenger ({kind}) of {champion.name}.",
    )


@dataclass(frozen=True)
class ModelCatalog:
    """The champions, their shadow challengers and the per-action offer model, as one value.

    The default is the shipped catalog; tests and benchmarks build their own (e.g. one
    classifier over the Phishing dataset's features).
    """

    champions: tuple[ModelSpec, ...] = CATALOG
    challengers: tuple[ModelSpec, ...] = ()
    offer: ModelSpec | None = OFFER_RESPONSE
    min_examples: Mapping[str, int] = field(default_factory=dict)

    def specs(self) -> tuple[ModelSpec, ...]:
        """Champions then challengers, with any ``min_examples`` override applied."""
        return tuple(self._tuned(s) for s in self.champions + self.challengers)

    def offer_spec(self) -> ModelSpec | None:
        return self._tuned(self.offer) if self.offer is not None else None

    def _tuned(self, spec: ModelSpec) -> ModelSpec:
        n = self.min_examples.get(spec.name)
        return spec if n is None else replace(spec, min_examples=n)

    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.champions + self.challengers)

    def inputs(self) -> tuple[str, ...]:
        """Every input any model reads, in a stable order (what a feature snapshot keeps)."""
        seen: dict[str, None] = {}
        for spec in self.specs() + ((self.offer,) if self.offer else ()):
            seen.update(dict.fromkeys(spec.inputs))
        return tuple(seen)


def build_catalog(
    challenger: str | None = None, min_examples: Mapping[str, int] | None = None
) -> ModelCatalog:
    """The shipped catalog, with a challenger beside each classifier champion if asked."""
    challengers = (
        tuple(challenger_spec(s, challenger) for s in CATALOG if s.kind == "classifier")
        if challenger
        else ()
    )
    return ModelCatalog(CATALOG, challengers, OFFER_RESPONSE, dict(min_examples or {}))
