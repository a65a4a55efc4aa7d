"""Models scored a batch at once give exactly River's per-event answers."""

from __future__ import annotations

import math
import random

import pytest
from river import anomaly, compose, preprocessing

from online_models.batch_scoring import (
    MIN_BATCH,
    CompiledHalfSpaceTrees,
    FirstWindow,
    compile_model,
)
from online_models.catalog import ASSET_DROP, ASSET_DROP_INPUTS, CHALLENGER_BUILDERS, CHURN_RISK
from online_models.scorer import LiveModel, ModelScorer

INPUTS = ASSET_DROP_INPUTS


def row(rng: random.Random, spread: float = 1.0) -> dict[str, float]:
    return {name: rng.gauss(0.0, 100.0 * spread) for name in INPUTS}


def trained(examples: int, seed: int = 3) -> LiveModel:
    rng = random.Random(seed)
    live = LiveModel(ASSET_DROP, ASSET_DROP.build(seed))
    for _ in range(examples):
        x = row(rng)
        x["net_flow_7d"] = 5.0  # a constant input: its range is nil, it scales to 0.0
        live.learn(x)
    return live


def river_scores(live: LiveModel, rows: list[dict[str, float]]) -> list[float]:
    return [float(live.model.score_one(x)) for x in rows]


@pytest.mark.parametrize("examples", [260, 1000, 2600])
def test_batch_scores_equal_rivers_exactly(examples: int) -> None:
    live = trained(examples)
    rng = random.Random(examples)
    rows = [row(rng, spread) for spread in (0.01, 1.0, 3.0) for _ in range(300)]
    compiled = compile_model(live.model, INPUTS)
    assert isinstance(compiled, CompiledHalfSpaceTrees)
    ours = compiled.score(rows)
    assert ours == river_scores(live, rows)  # exact, not approximately
    assert len(set(ours)) > 50  # the rows reach different parts of the trees


def test_values_on_a_threshold_nan_and_infinity_go_where_river_sends_them() -> None:
    live = trained(1000)
    compiled = compile_model(live.model, INPUTS)
    assert isinstance(compiled, CompiledHalfSpaceTrees)
    scaler = live.model.steps["MinMaxScaler"]
    root = live.model.steps["HalfSpaceTrees"].trees[0]
    # an input whose scaled value is exactly the root's threshold (then nudged both ways)
    name = root.feature
    lo, hi = scaler.min[name].get(), scaler.max[name].get()
    rows = []
    for delta in (0.0, 1e-9, -1e-9):
        r = dict.fromkeys(INPUTS, 0.0)
        r[name] = root.threshold * (hi - lo) + lo + delta
        rows.append(r)
    rows.append(dict.fromkeys(INPUTS, math.nan))
    rows.append(dict.fromkeys(INPUTS, math.inf))
    rows.append(dict.fromkeys(INPUTS, -math.inf))
    assert compiled.score(rows) == river_scores(live, rows)


def test_the_first_window_scores_zero_as_river_does() -> None:
    live = trained(100)  # window_size 250: not complete yet
    compiled = compile_model(live.model, INPUTS)
    assert isinstance(compiled, FirstWindow)
    rows = [row(random.Random(1)) for _ in range(3)]
    assert compiled.score(rows) == river_scores(live, rows) == [0.0, 0.0, 0.0]


def test_another_river_release_is_scored_by_river(monkeypatch: pytest.MonkeyPatch) -> None:
    live = trained(1000)
    monkeypatch.setattr("online_models.batch_scoring.RIVER_VERSION", "0.27.0")
    assert compile_model(live.model, INPUTS) is None


def test_other_models_have_no_batch_form() -> None:
    for build in CHALLENGER_BUILDERS.values():
        assert compile_model(build(7), CHURN_RISK.inputs) is None
    live = trained(1000)
    assert compile_model(live.model, INPUTS[:-1]) is None  # a tree splits on another input
    bare = anomaly.HalfSpaceTrees(n_trees=2, height=3, window_size=10, seed=1)
    assert compile_model(bare, INPUTS) is None
    other = compose.Pipeline(preprocessing.StandardScaler(), anomaly.HalfSpaceTrees(seed=1))
    assert compile_model(other, INPUTS) is None
    untrained = ASSET_DROP.build(7)
    untrained.steps["HalfSpaceTrees"]._first_window = False  # no statistics, no trees
    assert compile_model(untrained, INPUTS) is None


