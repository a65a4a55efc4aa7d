"""engine.decide with the shipped catalog: the funnel, the contact policy, capacity reservations,
propensities from the scorer, experiments and the time zone, all in the decision record."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from actions.catalog import DEFAULT_CATALOG, load_catalog
from actions.experiments import assign
from actions.policy import CapacityReservation
from engine.config import PolicySettings
from engine.decide import Decision, DecisionContext, action_message, decide
from engine.events import AnyEvent, InvalidEvent, parse_event
from engine.types import Contact, CustomerState, Fired
from features.definitions import feature_names
from online_models.catalog import model_names
from online_models.scorer import ModelScorer
from rules.loader import load_rules

RULES = """
rules:
  - id: big_outflow
    description: A large outflow in 7 days.
    alert_type: churn_risk
    severity: high
    when: outflow_7d >= 100000
    cooldown: 7d
    reason: "outflow {outflow_7d:.0f}"
  - id: closure_page
    description: The account-closure page.
    alert_type: churn_risk
    severity: medium
    when: event_type == 'app' and event_page == 'account_closure'
    cooldown: 1d
    reason: "closure page"
"""
CATALOG = load_catalog(DEFAULT_CATALOG)
EXPERIMENT = CATALOG.experiments[0]
DAY_TS = "2026-01-05T10:00:00+08:00"  # 10:00 in Shanghai, 02:00 in London
NIGHT_TS = "2026-01-05T22:00:00+08:00"  # 22:00 in Shanghai, 14:00 in London


class PropensityScorer(ModelScorer):
    """A scorer whose ``offer_response`` propensities are given (``ModelScorer.propensities``);
    it remembers which actions it was asked about."""

    table: Mapping[str, tuple[float, bool]] = {}
    asked: list[str] | None = None

    def propensities(
        self, features: Mapping[str, Any], actions: Iterable[str] | None = None
    ) -> dict[str, tuple[float, bool]]:
        wanted = None if actions is None else set(actions)
        self.asked = None if wanted is None else sorted(wanted)
        return {a: p for a, p in self.table.items() if wanted is None or a in wanted}


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("rules")
    (folder / "test.yaml").write_text(RULES)
    return load_rules(Path(folder), model_names())


def context(rules: Any, scorer: ModelScorer | None = None, **policy: Any) -> DecisionContext:
    return DecisionContext(
        scorer=scorer or ModelScorer.fresh(7),
        rules=rules,
        catalog=CATALOG,
        policy=PolicySettings(**policy),
        audit_features=("outflow_7d",),
    )


def customer(variant: str) -> str:
    return next(f"c{i}" for i in range(10_000) if assign(EXPERIMENT, f"c{i}").id == variant)


def event(cid: str, ts: str = DAY_TS, **fields: Any) -> AnyEvent:
    doc = {"event_id": f"{cid}-{ts}", "customer_id": cid, "ts": ts, **fields}
    doc.setdefault("type", "app")
    if doc["type"] == "app":
        doc.setdefault("session_id", "s")
        doc.setdefault("name", "page_view")
    parsed = parse_event(orjson.dumps(doc), now=4e9, max_bytes=1 << 16, max_future_seconds=1e10)
    assert not isinstance(parsed, InvalidEvent), parsed
    return parsed


def state(
    cid: str,
    tier: str = "basic",
    profile: Mapping[str, str] | None = None,
    contacts: tuple[Contact, ...] = (),
    fired: Mapping[str, Fired] | None = None,
    outflow: float = 150_000.0,
) -> CustomerState:
    features: dict[str, float | str] = dict.fromkeys(feature_names(), 0.0)
    features.update(tier=tier, outflow_7d=outflow, days_since_last_complaint=9999.0)
    return CustomerState(cid, "applied", 0.0, features, profile or {}, fired or {}, contacts)


def run(rules: Any, ev: AnyEvent, st: CustomerState, **kw: Any) -> Decision:
    capacity = kw.pop("capacity_used", None)
    scorer = kw.pop("scorer", None)
    return decide(ev, st, context(rules, scorer, **kw), decided_at=ev.epoch, capacity_used=capacity)


def test_a_high_lead_without_an_offline_rm_gets_a_remote_call_and_reserves_capacity(
    rules: Any,
) -> None:
    cid = customer("arbitration")
    d = run(rules, event(cid), state(cid, profile={"timezone": "Asia/Shanghai"}))
    assert [a.action_id for a in d.actions] == ["rm_call_retention"]
    action = action_message(d.actions[0])
    assert action["channel"] == "rm_call" and action["lead_grade"] == "high"
    assert action["idempotency_key"] == f"{d.decision_id}:rm_call_retention"
    assert d.reservations == (
        CapacityReservation("rm_call", "2026-01-05", f"{d.decision_id}:rm_call_retention"),
    )
    lead = d.record["actions"]["lead"]
    assert lead["grade"] == "high" and lead["layer"] == "mid"
    assert lead["evidence"] == {"rule:big_outflow": 0.75}
    assert lead["fell"] == [{"layer": "high", "reasons": ["no_offline_rm_for_tier"]}]
    assert d.record["actions"]["capacity"]["reserved"] == [
        {"channel": "rm_call", "day": "2026-01-05", "key": f"{d.decision_id}:rm_call_retention"}
    ]
    assert d.effects.contacts == (
        Contact(event(cid).epoch, "rm_call", d.decision_id, "rm_call_retention"),
    )


def test_an_affluent_high_lead_goes_to_the_offline_rm(rules: Any) -> None:
    cid = customer("arbitration")
    d = run(rules, event(cid), state(cid, tier="affluent"))
    assert [(a.action_id, a.channel) for a in d.actions] == [("rm_handoff_retention", "rm_handoff")]
    assert d.record["actions"]["route"] == [{"layer": "high", "result": "chosen", "reasons": []}]


def test_used_up_capacity_sends_the_lead_down_and_the_record_says_so(rules: Any) -> None:
    cid = customer("arbitration")
    d = run(rules, event(cid), state(cid), capacity_used={"rm_call": 500})
    assert [a.action_id for a in d.actions] == ["robot_call_checkin"]
    assert d.reservations == ()
    assert d.record["actions"]["route"][1] == {
        "layer": "mid",
        "result": "chosen",
        "reasons": ["capacity_rm_call"],
    }
    statuses = {c["action_id"]: c["status"] for c in d.record["actions"]["candidates"]}
    assert statuses["rm_call_retention"] == "capacity_rm_call"
    assert d.record["actions"]["capacity"]["used"] == {"rm_call": 500}


def test_a_redelivered_decision_keeps_its_own_reservation(rules: Any) -> None:
    cid = customer("arbitration")
    first = run(rules, event(cid), state(cid))
    own = first.effects.contacts
    again = run(rules, event(cid), state(cid, contacts=own), capacity_used={"rm_call": 500})
    assert again.actions == first.actions and again.reservations == first.reservations


def test_a_customer_without_a_time_zone_uses_the_default_and_the_record_says_so(
    rules: Any,
) -> None:
    cid = customer("arbitration")
    night = event(cid, NIGHT_TS)
    d = run(rules, night, state(cid))
    assert d.record["timezone"] == {"name": "Asia/Shanghai", "default_used": True}
    # 22:00 in Shanghai: calls and SMS wait; the lead falls to a push
    assert [a.channel for a in d.actions] == ["push"]
    assert [s["reasons"] for s in d.record["actions"]["route"][1:]] == [
        ["quiet_hours"],
        ["quiet_hours"],
    ]
    london = run(rules, night, state(cid, profile={"timezone": "Europe/London"}))
    assert london.record["timezone"] == {"name": "Europe/London", "default_used": False}
    assert [a.channel for a in london.actions] == ["rm_call"]  # 14:00 in London
    # the configured default moves the quiet hours too
    d = run(rules, night, state(cid), default_timezone="Europe/London")
    assert d.record["timezone"]["default_used"] and [a.channel for a in d.actions] == ["rm_call"]


def test_propensities_come_from_the_scorer_when_warm_else_the_prior(rules: Any) -> None:
    cid = customer("arbitration")
    scorer = PropensityScorer.fresh(7)
    assert isinstance(scorer, PropensityScorer)
    scorer.table = {"robot_call_checkin": (0.99, False), "rm_call_retention": (0.9, True)}
    d = run(rules, event(cid), state(cid), scorer=scorer)
    candidates = {c["action_id"]: c for c in d.record["actions"]["candidates"]}
    assert candidates["robot_call_checkin"]["propensity_source"] == "model"
    assert candidates["robot_call_checkin"]["priority"] == pytest.approx(0.99 * 400 * 1.5 - 2)
    assert candidates["rm_call_retention"]["propensity_source"] == "prior"
    assert candidates["rm_call_retention"]["propensity"] == 0.2
    assert [a.action_id for a in d.actions] == ["robot_call_checkin"]
    # asked only about the eligible candidates
    assert scorer.asked is not None and "rm_call_retention" in scorer.asked
    assert "rm_handoff_retention" not in scorer.asked  # not for the basic tier
    assert "sms_salary_switch_offer" not in scorer.asked  # its condition is false


def test_the_control_group_is_alerted_but_not_contacted(rules: Any) -> None:
    cid = customer("control")
    d = run(rules, event(cid), state(cid))
    assert [a.rule_id for a in d.alerts] == ["big_outflow"] and d.actions == ()
    assert d.reservations == () and d.effects.contacts == ()
    assert {c["status"] for c in d.record["actions"]["candidates"]} == {"control_group"}
    assert d.record["experiment"]["applied"] == [
        {
            "id": "retention_offer_2026",
            "variant": "control",
            "control": True,
            "first_exposure": True,
        }
    ]


def test_every_decision_records_the_experiment_and_outcomes_know_the_exposure(
    rules: Any,
) -> None:
    cid = customer("digital_only")
    quiet = run(rules, event(cid), state(cid, outflow=0.0))
    assert quiet.alerts == () and quiet.record["actions"]["lead"] is None
    assert quiet.record["actions"]["lead_grade"] == "none"
    assert quiet.record["experiment"] == {
        "assignments": {"retention_offer_2026": "digital_only"},
        "applied": [],
        "exposed": {},
    }
    alerted = run(rules, event(cid), state(cid))
    assert [a.channel for a in alerted.actions] == ["sms"]  # digital only: no RM call
    fired = dict(alerted.effects.fired)
    outcome = run(
        rules,
        event(cid, "2026-01-20T10:00:00+08:00", type="outcome", label="churned"),
        state(cid, fired=fired, contacts=alerted.effects.contacts),
    )
    assert outcome.record["experiment"]["exposed"] == {"retention_offer_2026": "digital_only"}
    assert outcome.record["experiment"]["applied"] == []


def test_ineligible_actions_and_versions_are_in_the_record(rules: Any) -> None:
    cid = customer("arbitration")
    d = run(rules, event(cid), state(cid))
    ineligible = {i["action_id"]: i["reason"] for i in d.record["actions"]["ineligible"]}
    assert ineligible["rm_handoff_retention"] == "ineligible_tier"
    assert ineligible["sms_salary_switch_offer"] == "ineligible_condition"
    assert d.record["actions"]["catalog_version"] == CATALOG.version
    assert len(d.record["actions"]["policy_version"]) == 12
    assert all(c["stage"] for c in d.record["actions"]["candidates"])


def test_a_too_late_event_is_recorded_but_raises_nothing(rules: Any) -> None:
    """Older than the dedup horizon, an event may be a redelivery of one already decided and
    published (found by the kill -9 test): deciding it on today's state must not alert."""
    cid = customer("arbitration")
    applied = run(rules, event(cid), state(cid))
    assert applied.alerts and applied.actions
    late = replace(state(cid), status="too_late")
    d = run(rules, event(cid), late)
    assert d.alerts == () and d.actions == () and not d.effects
    assert d.record["state_status"] == "too_late"
