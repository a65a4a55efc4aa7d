"""Building the pipeline from settings: the one place real adapters are chosen.

(Not pure: it imports the Redis adapter. Drivers call ``build_pipeline`` with their sink.)
"""

from __future__ import annotations

from actions.catalog import load_catalog
from engine.clock import Clock, WallClock
from engine.config import Settings
from engine.metrics import PrometheusMetrics
from engine.pipeline import DecisionPipeline
from engine.ports import OutputSink, PipelineMetrics, StateStore, StoreLimits
from features.redis_store import RedisStateStore
from online_models.catalog import build_catalog, model_names
from online_models.scorer import ModelScorer
from online_models.settings import model_settings
from rules.reload import RuleSetHolder


def store_limits(settings: Settings) -> StoreLimits:
    w = settings.worker
    return StoreLimits(
        dedup_horizon=float(w.dedup_horizon_seconds),
        allowed_lateness=float(w.allowed_lateness_seconds),
        ttl=w.state_ttl_seconds,
        result_retention=float(w.redelivery_result_seconds),
    )


def redis_store(settings: Settings) -> RedisStateStore:
    password = settings.redis.password.get_secret_value() if settings.redis.password else None
    return RedisStateStore.from_url(
        settings.redis.url, store_limits(settings), settings.redis.key_prefix, password
    )


def default_scorer(settings: Settings) -> ModelScorer:
    ms = model_settings(settings)
    return ModelScorer.fresh(settings.model_seed, build_catalog(ms.challenger, ms.min_examples))


def build_pipeline(
    settings: Settings,
    sink: OutputSink,
    store: StateStore | None = None,
    clock: Clock | None = None,
    rules: RuleSetHolder | None = None,
    scorer: ModelScorer | None = None,
    metrics: PipelineMetrics | None = None,
) -> tuple[DecisionPipeline, RuleSetHolder]:
    """``scorer``: by default fresh models with the configured challenger (the worker then
    installs the latest snapshots). ``metrics``: Prometheus by default; replay passes
    ``NoMetrics``."""
    holder = rules or RuleSetHolder(settings.rules_dir, model_names())
    pipeline = DecisionPipeline(
        store=store or redis_store(settings),
        sink=sink,
        scorer=scorer or default_scorer(settings),
        rules=holder,
        catalog=load_catalog(settings.actions_catalog),
        settings=settings,
        clock=clock or WallClock(),
        metrics=PrometheusMetrics() if metrics is None else metrics,
    )
    return pipeline, holder