def test_live_model_score_many_is_score_of_each_batched_or_not() -> None:
    live = LiveModel(ASSET_DROP, trained(1000).model, examples=1000)
    rng = random.Random(9)
    features = [{**row(rng), "tier": "mass"} for _ in range(MIN_BATCH + 5)]
    one_by_one = [live.score(f) for f in features]
    assert live.score_many(features) == one_by_one  # batched
    assert live._batch is not None and isinstance(live._batch[2], CompiledHalfSpaceTrees)
    assert live.score_many(features[:3]) == one_by_one[:3]  # too small: event by event
    # learning invalidates the compiled copy
    first = live._batch
    for f in features[:300]:
        live.learn(live.inputs(f))
    after = [live.score(f) for f in features]
    assert after != one_by_one
    assert live.score_many(features) == after
    assert live._batch is not first and isinstance(live._batch[2], CompiledHalfSpaceTrees)
    cold = LiveModel(ASSET_DROP, ASSET_DROP.build(7))
    assert {s.score for s in cold.score_many(features)} == {ASSET_DROP.prior}


def test_the_scorer_scores_a_batch_as_it_scores_each_event() -> None:
    """(``trained_churn`` is defined below.)"""
    scorer = ModelScorer.fresh(7)
    scorer.models["asset_drop"] = LiveModel(ASSET_DROP, trained(1000).model, examples=1000)
    scorer.models["churn_risk"] = LiveModel(CHURN_RISK, trained_churn(3000).model, examples=3000)
    rng = random.Random(5)
    features = [
        {**row(rng), **{n: rng.gauss(0.0, 40.0) for n in CHURN_RISK.inputs}} for _ in range(200)
    ]
    batched = scorer.score_many(features)
    assert batched == [scorer.score(f) for f in features]
    assert all(not s.cold for scores in batched for s in scores.values())
    for live in scorer.models.values():  # both went through their batch form
        assert live._batch is not None and live._batch[2] is not None
    assert scorer.score_many([]) == []


def test_a_recompiled_model_reuses_the_tree_layout_and_reads_the_new_masses() -> None:
    live = trained(1000)
    first = compile_model(live.model, INPUTS)
    assert isinstance(first, CompiledHalfSpaceTrees) and first.layout is not None
    rng = random.Random(11)
    for _ in range(600):  # two more windows: the masses pivot
        live.learn(row(rng, 2.0))
    again = compile_model(live.model, INPUTS, previous=first)
    assert isinstance(again, CompiledHalfSpaceTrees) and again.layout is first.layout
    assert not (again.r_mass == first.r_mass).all() and not (again.span == first.span).all()
    rows = [row(rng, 3.0) for _ in range(400)]
    assert again.score(rows) == river_scores(live, rows)
    # a layout of other trees is not reused
    other = trained(1000, seed=4)
    fresh = compile_model(other.model, INPUTS, previous=first)
    assert isinstance(fresh, CompiledHalfSpaceTrees) and fresh.layout is not first.layout
    assert fresh.score(rows) == river_scores(other, rows)


def trained_churn(examples: int, seed: int = 5) -> LiveModel:
    rng = random.Random(seed)
    live = LiveModel(CHURN_RISK, CHURN_RISK.build(seed))
    for _ in range(examples):
        x = {name: rng.gauss(0.0, 40.0) * (rng.random() < 0.7) for name in CHURN_RISK.inputs}
        x["salary_count_35d"] = 1.0  # a constant input: no variance, River reads 0.0
        live.learn(x, rng.random() < 0.3)
    return live


@pytest.mark.parametrize("examples", [0, 1, 50, 3000])
def test_logistic_batch_scores_equal_rivers_exactly(examples: int) -> None:
    live = trained_churn(examples)  # 0: never learned (no weights, no statistics)
    compiled = compile_model(live.model, CHURN_RISK.inputs)
    assert compiled is not None
    rng = random.Random(examples)
    rows = [
        {name: rng.gauss(0.0, 40.0 * spread) * (rng.random() < 0.7) for name in CHURN_RISK.inputs}
        for spread in (0.01, 1.0, 30.0)
        for _ in range(2000)
    ]
    for special in (math.nan, math.inf, -math.inf, 1e308):
        rows.append(dict.fromkeys(CHURN_RISK.inputs, special))
    ours = compiled.score(rows)
    theirs = [float(live.model.predict_proba_one(x)[True]) for x in rows]
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):  # exact (NaN where River says NaN)
        assert a == b or (math.isnan(a) and math.isnan(b))
    if examples >= 3000:  # a model that learned: many different answers
        assert len(set(ours)) > 1000
        assert 0.0 in ours  # past the sigmoid's clamp, as River answers


def test_a_logistic_model_missing_a_weight_has_no_batch_form() -> None:
    live = trained_churn(100)
    scaler = live.model.steps["StandardScaler"]
    scaler.means["never_seen"], scaler.vars["never_seen"] = 1.0, 4.0  # scaled, yet no weight
    assert compile_model(live.model, (*CHURN_RISK.inputs, "never_seen")) is None
