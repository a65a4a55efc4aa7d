"""The model registry: versions, challengers, settings, the inputs decision records carry."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pydantic import ValidationError

from engine.config import Settings
from engine.sinks import MemorySink
from engine.wiring import build_pipeline, store_limits
from features.definitions import feature_names
from features.memory_store import MemoryStateStore
from online_models.catalog import CATALOG, CHURN_RISK, build_catalog, challenger_spec
from online_models.settings import ModelSettings, model_settings


def test_every_model_input_is_in_every_decision_record() -> None:
    """The learner rebuilds each model's inputs from the decision record's features alone."""
    settings = Settings()
    pipeline, _ = build_pipeline(
        settings, MemorySink(), store=MemoryStateStore(store_limits(settings))
    )
    audit = set(pipeline.context().audit_features)
    catalog = build_catalog(challenger="arf")
    assert set(catalog.inputs()) <= audit
    assert set(catalog.inputs()) <= set(feature_names())


def test_a_version_changes_with_inputs_or_construction_only() -> None:
    assert CHURN_RISK.version == replace(CHURN_RISK, prior=0.5, min_examples=1).version
    assert CHURN_RISK.version != replace(CHURN_RISK, inputs=CHURN_RISK.inputs[:-1]).version
    arf = challenger_spec(CHURN_RISK, "arf")
    assert arf.name == "churn_risk_challenger" and arf.version != CHURN_RISK.version
    assert len({s.version for s in CATALOG}) == len(CATALOG)


def test_challengers_shadow_classifiers_only() -> None:
    catalog = build_catalog(challenger="hoeffding")
    assert [s.name for s in catalog.challengers] == ["churn_risk_challenger"]
    with pytest.raises(ValueError, match="unknown challenger"):
        challenger_spec(CHURN_RISK, "gpt")


def test_min_examples_can_be_tuned_per_model() -> None:
    catalog = build_catalog(min_examples={"churn_risk": 3, "offer_response": 1})
    specs = {s.name: s for s in catalog.specs()}
    assert specs["churn_risk"].min_examples == 3 and specs["asset_drop"].min_examples == 500
    offer = catalog.offer_spec()
    assert offer is not None and offer.min_examples == 1


def test_model_settings_are_checked_and_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ValidationError, match="positive_window_days"):
        ModelSettings(horizon_days=10, positive_window_days=14)
    with pytest.raises(ValidationError):
        ModelSettings(challenger="gpt")  # type: ignore[arg-type]
    from online_models import settings as module

    module._from_env.cache_clear()
    monkeypatch.setenv("VIGIL_MODELS__HORIZON_DAYS", "21")
    monkeypatch.setenv("VIGIL_MODELS__MIN_EXAMPLES", '{"churn_risk": 5}')
    try:
        ms = model_settings(Settings())
        assert ms.horizon_days == 21 and ms.min_examples == {"churn_risk": 5}
    finally:
        module._from_env.cache_clear()
