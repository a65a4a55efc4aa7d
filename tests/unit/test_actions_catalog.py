"""The action catalog: format, eligibility conditions, templates, experiments; bad files refused."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from actions.catalog import DEFAULT_CATALOG, load_catalog, parse_catalog
from engine.config import PolicySettings, Settings
from engine.errors import CatalogError
from engine.events import CHANNELS


def doc() -> dict[str, Any]:
    """A small valid catalog document."""
    return {
        "version": 2,
        "templates": [
            {"id": "t_call", "channels": ["rm_call"], "text": "call script"},
            {"id": "t_digital", "channels": ["sms", "push"], "text": "offer"},
        ],
        "actions": [
            {
                "id": "call",
                "description": "a call",
                "goal": "retain",
                "channels": ["rm_call"],
                "answers": ["churn_risk"],
                "tiers": ["basic", "affluent"],
                "value": 1000,
                "cost": 50,
                "propensity": 0.2,
                "template_id": "t_call",
            },
            {
                "id": "offer",
                "description": "an offer",
                "goal": "grow_assets",
                "channels": ["sms", "push"],
                "answers": ["churn_risk", "asset_drop"],
                "eligible_when": "wealth_buy_90d > 0",
                "value": 200,
                "propensity": 0.05,
                "template_id": "t_digital",
            },
        ],
        "experiments": [
            {
                "id": "exp",
                "description": "an experiment",
                "variants": [
                    {"id": "control", "weight": 1, "control": True},
                    {"id": "digital", "weight": 1, "actions": ["offer"]},
                ],
            }
        ],
    }


def parse(d: dict[str, Any]) -> Any:
    return parse_catalog(d, source="cat.yaml", version="v", models=["churn_risk"])


def test_the_shipped_catalog_loads_with_templates_conditions_and_an_experiment() -> None:
    catalog = load_catalog(DEFAULT_CATALOG)
    assert len(catalog.actions) >= 10
    assert {c for a in catalog.actions for c in a.channels} == set(CHANNELS)
    assert all(a.template_id in catalog.templates for a in catalog.actions)
    assert catalog.conditions  # holdings conditions are compiled
    assert [e.id for e in catalog.experiments] == ["retention_offer_2026"]
    assert len(catalog.version) == 12


def test_the_version_is_the_hash_of_the_file(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(yaml.safe_dump(doc()))
    changed = doc()
    changed["actions"][0]["value"] = 1001
    b.write_text(yaml.safe_dump(changed))
    assert load_catalog(a).version == load_catalog(a).version
    assert load_catalog(a).version != load_catalog(b).version


def test_an_eligibility_condition_reads_features_and_consent() -> None:
    catalog = parse(doc())
    cond = catalog.conditions["offer"]
    assert cond.evaluate({"wealth_buy_90d": 10.0}) is True
    assert cond.evaluate({"wealth_buy_90d": 0.0}) is False
    assert "call" not in catalog.conditions
    assert [a.id for a in catalog.answering("asset_drop")] == ["offer"]


def refused(d: dict[str, Any]) -> str:
    with pytest.raises(CatalogError) as err:
        parse(d)
    return str(err.value)


def test_an_unknown_channel_is_refused_naming_the_action_and_the_channel() -> None:
    d = doc()
    d["actions"][0]["channels"] = ["fax"]
    message = refused(d)
    assert "action 'call'" in message and "'fax'" in message and "channels" in message


def test_a_missing_template_is_refused_naming_it() -> None:
    d = doc()
    d["actions"][1]["template_id"] = "t_nowhere"
    message = refused(d)
    assert "action 'offer'" in message and "'t_nowhere'" in message and "not declared" in message


def test_a_template_not_written_for_the_channel_is_refused() -> None:
    d = doc()
    d["actions"][1]["channels"] = ["sms", "email"]
    message = refused(d)
    assert "'t_digital'" in message and "email" in message


def test_an_eligibility_condition_outside_the_language_is_refused() -> None:
    d = doc()
    d["actions"][1]["eligible_when"] = "holdings_of_gold > 0"
    message = refused(d)
    assert "action 'offer'" in message and "eligible_when" in message
    d["actions"][1]["eligible_when"] = "__import__('os')"
    assert "action 'offer'" in refused(d)


@pytest.mark.parametrize(
    ("path", "value", "needle"),
    [
        (("actions", 0, "goal"), "delight", "unknown goal 'delight'"),
        (("actions", 0, "tiers"), ["platinum"], "platinum"),
        (("actions", 0, "answers"), ["fraud"], "fraud"),
        (("actions", 0, "propensity"), 1.5, "propensity"),
        (("actions", 0, "colour"), "red", "colour"),
        (("templates", 0, "channels"), ["pigeon"], "pigeon"),
    ],
)
def test_bad_fields_are_refused_naming_the_entry(
    path: tuple[Any, ...], value: Any, needle: str
) -> None:
    d = copy.deepcopy(doc())
    target: Any = d
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    message = refused(d)
    assert needle in message
    assert f"{path[0][:-1]} " in message  # "action 'call'" or "template 't_call'"


def test_duplicate_ids_are_refused() -> None:
    d = doc()
    d["actions"].append(dict(d["actions"][0]))
    assert "duplicate action id(s) ['call']" in refused(d)


def test_experiments_need_one_control_and_known_actions() -> None:
    d = doc()
    d["experiments"][0]["variants"][0]["control"] = False
    assert "control" in refused(d)
    d = doc()
    d["experiments"][0]["variants"][1]["actions"] = ["teleport"]
    assert "experiment 'exp'" in refused(d) and "teleport" in refused(d)
    d = doc()
    d["experiments"][0]["start"] = "2026-02-01T00:00:00+08:00"
    d["experiments"][0]["end"] = "2026-01-01T00:00:00+08:00"
    assert "end is not after start" in refused(d)


def test_an_unreadable_or_malformed_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot read"):
        load_catalog(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("actions: [unclosed")
    with pytest.raises(CatalogError, match="not valid YAML"):
        load_catalog(bad)


def test_an_unknown_time_zone_in_the_policy_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ValidationError, match="unknown IANA time zone 'Mars/Olympus'"):
        PolicySettings(default_timezone="Mars/Olympus")
    monkeypatch.setenv("VIGIL_POLICY__DEFAULT_TIMEZONE", "Atlantis/Capital")
    with pytest.raises(ValidationError, match="Atlantis/Capital"):
        Settings()


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("channel_caps", {"fax": "1/7d"}, "fax"),
        ("channel_caps", {"sms": "twice a week"}, "twice a week"),
        ("quiet_hours_channels", ("sms", "telegram"), "telegram"),
        ("daily_capacity", {"rm_call": -1}, "negative"),
        ("offline_rm_tiers", ("gold",), "gold"),
    ],
)
def test_bad_policy_settings_are_refused_naming_them(field: str, value: Any, needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        PolicySettings.model_validate({field: value})


def test_lead_thresholds_must_be_ordered() -> None:
    with pytest.raises(ValidationError, match="lead_mid_threshold"):
        PolicySettings(lead_high_threshold=0.4, lead_mid_threshold=0.6)
