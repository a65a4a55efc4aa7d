"""Model snapshots: stamped, checked before unpickling, refused with a reason, hot-swapped."""

from __future__ import annotations

import copy
import logging
import pickle
from dataclasses import replace
from typing import Any

import orjson
import pytest

from engine.errors import SnapshotError
from online_models.catalog import ASSET_DROP, CHURN_RISK, build_catalog
from online_models.labels import DAY
from online_models.learner import Learner, LearnerConfig
from online_models.scorer import ModelScorer
from online_models.snapshots import (
    MAGIC,
    MemorySnapshotStore,
    SnapshotPoller,
    decode_snapshot,
    encode_snapshot,
)
from tests.unit.test_models_learner import T0, decision, outcome

RISKY = {"closure_page_views_30d": 3.0, "transfer_out_other_bank_share_30d": 0.8}


def trained_learner(n: int = 300, min_examples: int = 200) -> Learner:
    learner = Learner(LearnerConfig(lateness=0.0), build_catalog(min_examples={"asset_drop": 10}))
    for i in range(n):
        risky = i % 4 == 0
        learner.observe_decision(decision(f"c{i}", T0 + i, **(RISKY if risky else {})))
        learner.observe_outcome(outcome(f"c{i}", "churned" if risky else "retained", T0 + DAY))
    return learner


def rewrite_header(blob: bytes, **changes: Any) -> bytes:
    end = blob.index(b"\n", len(MAGIC))
    header = orjson.loads(blob[len(MAGIC) : end]) | changes
    return MAGIC + orjson.dumps(header) + blob[end:]


def test_a_snapshot_restores_the_same_model() -> None:
    learner = trained_learner()
    live = learner.scorer().models["churn_risk"]
    blob = learner.export("churn_risk")
    snap = decode_snapshot(blob, CHURN_RISK)
    assert snap.header.examples == live.examples == 300
    x = live.inputs(RISKY)
    assert snap.state.predict_proba_one(x) == live.model.predict_proba_one(x)


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "checksum mismatch"),
        (lambda b: b"garbage" + b, "not a Vigil snapshot"),
        (lambda b: MAGIC + b"{not json\n" + b[len(MAGIC) :], "bad header"),
        (lambda b: rewrite_header(b, river="0.21.0"), "made by River 0.21.0"),
        (lambda b: rewrite_header(b, format=99), "format 99"),
        (lambda b: rewrite_header(b, name="asset_drop"), "of asset_drop, not churn_risk"),
    ],
)
def test_a_corrupt_or_incompatible_snapshot_is_refused_with_its_reason(
    mangle: Any, reason: str
) -> None:
    blob = mangle(trained_learner(10).export("churn_risk"))
    with pytest.raises(SnapshotError, match=reason):
        decode_snapshot(blob, CHURN_RISK)


def test_a_valid_checksum_over_a_broken_pickle_is_refused() -> None:
    payload = pickle.dumps({"a": 1})[:-4]
    blob = encode_snapshot(CHURN_RISK, None, 0, 0.0)
    end = blob.index(b"\n", len(MAGIC))
    import hashlib

    blob = rewrite_header(blob[: end + 1], sha256=hashlib.sha256(payload).hexdigest()) + payload
    with pytest.raises(SnapshotError, match="corrupt: UnpicklingError"):
        decode_snapshot(blob, CHURN_RISK)


def test_a_snapshot_of_another_feature_schema_is_refused_naming_the_inputs() -> None:
    blob = trained_learner(10).export("churn_risk")
    changed = replace(CHURN_RISK, inputs=(*CHURN_RISK.inputs[1:], "new_feature_30d"))
    with pytest.raises(SnapshotError) as err:
        decode_snapshot(blob, changed)
    assert "new_feature_30d" in str(err.value) and CHURN_RISK.inputs[0] in str(err.value)
    assert CHURN_RISK.version != changed.version


