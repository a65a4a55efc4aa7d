"""The online models' settings: label horizons, snapshot cadence, challengers.

``ModelSettings`` is meant to sit in ``engine.config.Settings`` as ``models`` (environment
variables ``VIGIL_MODELS__HORIZON_DAYS`` and so on). ``model_settings(settings)`` returns it; until
the field exists it reads the same ``VIGIL_MODELS__*`` variables itself, once.

>>> ModelSettings().horizon_seconds
2592000.0
>>> ModelSettings(challenger="arf").challenger
'arf'
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DAY = 86400.0
ChallengerKind = Literal["arf", "hoeffding"]


class ModelSettings(BaseModel):
    """How the models learn, publish and are served."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # A churn-model snapshot is negative when this many days of event time pass without a
    # "churned" outcome (or when "retained" comes first).
    horizon_days: float = Field(default=30.0, gt=0, le=365)
    # A "churned" outcome labels positive the snapshots of this many days before it; older ones
    # inside the horizon are left out (their customer did leave, but showed nothing yet: see
    # docs/models.md). Equal to horizon_days: every snapshot inside the horizon is positive.
    positive_window_days: float = Field(default=14.0, gt=0, le=365)
    # The asset_drop score is judged (health only) against an "asset_drop" outcome this soon.
    asset_drop_horizon_days: float = Field(default=3.0, gt=0, le=365)
    # An offer response without a decision_id joins the customer's latest offer this recent.
    offer_horizon_days: float = Field(default=14.0, gt=0, le=365)
    # Event-time slack before the learner's watermark passes a horizon (late events).
    lateness_seconds: float = Field(default=3600.0, ge=0)
    # The learner publishes a snapshot of every model this often (wall clock): at most this much
    # learning is lost when the learner dies without a graceful stop.
    snapshot_seconds: float = Field(default=60.0, gt=0)
    # Workers look for a newer snapshot this often (one small Redis read).
    poll_seconds: float = Field(default=2.0, gt=0)
    # A shadow challenger beside each classifier champion (scored and recorded, never used by
    # rules). ARF costs about 0.5 ms per event: opt in.
    challenger: ChallengerKind | None = None
    # Per-model overrides of the examples a model needs before it leaves its cold prior.
    min_examples: dict[str, int] = Field(default_factory=dict)
    # Rolling window of the health metrics (ROC AUC, log loss), in labelled examples.
    health_window: int = Field(default=2000, ge=10)
    # ADWIN's confidence on the error stream: smaller, fewer (and surer) drift alarms.
    drift_delta: float = Field(default=0.002, gt=0, lt=1)
    # The learner's own Kafka consumer group is the workers' group with this suffix.
    learner_group_suffix: str = "-learner"
    learner_batch_max: int = Field(default=500, ge=1)
    learner_batch_within_seconds: float = Field(default=0.2, gt=0)
    # Prometheus /metrics of the learner process; 0 turns it off.
    learner_metrics_port: int = Field(default=9109, ge=0, le=65535)
    # The learner holds a lease in Redis this long, renewed every third of it: a second learner
    # stands by until the first stops (at once) or dies (within this time).
    learner_lease_seconds: float = Field(default=30.0, ge=1, le=3600)

    @model_validator(mode="after")
    def _offer_within_horizon(self) -> ModelSettings:
        if self.offer_horizon_days > self.horizon_days:
            raise ValueError("offer_horizon_days must not exceed horizon_days")
        if self.positive_window_days > self.horizon_days:
            raise ValueError("positive_window_days must not exceed horizon_days")
        if self.asset_drop_horizon_days > self.horizon_days:
            raise ValueError("asset_drop_horizon_days must not exceed horizon_days")
        return self

    @property
    def horizon_seconds(self) -> float:
        return self.horizon_days * DAY

    @property
    def positive_window_seconds(self) -> float:
        return self.positive_window_days * DAY

    @property
    def offer_horizon_seconds(self) -> float:
        return self.offer_horizon_days * DAY

    @property
    def asset_drop_horizon_seconds(self) -> float:
        return self.asset_drop_horizon_days * DAY


class _ModelEnv(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="VIGIL_", env_nested_delimiter="__", extra="ignore"
    )

    models: ModelSettings = ModelSettings()


@lru_cache(maxsize=1)
def _from_env() -> ModelSettings:
    return _ModelEnv().models


def model_settings(settings: Any) -> ModelSettings:
    """``settings.models`` when ``Settings`` has it, else the ``VIGIL_MODELS__*`` environment."""
    found = getattr(settings, "models", None)
    return found if isinstance(found, ModelSettings) else _from_env()
