"""The feature catalog: validated at start-up, documented, and tolerant of missing fields."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.ports import StoreLimits
from engine.types import StateUpdate
from features.definitions import (
    FEATURES,
    METRICS,
    WINDOWS,
    FeatureDef,
    Metric,
    Window,
    compile_catalog,
    feature_docs,
    feature_names,
    ops_for_dict,
)
from features.memory_store import MemoryStateStore

DOC = Path(__file__).resolve().parents[2] / "docs" / "features.md"


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        (FeatureDef("x_7d", "median", ("outflow",), "7d", "?"), "unknown aggregation 'median'"),
        (FeatureDef("x_2w", "sum", ("outflow",), "2w", "?"), "unknown window '2w'"),
        (FeatureDef("x_7d", "sum", ("outgo",), "7d", "?"), "unknown field 'outgo'"),
        (FeatureDef("x", "ratio", ("outflow_7d", "nope"), None, "?"), "unknown field 'nope'"),
        (FeatureDef("x_1h", "max", ("aum_max",), "1h", "?"), "kept by day"),
        (FeatureDef("x_7d", "max", ("outflow",), "7d", "?"), "does not fit metric 'outflow'"),
    ],
)
def test_a_bad_feature_definition_fails_naming_it(bad: FeatureDef, named: str) -> None:
    with pytest.raises(ConfigError) as err:
        compile_catalog(METRICS, WINDOWS, [*FEATURES, bad])
    assert named in str(err.value)
    assert repr(bad.name) in str(err.value)


def test_bad_metrics_and_windows_fail_naming_them() -> None:
    with pytest.raises(ConfigError, match=r"metric 'm'.*aggregation 'avg'"):
        compile_catalog([*METRICS, Metric("m", "avg", "h", False, "?")], WINDOWS, [])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="window '48h'"):
        compile_catalog(METRICS, [*WINDOWS, Window("48h", "h", 48)], [])


def test_the_shipped_catalog_compiles_and_keeps_every_name_rules_use() -> None:
    names = set(feature_names())
    for used in (
        "aum",
        "tier",
        "aum_peak_30d",
        "aum_drop_from_peak_30d_pct",
        "aum_change_vs_7d_pct",
        "transfer_out_other_bank_share_7d",
        "salary_count_35d",
        "login_count_7d_vs_prev4w",
        "closure_page_views_30d",
        "session_count_7d",
        "days_since_last_login",
    ):
        assert used in names


def test_the_doc_lists_every_feature() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [name for name in feature_names() if f"`{name}`" not in text]
    assert missing == []
    assert len(feature_docs()) == len(feature_names())


async def test_a_posting_without_balance_after_updates_what_it_can() -> None:
    store = MemoryStateStore(StoreLimits())
    ev = {"type": "transaction", "amount": 120.0, "direction": "debit", "kind": "purchase"}
    ev["account_id"] = "a1"
    profile = {"type": "profile", "aum": 1000.0}
    t0 = 1_767_225_600.0
    states = await store.apply(
        [
            StateUpdate("c1", "p", t0, ops_for_dict(profile)),
            StateUpdate("c1", "t", t0 + 60, ops_for_dict(ev)),
        ],
        wall=0.0,
    )
    feats = states[-1].features
    assert feats["outflow_1h"] == 120.0 and feats["tx_count_24h"] == 1.0
    assert feats["aum"] == 880.0  # moved by the signed amount
    assert feats["days_since_last_tx"] == 0.0
