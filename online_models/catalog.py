"""The model registry: named River pipelines, each with a version, its inputs and a cold prior.

A model that has learned from fewer than ``min_examples`` labelled examples is *cold*: it returns
its documented ``prior`` instead of its own prediction, and the decision says ``cold``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from river import anomaly, compose, linear_model, optim, preprocessing

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


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: Literal["classifier", "anomaly"]
    inputs: tuple[str, ...]
    build: Callable[[int], Any]
    prior: float
    min_examples: int
    description: str

    @property
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


CATALOG: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="churn_risk",
        kind="classifier",
        inputs=CHURN_INPUTS,
        build=_churn_model,
        prior=0.05,
        min_examples=200,
        description="Probability that the customer leaves within the label horizon.",
    ),
    ModelSpec(
        name="asset_drop",
        kind="anomaly",
        inputs=ASSET_DROP_INPUTS,
        build=_asset_drop_model,
        prior=0.0,
        min_examples=500,
        description="How unusual the customer's flows and balance moves are (0..1).",
    ),
)


def model_names() -> tuple[str, ...]:
    return tuple(spec.name for spec in CATALOG)
