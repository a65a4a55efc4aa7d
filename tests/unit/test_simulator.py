"""The synthetic bank: deterministic, valid against the event contract, and true to its plans."""

from __future__ import annotations

import gzip
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson
import pytest
import typer
from typer.testing import CliRunner

from engine.events import CHANNELS, InvalidEvent, parse_event
from features.definitions import OWN_BANK
from features.definitions import tier_of as feature_tier_of
from simulator import (
    DEFAULT_START,
    CustomerPlan,
    ground_truth,
    plan_customers,
    read_jsonl,
    simulate,
    tier_of,
    write_jsonl,
)
from simulator.cli import simulate_command

CUSTOMERS = 400
DAYS = 45
SEED = 7
END = DEFAULT_START + timedelta(days=DAYS)

Events = list[dict[str, Any]]


@pytest.fixture(scope="module")
def events() -> Events:
    return list(simulate(CUSTOMERS, DAYS, SEED))


@pytest.fixture(scope="module")
def plans() -> dict[str, CustomerPlan]:
    return {p.customer_id: p for p in plan_customers(CUSTOMERS, DAYS, SEED)}


@pytest.fixture(scope="module")
def epochs(events: Events) -> list[float]:
    return [datetime.fromisoformat(e["ts"]).timestamp() for e in events]


@pytest.fixture
def by_customer(events: Events) -> Callable[[str], Events]:
    groups: dict[str, Events] = defaultdict(list)
    for e in events:
        groups[e["customer_id"]].append(e)
    return lambda cid: groups[cid]


def _is_other_bank_transfer_out(e: dict[str, Any]) -> bool:
    return (
        e["type"] == "transaction"
        and e["kind"] == "transfer_out"
        and (e.get("counterparty_bank") or "") not in OWN_BANK
    )


# ------------------------------------------------------------------------------ determinism


def test_same_seed_gives_the_same_bytes(tmp_path: Path) -> None:
    a = write_jsonl(simulate(120, 20, 11), tmp_path / "a.jsonl.gz")
    b = write_jsonl(simulate(120, 20, 11), tmp_path / "b.jsonl.gz")
    assert a == b > 0
    assert (tmp_path / "a.jsonl.gz").read_bytes() == (tmp_path / "b.jsonl.gz").read_bytes()
    write_jsonl(simulate(120, 20, 11), tmp_path / "c.jsonl")
    assert (
        gzip.decompress((tmp_path / "a.jsonl.gz").read_bytes())
        == (tmp_path / "c.jsonl").read_bytes()
    )


