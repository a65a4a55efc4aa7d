"""Experiments: stable hash assignment, control and variants in arbitration, exposure, uplift."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from actions.catalog import ActionCatalog, parse_catalog
from actions.experiments import (
    NO_EXPERIMENTS,
    assign,
    bucket,
    experiment_counts,
    summarize,
    view,
)
from actions.nba import choose
from actions.policy import PolicyContext, compile_policy
from actions.routing import grade_lead
from engine.config import PolicySettings
from engine.types import Fired
from rules.evaluator import RuleHit

ROOT = Path(__file__).resolve().parents[2]
T = 1767578400.0  # 2026-01-05T02:00Z


def catalog(experiments: list[dict[str, Any]]) -> ActionCatalog:
    doc = {
        "templates": [
            {"id": "t_call", "channels": ["rm_call"], "text": "x"},
            {"id": "t_push", "channels": ["push"], "text": "x"},
        ],
        "actions": [
            {
                "id": "call",
                "description": "d",
                "goal": "retain",
                "channels": ["rm_call"],
                "answers": ["churn_risk", "asset_drop"],
                "value": 1500,
                "cost": 60,
                "propensity": 0.2,
                "template_id": "t_call",
            },
            {
                "id": "nudge",
                "description": "d",
                "goal": "re_engage",
                "channels": ["push"],
                "answers": ["churn_risk", "asset_drop", "engagement_drop"],
                "value": 120,
                "propensity": 0.05,
                "template_id": "t_push",
            },
        ],
        "experiments": experiments,
    }
    return parse_catalog(doc, source="test", version="v", models=[])


def experiment(id: str = "exp", **extra: Any) -> dict[str, Any]:
    return {
        "id": id,
        "description": "d",
        "variants": extra.pop(
            "variants",
            [
                {"id": "control", "weight": 10, "control": True},
                {"id": "normal", "weight": 45},
                {"id": "digital", "weight": 45, "actions": ["nudge"]},
            ],
        ),
        **extra,
    }


CAT = catalog([experiment(alert_types=["churn_risk", "asset_drop"])])
EXP = CAT.experiments[0]


def customer_in(variant: str, cat: ActionCatalog = CAT) -> str:
    return next(
        c for c in (f"c{i}" for i in range(1000)) if assign(cat.experiments[0], c).id == variant
    )


def test_assignment_is_stable_across_processes_and_hash_seeds() -> None:
    ids = [f"cust-{i}" for i in range(20)]
    here = [assign(EXP, c).id for c in ids]
    code = (
        "from actions.experiments import bucket; "
        f"print(','.join(str(bucket('exp', c)) for c in {ids!r}))"
    )
    for seed in ("1", "999"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert [float(x) for x in out.split(",")] == [bucket("exp", c) for c in ids]
    assert here == [assign(EXP, c).id for c in ids]


def test_assignment_follows_the_weights_and_depends_on_the_experiment() -> None:
    counts = Counter(assign(EXP, f"c{i}").id for i in range(20_000))
    assert counts["control"] / 20_000 == pytest.approx(0.10, abs=0.01)
    assert counts["normal"] / 20_000 == pytest.approx(0.45, abs=0.015)
    other = catalog([experiment("other")]).experiments[0]
    same = sum(assign(EXP, f"c{i}").id == assign(other, f"c{i}").id for i in range(2000))
    assert same < 2000 * 0.6  # independent draws agree about 0.1^2 + 2 * 0.45^2 = 41%


def arbitrate(customer: str, cat: ActionCatalog = CAT, alert: str = "churn_risk") -> Any:
    hits = [RuleHit("r1", alert, "high", 50, "why", {})]
    exp = view(cat, customer, T, [alert], {}, {"r1": alert}, "d1")
    policy = compile_policy(PolicySettings())
    out = choose(
        hits,
        tier="basic",
        segment=None,
        env={},
        catalog=cat,
        policy=policy,
        ctx=PolicyContext(T, {}, (), 9999.0, "d1"),
        lead=grade_lead([("r1", "high")], {}, high=0.75, mid=0.5),
        experiment=exp,
    )
    return exp, out


def test_the_control_group_gets_no_action_and_says_so() -> None:
    exp, out = arbitrate(customer_in("control"))
    assert exp.control == "exp" and out.chosen is None
    assert {c.status for c in out.candidates} == {"control_group"}
    assert exp.record()["applied"] == [
        {"id": "exp", "variant": "control", "control": True, "first_exposure": True}
    ]


def test_a_variant_limits_the_actions_and_the_normal_arm_arbitrates() -> None:
    _, out = arbitrate(customer_in("digital"))
    assert out.chosen is not None and out.chosen.action.id == "nudge"
    assert {c.action.id: c.status for c in out.candidates}["call"] == "not_in_variant"
    _, out = arbitrate(customer_in("normal"))
    assert out.chosen is not None and out.chosen.action.id == "call"


def test_an_experiment_applies_only_to_its_alert_types_and_its_time_window() -> None:
    exp, _ = arbitrate(customer_in("control"), alert="engagement_drop")
    assert exp.applied == () and exp.assignments == (("exp", "control"),)
    timed = catalog([experiment(start="2026-02-01T00:00:00+08:00")])
    assert view(timed, "c1", T, ["churn_risk"], {}, {}, "d1") == NO_EXPERIMENTS
    assert view(timed, "c1", T + 40 * 86400, ["churn_risk"], {}, {}, "d1").applied


def test_exposure_is_known_from_earlier_alerts_in_scope() -> None:
    cid = customer_in("normal")
    rule_types = {"r_churn": "churn_risk", "r_eng": "engagement_drop"}
    first = view(CAT, cid, T, ["churn_risk"], {}, rule_types, "d1")
    assert first.applied[0].first_exposure and first.exposed == (("exp", "normal"),)
    earlier = {"r_churn": Fired(T - 3600, "d0")}
    again = view(CAT, cid, T, ["churn_risk"], earlier, rule_types, "d1")
    assert not again.applied[0].first_exposure
    # an outcome (no alerts) of an exposed customer knows the exposure; an out-of-scope alert
    # does not expose
    outcome = view(CAT, cid, T, [], earlier, rule_types, "d2")
    assert outcome.applied == () and outcome.exposed == (("exp", "normal"),)
    unexposed = view(CAT, cid, T, [], {"r_eng": Fired(T - 60, "d0")}, rule_types, "d2")
    assert unexposed.exposed == ()
    # a redelivered decision is still the first exposure (its own alert is not "earlier")
    own = view(CAT, cid, T, ["churn_risk"], {"r_churn": Fired(T, "d1")}, rule_types, "d1")
    assert own.applied[0].first_exposure


def test_overlapping_experiments_combine_control_and_limits() -> None:
    cat = catalog(
        [
            experiment("a"),
            experiment(
                "b",
                variants=[
                    {"id": "hold", "weight": 1, "control": True},
                    {"id": "push_only", "weight": 1, "actions": ["nudge"]},
                ],
            ),
        ]
    )
    cid = next(
        f"c{i}"
        for i in range(1000)
        if assign(cat.experiments[0], f"c{i}").id == "normal"
        and assign(cat.experiments[1], f"c{i}").id == "push_only"
    )
    exp, out = arbitrate(cid, cat)
    assert [a.experiment.id for a in exp.applied] == ["a", "b"]
    assert out.chosen is not None and out.chosen.action.id == "nudge"


def test_counts_and_uplift_from_decision_records() -> None:
    def exposure(cid: str, variant: str, first: bool = True) -> dict[str, Any]:
        return {
            "customer_id": cid,
            "event_type": "transaction",
            "experiment": {
                "applied": [
                    {
                        "id": "e",
                        "variant": variant,
                        "control": variant == "control",
                        "first_exposure": first,
                    }
                ],
                "exposed": {"e": variant},
            },
        }

    def outcome(cid: str, variant: str, label: str) -> dict[str, Any]:
        return {
            "customer_id": cid,
            "event_type": "outcome",
            "input": {"label": label},
            "experiment": {"applied": [], "exposed": {"e": variant}},
        }

    records = [
        *(exposure(f"k{i}", "control") for i in range(4)),
        *(exposure(f"v{i}", "offer") for i in range(5)),
        exposure("v0", "offer", first=False),
        outcome("k0", "control", "churned"),
        outcome("k1", "control", "churned"),
        outcome("v0", "offer", "churned"),
        outcome("v1", "offer", "offer_accepted"),
        {
            "customer_id": "x",
            "event_type": "outcome",
            "input": {"label": "churned"},
            "experiment": {"applied": [], "exposed": {}},
        },
    ]
    assert experiment_counts(records[0]) == ([("e", "control")], [])
    assert experiment_counts(records[9]) == ([], [])  # a later exposure
    assert experiment_counts(records[12]) == ([], [("e", "offer", "churned")])
    report = summarize(records)["e"]
    assert report["control"] == "control"
    offer = report["variants"]["offer"]
    assert offer["exposed"] == 5 and offer["outcomes"] == {"churned": 1, "offer_accepted": 1}
    assert offer["uplift"]["churned"] == pytest.approx(1 / 5 - 2 / 4)
    assert offer["uplift"]["offer_accepted"] == pytest.approx(1 / 5)
    assert report["variants"]["control"]["uplift"] is None
