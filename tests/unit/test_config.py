"""Settings: env vars, frozen, and README agreement (every setting documented with its default)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from engine.config import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def env_names(model: type[BaseModel], prefix: str = "VIGIL_") -> Iterator[str]:
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from env_names(annotation, f"{prefix}{name.upper()}__")
        else:
            yield f"{prefix}{name.upper()}"


def test_every_setting_is_documented_in_the_readme() -> None:
    documented = set(re.findall(r"\| `(VIGIL_[A-Z0-9_]+)` \|", README.read_text()))
    assert set(env_names(Settings)) == documented


def test_env_vars_override_nested_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_KAFKA__TOPIC_PREFIX", "bank1.")
    monkeypatch.setenv("VIGIL_WORKER__BATCH_MAX", "17")
    s = Settings()
    assert s.kafka.topic("alerts") == "bank1.alerts"
    assert s.kafka.input_topics[0] == "bank1.events.transactions"
    assert s.worker.batch_max == 17


def test_settings_are_frozen_and_reject_unknown_and_bad_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = Settings()
    with pytest.raises(ValidationError):
        s.model_validate({"kafka": {"partitions": 0}})
    with pytest.raises(ValidationError):
        Settings.model_validate({"nonsense": 1})
    with pytest.raises((ValidationError, TypeError)):
        s.log_level = "DEBUG"  # type: ignore[misc]


def test_secrets_are_not_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_REDIS__PASSWORD", "hunter2")
    s = Settings()
    assert "hunter2" not in repr(s) and "hunter2" not in str(s.model_dump())
    assert s.redis.password is not None and s.redis.password.get_secret_value() == "hunter2"