def test_a_different_seed_gives_a_different_stream(tmp_path: Path) -> None:
    write_jsonl(simulate(120, 20, 11), tmp_path / "a.jsonl")
    write_jsonl(simulate(120, 20, 12), tmp_path / "b.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() != (tmp_path / "b.jsonl").read_bytes()


def test_a_customer_does_not_depend_on_how_many_are_simulated() -> None:
    small = list(simulate(5, 15, SEED))
    large = [e for e in simulate(40, 15, SEED) if e["customer_id"] <= "c000005"]
    assert small == large
    assert plan_customers(5, 15, SEED) == plan_customers(40, 15, SEED)[:5]


def test_written_events_read_back_unchanged(tmp_path: Path) -> None:
    events = list(simulate(30, 10, SEED))
    assert write_jsonl(events, tmp_path / "e.jsonl.gz") == len(events)
    assert list(read_jsonl(tmp_path / "e.jsonl.gz")) == events


# ------------------------------------------------------------------------------ the contract


def test_every_event_passes_the_contract(events: Events) -> None:
    types: Counter[str] = Counter()
    for e in events:
        parsed = parse_event(orjson.dumps(e), now=1e12, max_bytes=65536, max_future_seconds=1e12)
        assert not isinstance(parsed, InvalidEvent), (parsed, e)
        types[parsed.type] += 1
    assert set(types) == {"transaction", "app", "outcome", "profile"}


def test_events_are_in_time_order_inside_the_window(events: Events, epochs: list[float]) -> None:
    assert all(a <= b for a, b in pairwise(epochs))
    assert epochs[0] >= DEFAULT_START.timestamp()
    assert epochs[-1] < END.timestamp()
    assert all(e["ts"][-6] in "+-" or e["ts"].endswith("Z") for e in events)


def test_event_ids_are_unique(events: Events) -> None:
    ids = [e["event_id"] for e in events]
    assert len(set(ids)) == len(ids)


def test_volume_is_a_few_events_per_customer_per_day(events: Events) -> None:
    per_day = len(events) / CUSTOMERS / DAYS
    assert 2.0 <= per_day <= 6.0


def test_app_events_carry_the_customers_local_offset(
    events: Events, plans: dict[str, CustomerPlan]
) -> None:
    london = {cid for cid, p in plans.items() if p.timezone == "Europe/London"}
    assert london
    london_app = [e for e in events if e["type"] == "app" and e["customer_id"] in london]
    assert london_app and all(e["ts"].endswith("+00:00") for e in london_app)
    postings = [e for e in events if e["type"] == "transaction"]
    assert all(e["ts"].endswith("+08:00") for e in postings)


# ------------------------------------------------------------------------------ customers


def test_tiers_come_in_the_briefs_proportions() -> None:
    plans = plan_customers(5000, 30, SEED)
    share = {tier: n / len(plans) for tier, n in Counter(p.tier for p in plans).items()}
    assert 0.66 <= share["long_tail"] <= 0.74
    assert 0.21 <= share["basic"] <= 0.29
    assert 0.03 <= share["affluent"] <= 0.07
    assert all(tier_of(p.aum) == p.tier == feature_tier_of(p.aum) for p in plans)
    long_tail = sorted(p.aum for p in plans if p.tier == "long_tail")
    assert 6_000 <= long_tail[len(long_tail) // 2] <= 10_000
    assert all((p.rm_id is None) == (p.tier == "long_tail") for p in plans)


def test_fates_come_in_the_briefs_proportions() -> None:
    plans = plan_customers(5000, 60, SEED)
    fates = Counter(p.fate for p in plans)
    assert 0.05 <= fates["churn"] / len(plans) <= 0.08
    assert 0.02 <= fates["asset_drop"] / len(plans) <= 0.04
    assert set(ground_truth(5000, 60, SEED)) == {p.customer_id for p in plans if p.fate != "none"}
    for p in plans:
        if p.churn_start is not None:
            assert p.churned_at is not None
            assert timedelta(days=7) <= p.churned_at - p.churn_start <= timedelta(days=21)


def test_each_customer_starts_with_a_full_profile(
    plans: dict[str, CustomerPlan], by_customer: Callable[[str], Events]
) -> None:
    for cid, plan in plans.items():
        first = by_customer(cid)[0]
        assert first["type"] == "profile"
        assert first["ts"] == DEFAULT_START.isoformat()
        assert first["aum"] == plan.aum and first["segment"] == plan.segment
        assert first["timezone"] == plan.timezone and first.get("rm_id") == plan.rm_id
        assert set(first["consent"]) == set(CHANNELS)
        assert first["opted_out"] == plan.opted_out


def test_some_customers_change_their_profile_later(events: Events) -> None:
    later = [e for e in events if e["type"] == "profile" and e["ts"] != DEFAULT_START.isoformat()]
    assert any("aum" in e for e in later)
    assert any("consent" in e and not all(e["consent"].values()) for e in later)


# ------------------------------------------------------------------------------ money


def test_balances_follow_the_postings_and_never_go_negative(
    plans: dict[str, CustomerPlan], by_customer: Callable[[str], Events]
) -> None:
    for cid, plan in plans.items():
        balance, wealth = plan.balance, plan.wealth
        for e in by_customer(cid):
            if e["type"] != "transaction":
                continue
            signed = e["amount"] if e["direction"] == "credit" else -e["amount"]
            assert e["balance_after"] == pytest.approx(balance + signed, abs=0.005), e
            assert e["balance_after"] >= 0 and e["amount"] > 0
            assert e["currency"] == "CNY" and e["account_id"] == plan.account_id
            balance = e["balance_after"]
            if e["kind"] in ("wealth_buy", "wealth_redeem"):
                wealth -= signed  # money moves between the account and the products
                assert wealth >= -0.005, e


def test_every_kind_of_posting_occurs(events: Events) -> None:
    kinds = Counter(e["kind"] for e in events if e["type"] == "transaction")
    for kind in (
        "salary",
        "purchase",
        "withdrawal",
        "fee",
        "transfer_in",
        "transfer_out",
        "wealth_buy",
        "wealth_redeem",
        "interest",
        "deposit",
    ):
        assert kinds[kind] > 0, kind
    directions = {(e["kind"], e["direction"]) for e in events if e["type"] == "transaction"}
    assert ("salary", "credit") in directions and ("wealth_buy", "debit") in directions
    assert ("transfer_out", "credit") not in directions


# ------------------------------------------------------------------------------ the app


def test_sessions_open_with_a_login_and_use_known_pages(events: Events) -> None:
    sessions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        if e["type"] == "app":
            sessions[e["session_id"]].append(e)
    assert len(sessions) > CUSTOMERS
    for steps in sessions.values():
        assert steps[0]["name"] in ("login", "login_failed")
        assert len({s["customer_id"] for s in steps}) == 1
    names = Counter(e["name"] for e in events if e["type"] == "app")
    assert {"login", "login_failed", "page_view", "logout", "complaint"} <= set(names)
    pages = {e.get("page") for e in events if e["type"] == "app"}
    assert {
        "home",
        "accounts",
        "wealth",
        "transfer",
        "account_closure",
        "product_redeem",
        "transfer_out",
    } <= pages


# ------------------------------------------------------------------------------ fates


def test_churn_outcomes_follow_a_transfer_to_another_bank(
    events: Events, epochs: list[float], plans: dict[str, CustomerPlan]
) -> None:
    first_out: dict[str, float] = {}
    churned: list[str] = []
    for e, at in zip(events, epochs, strict=True):
        if _is_other_bank_transfer_out(e):
            first_out.setdefault(e["customer_id"], at)
        if e["type"] == "outcome" and e["label"] == "churned":
            assert e["customer_id"] in first_out
            assert first_out[e["customer_id"]] < at
            churned.append(e["customer_id"])
    expected = {cid for cid, p in plans.items() if p.fate == "churn" and p.labelled_in(END)}
    assert churned and set(churned) == expected and len(churned) == len(expected)


def test_a_churn_journey_moves_most_of_the_money_and_then_goes_quiet(
    plans: dict[str, CustomerPlan], by_customer: Callable[[str], Events]
) -> None:
    journeys = [p for p in plans.values() if p.churned_at is not None and p.churned_at < END]
    assert journeys
    for plan in journeys:
        assert plan.churn_start is not None and plan.churned_at is not None
        start = plan.churn_start.timestamp()
        evs = by_customer(plan.customer_id)
        opening = next(e for e in evs if datetime.fromisoformat(e["ts"]).timestamp() >= start)
        assert opening["type"] == "app" and opening["name"] == "login"
        assert datetime.fromisoformat(opening["ts"]) == plan.churn_start
        moves = [
            e
            for e in evs
            if _is_other_bank_transfer_out(e)
            and datetime.fromisoformat(e["ts"]).timestamp() >= start
        ]
        assert 2 <= len(moves) <= 4
        assert {e["counterparty_bank"] for e in moves} == {plan.churn_bank}
        before = moves[0]["balance_after"] + moves[0]["amount"]
        assert sum(e["amount"] for e in moves) > 0.5 * before
        assert any(
            e.get("page") == "account_closure"
            for e in evs
            if datetime.fromisoformat(e["ts"]).timestamp() >= start
        )
        salaries = [e for e in evs if e["type"] == "transaction" and e["kind"] == "salary"]
        assert all(datetime.fromisoformat(e["ts"]) < plan.churn_start for e in salaries)
        assert evs[-1]["type"] == "outcome" and evs[-1]["label"] == "churned"
        assert datetime.fromisoformat(evs[-1]["ts"]) == plan.churned_at


def test_an_asset_drop_is_one_large_debit_labelled_later(
    plans: dict[str, CustomerPlan], by_customer: Callable[[str], Events]
) -> None:
    drops = [p for p in plans.values() if p.drop_at is not None and p.drop_at < END]
    assert drops
    for plan in drops:
        evs = by_customer(plan.customer_id)
        wealth = plan.wealth
        for e in evs:
            if e["type"] != "transaction":
                continue
            if datetime.fromisoformat(e["ts"]) == plan.drop_at:
                assert e["direction"] == "debit" and e["kind"] in ("withdrawal", "transfer_out")
                aum_before = e["balance_after"] + e["amount"] + wealth
                assert 0.4 * aum_before - 0.01 <= e["amount"] <= 0.8 * aum_before + 0.01
                break
            if e["kind"] == "wealth_buy":
                wealth += e["amount"]
            elif e["kind"] == "wealth_redeem":
                wealth -= e["amount"]
        else:
            pytest.fail(f"no debit at {plan.drop_at} for {plan.customer_id}")
        labels = [e for e in evs if e["type"] == "outcome" and e["label"] == "asset_drop"]
        if plan.drop_labelled_at is not None and plan.drop_labelled_at < END:
            assert [datetime.fromisoformat(e["ts"]) for e in labels] == [plan.drop_labelled_at]
        else:
            assert labels == []


def test_outcomes_are_only_planned_fates_or_contacts(
    events: Events, plans: dict[str, CustomerPlan]
) -> None:
    labels = Counter(e["label"] for e in events if e["type"] == "outcome")
    assert set(labels) <= {
        "churned",
        "asset_drop",
        "retained",
        "contacted",
        "offer_declined",
        "offer_accepted",
    }
    assert labels["retained"] > 0 and labels["contacted"] > 0
    for e in events:
        if e["type"] == "outcome" and e["label"] == "retained":
            assert plans[e["customer_id"]].fate == "scare"
        if e["type"] == "outcome" and e["label"] == "asset_drop":
            assert plans[e["customer_id"]].fate == "asset_drop"


# ------------------------------------------------------------------------------ edges


def test_another_start_zone_and_empty_runs() -> None:
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    events = list(simulate(10, 3, SEED, start=start))
    assert events[0]["ts"] == "2026-03-01T12:00:00+00:00"
    for e in events:
        parsed = parse_event(orjson.dumps(e), now=1e12, max_bytes=65536, max_future_seconds=1e12)
        assert not isinstance(parsed, InvalidEvent)
    assert list(simulate(0, 10, SEED)) == []
    assert list(simulate(10, 0, SEED)) == []
    with pytest.raises(ValueError):
        list(simulate(10, 3, SEED, start=datetime(2026, 1, 1)))


def test_the_command_writes_events_and_ground_truth(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(simulate_command)
    out, truth = tmp_path / "events.jsonl.gz", tmp_path / "truth.jsonl"
    result = CliRunner().invoke(
        app,
        [
            "--customers",
            "20",
            "--days",
            "5",
            "--seed",
            "3",
            "--out",
            str(out),
            "--truth",
            str(truth),
        ],
    )
    assert result.exit_code == 0, result.output
    assert list(read_jsonl(out)) == list(simulate(20, 5, 3))
    records = list(read_jsonl(truth))
    assert [r["customer_id"] for r in records] == [p.customer_id for p in plan_customers(20, 5, 3)]
    bad = CliRunner().invoke(app, ["--start", "2026-01-01T00:00:00", "--out", str(out)])
    assert bad.exit_code != 0
