"""Arbitration plus contact-policy checks per decision, with a 50-action catalog, on one core.

Target (issue 6): at most 30 µs median per decision with 50 catalog actions.

What one timed decision does -- everything ``engine.decide`` does between the rules and the
output messages: grade the lead (``actions.routing.grade_lead``), resolve the customer's
experiments (``actions.experiments.view``: SHA-256 assignment, exposure from earlier alerts),
build the ``PolicyContext`` and run ``actions.nba.choose`` (eligibility including compiled
``eligible_when`` conditions, priorities, ranking, funnel routing, per-channel policy checks over
the contact history, the capacity reservation). Not timed: building the audit record's dicts
(``engine.decide`` does that from ``NbaOutcome.rows()``), rules and scoring (their own benches).

The ranking of a given (alert severities, tier, segment) by prior propensities is memoised on the
catalog, as in production; an untimed pass over all decisions warms it (about 2,200 distinct keys
arise from the random alerts, far more than a real rule set produces).

The inputs are generated, seeded:
- a 50-action catalog over every channel, goal and alert type, a third with an ``eligible_when``
  holding condition, some multi-channel, some limited to tiers or segments; one experiment;
- per decision: 1-3 alerts (severities weighted towards medium/high), a tier, a segment, a
  feature environment with every known name, a profile (some consents withdrawn, a few opt-outs,
  time zones in four regions or none), a contact history of 0-12 contacts over the last 30 days
  drawn with realistic channel frequencies, sometimes a recent complaint, and the bank's used
  capacity (sometimes exhausted); event times spread over a month, so quiet hours occur.

Reported: median, p90 and p99 of one decision in wall time and in the thread's CPU time (timer
overhead subtracted; on a shared machine the wall time includes waiting for a core, the CPU time
does not) from the best of ``--repeat`` passes (lowest median; every pass's median is printed),
the mean over a whole pass, and how decisions ended (chosen per layer, none).

    .venv/bin/python bench/bench_actions.py                    # 50 actions, 20,000 decisions
    .venv/bin/python bench/bench_actions.py --warm-model      # every action's model warm
    .venv/bin/python bench/bench_actions.py --actions 100 --decisions 50000

``--digest`` prints, instead of timing, a SHA-256 over every decision's full outcome (the audit
record's rows -- each candidate with its priority, propensity and source, status and stage --,
the chosen candidate, the lead, the route, the ineligible actions, the reservation): a change
meant to make arbitration faster must leave it unchanged for the same arguments.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import platform
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from actions.catalog import ActionCatalog, parse_catalog  # noqa: E402
from actions.experiments import view  # noqa: E402
from actions.nba import NbaOutcome, choose  # noqa: E402
from actions.policy import CompiledPolicy, PolicyContext, compile_policy  # noqa: E402
from actions.routing import grade_lead  # noqa: E402
from engine.config import PolicySettings  # noqa: E402
from engine.events import CHANNELS  # noqa: E402
from engine.types import Contact, Fired  # noqa: E402
from online_models.catalog import model_names  # noqa: E402
from rules.evaluator import RuleHit  # noqa: E402
from rules.names import known_names  # noqa: E402
from rules.schema import ALERT_TYPES, TIERS  # noqa: E402

GOALS = ("retain", "grow_assets", "re_engage", "service")
SEGMENTS = ("family", "young_professional", "retiree", "business_owner", "student")
# per-contact cost and a typical value scale per channel (CNY)
CHANNEL_ECONOMICS = {
    "rm_handoff": (300.0, 5000.0),
    "rm_call": (60.0, 1500.0),
    "robot_call": (2.0, 400.0),
    "sms": (0.05, 300.0),
    "push": (0.01, 120.0),
    "in_app": (0.0, 80.0),
    "email": (0.01, 60.0),
}
CONTACT_MIX = {
    "sms": 30,
    "push": 35,
    "in_app": 15,
    "email": 10,
    "robot_call": 6,
    "rm_call": 3,
    "rm_handoff": 1,
}
HOLDING_CONDITIONS = (
    "wealth_buy_90d > 0",
    "wealth_redeem_30d >= 10000",
    "salary_count_90d >= 1 and salary_count_35d == 0",
    "aum >= 100000 and aum_drop_from_peak_30d_pct >= 10",
    "transfer_out_other_bank_share_30d > 0.2 or closure_page_views_30d > 0",
    "login_count_7d_vs_prev4w < 0.5 and consent_push",
    "days_since_last_login > 14",
)
TIMEZONES = ("Asia/Shanghai", "Asia/Hong_Kong", "Europe/London", "America/New_York")
START = 1767225600.0  # 2026-01-01T00:00Z


def make_catalog(n: int, rng: random.Random) -> ActionCatalog:
    channels = list(CHANNELS)
    templates: list[dict[str, Any]] = []
    actions: list[dict[str, Any]] = []
    for i in range(n):
        first = channels[i % len(channels)]
        chans = [first]
        if first in ("sms", "push", "in_app", "email") and rng.random() < 0.4:
            chans.append(rng.choice([c for c in ("sms", "push", "in_app", "email") if c != first]))
        cost, scale = CHANNEL_ECONOMICS[first]
        action: dict[str, Any] = {
            "id": f"a{i:03d}_{first}",
            "description": f"generated action {i}",
            "goal": GOALS[i % len(GOALS)],
            "channels": chans,
            "answers": rng.sample(ALERT_TYPES, rng.randint(1, 3)),
            "value": round(scale * rng.uniform(0.5, 2.0), 2),
            "cost": cost,
            "propensity": round(rng.uniform(0.02, 0.3), 3),
            "template_id": f"t{i:03d}",
        }
        if first == "rm_handoff":
            action["tiers"] = ["affluent"]
        elif first == "rm_call" or rng.random() < 0.2:
            action["tiers"] = rng.sample(TIERS, 2)
        if rng.random() < 0.15:
            action["segments"] = rng.sample(SEGMENTS, 2)
        if rng.random() < 0.35:
            action["eligible_when"] = rng.choice(HOLDING_CONDITIONS)
        if rng.random() < 0.2:
            action["weight"] = round(rng.uniform(0.5, 2.0), 2)
        actions.append(action)
        templates.append({"id": f"t{i:03d}", "channels": chans, "text": f"message {i}"})
    experiments = [
        {
            "id": "bench_experiment",
            "description": "generated",
            "alert_types": ["churn_risk", "asset_drop"],
            "variants": [
                {"id": "control", "weight": 10, "control": True},
                {"id": "arbitration", "weight": 60},
                {
                    "id": "digital",
                    "weight": 30,
                    "actions": [a["id"] for a in actions if a["channels"][0] in ("sms", "push")],
                },
            ],
        }
    ]
    doc = {"version": 2, "templates": templates, "actions": actions, "experiments": experiments}
    return parse_catalog(doc, source="<bench>", version="bench", models=model_names())


@dataclass(frozen=True)
class Case:
    customer_id: str
    ts: float
    hits: tuple[RuleHit, ...]
    tier: str
    segment: str | None
    env: Mapping[str, Any]
    profile: Mapping[str, str]
    contacts: tuple[Contact, ...]
    days_since_complaint: float
    capacity_used: Mapping[str, int]
    fired: Mapping[str, Fired]
    scores: Mapping[str, float]


def make_cases(n: int, rng: random.Random, policy: PolicySettings) -> list[Case]:
    names = known_names(model_names())
    numeric = [k for k, t in names.items() if t == "number"]
    sev = ("low", "medium", "high", "critical")
    mix_ch, mix_w = zip(*CONTACT_MIX.items(), strict=True)
    cases = []
    for i in range(n):
        ts = START + rng.uniform(0, 30 * 86400)
        hits = tuple(
            RuleHit(
                f"rule_{k}",
                rng.choice(ALERT_TYPES),
                rng.choices(sev, (2, 5, 4, 1))[0],
                100 - k,
                "why",
                {},
            )
            for k in range(rng.choices((1, 2, 3), (6, 3, 1))[0])
        )
        env: dict[str, Any] = {k: rng.choice((0.0, 0.0, rng.uniform(0, 200000))) for k in numeric}
        env.update({k: rng.random() < 0.9 for k, t in names.items() if t == "bool"})
        tier = rng.choices(TIERS, (5, 4, 1))[0]
        env["tier"] = tier
        profile: dict[str, str] = {}
        if rng.random() < 0.8:
            profile["timezone"] = rng.choice(TIMEZONES)
        for ch in CHANNELS:
            if rng.random() < 0.08:
                profile[f"consent_{ch}"] = "0"
        if rng.random() < 0.01:
            profile["opted_out"] = "1"
        contacts = tuple(
            Contact(
                ts - rng.uniform(0, 30 * 86400), rng.choices(mix_ch, mix_w)[0], f"d{i}-{k}", f"a{k}"
            )
            for k in range(rng.choices(range(13), (20, 15, 12, 10, 9, 8, 7, 6, 5, 3, 2, 2, 1))[0])
        )
        capacity = {
            "rm_call": rng.choice((0, 120, policy.daily_capacity["rm_call"])),
            "rm_handoff": rng.choice((0, 30, policy.daily_capacity["rm_handoff"])),
        }
        fired = {
            f"rule_{k}": Fired(ts - rng.uniform(0, 60 * 86400), f"d{i}-old{k}")
            for k in range(rng.randint(0, 3))
        }
        cases.append(
            Case(
                customer_id=f"c{i}",
                ts=ts,
                hits=hits,
                tier=tier,
                segment=rng.choice((*SEGMENTS, None)),
                env=env,
                profile=profile,
                contacts=contacts,
                days_since_complaint=rng.choice((9999.0,) * 30 + (3.0,)),
                capacity_used=capacity,
                fired=fired,
                scores={"churn_risk": rng.random()} if rng.random() < 0.5 else {},
            )
        )
    return cases


def arbitrate(
    case: Case,
    catalog: ActionCatalog,
    policy: CompiledPolicy,
    rule_types: Mapping[str, str],
    propensities: Mapping[str, tuple[float, bool]] | None = None,
) -> NbaOutcome:
    """What engine.decide does between the rules and the messages, for one decision."""
    hits = case.hits
    decision_id = f"d-{case.customer_id}"
    experiments = view(
        catalog,
        case.customer_id,
        case.ts,
        [h.alert_type for h in hits],
        case.fired,
        rule_types,
        decision_id,
    )
    lead = grade_lead(
        [(h.rule_id, h.severity) for h in hits],
        case.scores,
        high=policy.lead_high,
        mid=policy.lead_mid,
    )
    return choose(
        hits,
        tier=case.tier,
        segment=case.segment,
        env=case.env,
        catalog=catalog,
        policy=policy,
        ctx=PolicyContext(
            case.ts,
            case.profile,
            case.contacts,
            case.days_since_complaint,
            decision_id,
            case.capacity_used,
        ),
        lead=lead,
        propensities=propensities,
        experiment=experiments,
    )


def outcome_record(out: NbaOutcome) -> bytes:
    """One decision's outcome, everything the audit record takes from it, as bytes."""
    chosen, lead = out.chosen, out.lead
    return orjson.dumps(
        {
            "chosen": None if chosen is None else [*chosen[:3], chosen.action.id, *chosen[4:]],
            "lead": None if lead is None else [lead.score, lead.grade, list(lead.evidence)],
            "route": [[s.layer, s.result, list(s.reasons)] for s in out.route],
            "ineligible": [list(i) for i in out.ineligible],
            "reservation": None if out.reservation is None else list(out.reservation),
            "rows": [[*c[:3], c[3].id, c[4], c[5], *verdict] for c, verdict in out.rows()],
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--actions", type=int, default=50)
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=5, help="passes; the best median is kept")
    parser.add_argument(
        "--warm-model",
        action="store_true",
        help="a warm offer_response propensity for every action (re-ranked per decision)",
    )
    parser.add_argument(
        "--digest",
        action="store_true",
        help="print a SHA-256 of every decision's full outcome instead of timing",
    )
    args = parser.parse_args()
    rng = random.Random(args.seed)
    settings = PolicySettings()
    policy = compile_policy(settings)
    catalog = make_catalog(args.actions, rng)
    cases = make_cases(args.decisions, rng, settings)
    rule_types = {f"rule_{k}": ALERT_TYPES[k % len(ALERT_TYPES)] for k in range(4)}
    props = (
        {a.id: (round(rng.uniform(0.01, 0.4), 3), False) for a in catalog.actions}
        if args.warm_model
        else None
    )

    if args.digest:
        digest = hashlib.sha256()
        for case in cases:
            digest.update(outcome_record(arbitrate(case, catalog, policy, rule_types, props)))
        print(f"outcome digest of {len(cases)} decisions: {digest.hexdigest()}")
        return
    for case in cases:  # warm the caches (ranking plans, zoneinfo, local hours)
        arbitrate(case, catalog, policy, rule_types, props)
    wall, cpu = time.perf_counter_ns, time.thread_time_ns
    wall_overhead = statistics.median([-(wall() - wall()) for _ in range(20_000)])
    cpu_overhead = statistics.median([-(cpu() - cpu()) for _ in range(20_000)])
    gc.collect()
    gc.freeze()
    gc.disable()
    # Several passes over the same decisions; the pass with the lowest median is reported (as
    # timeit reports its best repeat): other processes on a shared machine only ever add time.
    passes: list[tuple[list[float], list[float]]] = []
    outcomes: Counter[str] = Counter()
    for n in range(args.repeat):
        times: list[float] = []
        cpu_times: list[float] = []
        for case in cases:
            c0 = cpu()
            t0 = wall()
            out = arbitrate(case, catalog, policy, rule_types, props)
            t1 = wall()
            c1 = cpu()
            times.append((t1 - t0 - wall_overhead) / 1000.0)
            cpu_times.append((c1 - c0 - cpu_overhead - wall_overhead) / 1000.0)
            if n == 0:
                outcomes[out.chosen.layer if out.chosen else "none"] += 1
        passes.append((times, cpu_times))
    medians = [statistics.median(t) for t, _ in passes]
    times, cpu_times = passes[medians.index(min(medians))]
    t0 = wall()
    for case in cases:
        arbitrate(case, catalog, policy, rule_types, props)
    mean_pass = (wall() - t0) / 1000.0 / len(cases)
    gc.enable()

    times.sort()
    q = statistics.quantiles(times, n=100)
    per_decision = [
        len(arbitrate(c, catalog, policy, rule_types, props).candidates) for c in cases[:2000]
    ]
    print(
        f"python {platform.python_version()} on {platform.machine()}; "
        f"{args.actions} actions, {len(cases)} decisions, seed {args.seed}, "
        f"propensities: {'warm offer_response model' if props else 'catalog priors'}"
    )
    print(
        f"candidates per decision: median {statistics.median(per_decision):.0f}, "
        f"max {max(per_decision)}"
    )
    print(f"outcomes: {dict(sorted(outcomes.items()))}")
    qc = statistics.quantiles(cpu_times, n=100)
    print(f"pass medians (wall): {', '.join(f'{m:.1f}' for m in medians)} µs; best pass reported")
    print(
        f"arbitration + policy per decision, wall: median {statistics.median(times):.1f} µs, "
        f"p90 {q[89]:.1f} µs, p99 {q[98]:.1f} µs; mean over a pass {mean_pass:.1f} µs"
    )
    print(
        f"arbitration + policy per decision, thread CPU time: median "
        f"{statistics.median(cpu_times):.1f} µs, p90 {qc[89]:.1f} µs, p99 {qc[98]:.1f} µs"
    )
    print(
        f"load average while running: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores "
        "(wall time includes waiting for a core on a shared machine; CPU time does not)"
    )
    verdict = "PASS" if statistics.median(times) <= 30.0 else "FAIL"
    print(f"target: median <= 30 µs with {args.actions} actions: {verdict}")


if __name__ == "__main__":
    main()