def test_a_refused_snapshot_leaves_the_previous_model_serving() -> None:
    scorer = ModelScorer.fresh(7)
    good = trained_learner().export("churn_risk")
    scorer.install("churn_risk", 3, good)
    before = scorer.score(RISKY)["churn_risk"]
    assert before.cold is False and before.version == f"{CHURN_RISK.version}.3"
    for bad in (good[:-10], rewrite_header(good, river="0.1.0")):
        with pytest.raises(SnapshotError):
            scorer.install("churn_risk", 4, bad)
        assert scorer.score(RISKY)["churn_risk"] == before


async def test_workers_poll_numbers_and_hot_swap_newer_snapshots(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemorySnapshotStore()
    learner = trained_learner()
    worker = ModelScorer.fresh(7, build_catalog(min_examples={"asset_drop": 10}))
    poller = SnapshotPoller(store, worker)
    assert await poller.poll() == []  # nothing published yet: fresh, cold models serve
    assert worker.score(RISKY)["churn_risk"].cold is True

    for name in learner.snapshot_names():
        learner.published(name, await store.publish(name, learner.export(name)))
    assert await poller.poll() == ["asset_drop", "churn_risk", "offer_response"]
    served = worker.score(RISKY)["churn_risk"]
    assert served.cold is False and served.version == f"{CHURN_RISK.version}.1"
    assert served.score == pytest.approx(learner.scorer().score(RISKY)["churn_risk"].score)
    assert await poller.poll() == []  # same numbers: nothing fetched

    await store.publish("churn_risk", b"VIGILSNAP1\nbroken")
    with caplog.at_level(logging.ERROR, logger="online_models.snapshots"):
        assert await poller.poll() == []
        assert await poller.poll() == []  # refused once, not retried every poll
    refusals = [r for r in caplog.records if "refused snapshot 2 of churn_risk" in r.getMessage()]
    assert len(refusals) == 1 and "snapshot 1 keeps serving" in refusals[0].getMessage()
    assert worker.score(RISKY)["churn_risk"] == served

    await store.publish("churn_risk", learner.export("churn_risk"))
    assert await poller.poll() == ["churn_risk"]
    assert worker.score(RISKY)["churn_risk"].version == f"{CHURN_RISK.version}.3"


def test_a_restored_learner_continues_exactly_where_the_snapshot_was_taken() -> None:
    first = trained_learner(250)
    blobs = {name: first.export(name) for name in first.snapshot_names()}
    second = Learner(LearnerConfig(lateness=0.0), build_catalog(min_examples={"asset_drop": 10}))
    second.pending = copy.deepcopy(first.pending)  # the label store outlives the process
    for number, (name, blob) in enumerate(sorted(blobs.items()), start=1):
        second.restore(name, number, blob)
    assert second.health()["models"] == {
        name: dict(model, version=second.health()["models"][name]["version"])
        for name, model in first.health()["models"].items()
    }
    assert (second.max_ts, second.next_due_day) == (first.max_ts, first.next_due_day)
    more = [decision(f"n{i}", T0 + 500 + i, **(RISKY if i % 3 == 0 else {})) for i in range(60)]
    for learner in (first, second):
        for i, d in enumerate(more):
            learner.observe_decision(d)
            label = "churned" if i % 3 == 0 else "retained"
            learner.observe_outcome(outcome(f"n{i}", label, T0 + 2 * DAY))
    for name in ("churn_risk", "asset_drop"):
        assert first.scorer().score(RISKY)[name].score == second.scorer().score(RISKY)[name].score
    assert first.health()["models"]["churn_risk"]["roc_auc"] == pytest.approx(
        second.health()["models"]["churn_risk"]["roc_auc"]
    )


def test_a_learner_refuses_a_state_snapshot_of_another_catalog() -> None:
    blob = trained_learner(10).export("learner")
    other = Learner(LearnerConfig(), build_catalog(challenger="hoeffding"))
    with pytest.raises(SnapshotError, match="model version"):
        other.restore("learner", 1, blob)


def test_challengers_are_scored_in_shadow_and_not_readable_by_rules() -> None:
    from online_models.catalog import model_names

    scorer = ModelScorer.fresh(7, build_catalog(challenger="hoeffding"))
    scores = scorer.score(RISKY)
    assert set(scores) == {"churn_risk", "asset_drop", "churn_risk_challenger"}
    assert "churn_risk_challenger" not in model_names()
    assert ASSET_DROP.name in model_names()
