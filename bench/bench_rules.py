"""Rule evaluation cost: 100 realistic rules evaluated per event, on one core.

Target (issue 5): at most 20 µs median per event for 100 rules.

The rules are generated (seeded) over the real feature names, in the shapes the default rule
set uses: thresholds on drops and shares, ratios with arithmetic, event-field matches with
``in`` lists, model scores with their cold flag, functions (``pct_change``, ``max``,
``days_since``), scopes by tier and segment, suppressions. The environments are real: a
simulated bank (``simulator.simulate``) is run through the in-memory feature store, and each
decision's environment is built exactly as ``engine.decide`` builds it (features, scores, event
and profile fields). Thresholds are drawn from the observed feature distributions, so a few
rules fire, as in production.

Reported: the median and p99 of the time of one ``RuleSet.evaluate`` call (timer overhead
subtracted), and the mean over a whole pass, per event.

    .venv/bin/python bench/bench_rules.py                  # 100 rules, ~6,000 events
    .venv/bin/python bench/bench_rules.py --rules 200 --customers 600 --days 90
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.config import Settings  # noqa: E402
from engine.events import InvalidEvent, event_to_dict, parse_event  # noqa: E402
from engine.ports import StoreLimits  # noqa: E402
from engine.types import StateUpdate  # noqa: E402
from features.definitions import feature_names, ops_for_dict  # noqa: E402
from features.memory_store import MemoryStateStore  # noqa: E402
from online_models.catalog import model_names  # noqa: E402
from rules.evaluator import RuleSet  # noqa: E402
from rules.loader import load_rules  # noqa: E402
from rules.names import event_env, feature_types, profile_env  # noqa: E402
from simulator import simulate  # noqa: E402

Env = dict[str, Any]


def realistic_envs(customers: int, days: int, seed: int) -> list[tuple[Env, str, str | None]]:
    """(env, tier, segment) per non-outcome event of a simulated bank, after a warm-up week."""
    w = Settings().worker
    store = MemoryStateStore(
        StoreLimits(
            dedup_horizon=float(w.dedup_horizon_seconds),
            allowed_lateness=float(w.allowed_lateness_seconds),
            ttl=w.state_ttl_seconds,
        )
    )
    rng = random.Random(seed)
    models = model_names()
    out: list[tuple[Env, str, str | None]] = []
    start: float | None = None
    for raw in simulate(customers=customers, days=days, seed=seed):
        event = parse_event(orjson.dumps(raw), now=4e9, max_bytes=1 << 20, max_future_seconds=1e10)
        if isinstance(event, InvalidEvent):
            continue
        start = event.epoch if start is None else start
        update = StateUpdate(
            event.customer_id, event.event_id, event.epoch, ops_for_dict(event.__dict__)
        )
        state = store.apply_one(update, wall=event.epoch)
        if event.type == "outcome" or event.epoch - start < 7 * 86400:
            continue
        env: Env = dict(state.features)
        for m in models:  # scores as a warm model gives them: mostly low, a tail of high ones
            env[f"score_{m}"] = min(rng.betavariate(1.2, 8.0), 1.0)
            env[f"cold_{m}"] = rng.random() < 0.05
        env.update(event_env(event_to_dict(event), ts=event.epoch))
        env.update(profile_env(state.profile))
        out.append((env, str(state.features["tier"]), state.profile.get("segment")))
    return out


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def generate_rules(n: int, envs: Sequence[tuple[Env, str, str | None]], seed: int) -> str:
    """``n`` rules in the default set's shapes, thresholds at high quantiles of real values."""
    rng = random.Random(seed)
    numeric = [k for k, t in feature_types().items() if t == "number"]
    sample = [e for e, _, _ in envs[:: max(len(envs) // 2000, 1)]]

    def hi(name: str, lo: float = 0.95, up: float = 0.999) -> float:
        """A high quantile of the values a feature takes when it is not zero."""
        values = [float(e[name]) for e in sample if float(e[name]) > 0]
        if len(values) < 20:
            return 1e6
        return round(quantile(values, rng.uniform(lo, up)), 4)

    pages = ["account_closure", "transfer_out", "product_redeem", "product_maturity"]
    segments = sorted({s for _, _, s in envs if s}) or ["family"]
    shapes = [
        lambda: (
            f"aum_drop_from_peak_30d_pct >= {rng.choice([20, 25, 30, 40, 50])}"
            f" and aum_peak_30d >= {rng.choice([20000, 50000, 100000])}"
        ),
        lambda: (
            f"transfer_out_other_bank_share_7d > {rng.choice([0.3, 0.5, 0.7])}"
            f" and transfer_out_other_bank_7d >= {rng.choice([10000, 20000, 50000])}"
        ),
        lambda: (
            f"event_type == 'app' and event_page in {sorted(rng.sample(pages, rng.randint(1, 3)))}"
        ),
        lambda: (lambda m: f"score_{m} >= {rng.choice([0.6, 0.7, 0.8, 0.9])} and not cold_{m}")(
            rng.choice(model_names())
        ),
        lambda: (
            "salary_count_35d == 0 and salary_count_90d >= 1"
            f" and login_count_7d_vs_prev4w < {rng.choice([0.3, 0.5])}"
        ),
        lambda: (
            f"{(a := rng.choice(numeric))} > {rng.choice([0.5, 1.0, 2.0])} * "
            f"coalesce({rng.choice(numeric)}, 0) and {a} > {hi(a)}"
        ),
        lambda: (
            f"pct_change(aum_7d_ago, aum) <= -{rng.choice([20, 30, 40])} and aum_7d_ago >= 50000"
        ),
        lambda: (
            f"days_since_last_login > {rng.choice([14, 21, 30])}"
            f" and tx_count_30d < {rng.choice([2, 4, 8])}"
        ),
        lambda: f"max(outflow_24h, outflow_7d / 7) > {hi('outflow_7d')}",
        lambda: (
            "event_kind == 'transfer_out' and event_amount >= "
            f"{rng.choice([10000, 50000])} and event_counterparty_bank not in ['', 'SELF']"
        ),
        lambda: (
            f"{(a := rng.choice(numeric))} > {hi(a)} and {(b := rng.choice(numeric))} > "
            f"{hi(b, 0.5, 0.9)}"
        ),
        lambda: (
            f"{(a := rng.choice(numeric))} > {hi(a)}"
            f" or {(b := rng.choice(numeric))} > {hi(b, 0.99, 0.9999)}"
        ),
        lambda: (
            f"wealth_redeem_30d - wealth_redeem_7d >= {rng.choice([20000, 50000])}"
            " and wealth_buy_30d < 0.5 * wealth_redeem_30d"
        ),
        lambda: (
            f"complaint_count_90d >= {rng.choice([1, 2, 3])} and days_since_last_complaint < 30"
        ),
    ]
    lines = ["version: 1", "rules:"]
    for i in range(n):
        when = rng.choice(shapes)()
        tiers = rng.choice([["basic", "affluent"], ["long_tail", "basic", "affluent"], ["basic"]])
        scope = f"{{tiers: {tiers}}}"
        if rng.random() < 0.1:
            scope = f"{{tiers: {tiers}, segments: [{rng.choice(segments)}]}}"
        lines += [
            f"  - id: rule_{i:03d}",
            f"    description: generated rule {i}",
            f"    alert_type: {rng.choice(['churn_risk', 'asset_drop'])}",
            f"    severity: {rng.choice(['low', 'medium', 'high'])}",
            f"    scope: {scope}",
            f'    when: "{when}"',
            f"    priority: {rng.randint(1, 100)}",
            "    cooldown: 7d",
            *(["    suppress: [opted_out]"] if rng.random() < 0.3 else []),
            f'    reason: "rule {i}: {{aum:,.0f}} AUM, tier {{tier}}"',
        ]
    return "\n".join(lines) + "\n"


def timer_overhead() -> float:
    clock = time.perf_counter_ns
    samples = []
    for _ in range(20000):
        a = clock()
        samples.append(clock() - a)
    return statistics.median(samples) / 1e3


def measure(
    ruleset: RuleSet, envs: Sequence[tuple[Env, str, str | None]], rounds: int
) -> dict[str, float]:
    clock = time.perf_counter_ns
    evaluate = ruleset.evaluate
    fired: Mapping[str, Any] = {}
    per_event: list[float] = []
    pass_means: list[float] = []
    hits = 0
    for _ in range(rounds):
        t_pass = clock()
        for env, tier, segment in envs:
            t0 = clock()
            out = evaluate(env, tier=tier, segment=segment, fired=fired, ts=0.0, decision_id="d")
            per_event.append((clock() - t0) / 1e3)
            hits += len(out.hits)
        pass_means.append((clock() - t_pass) / 1e3 / len(envs))
    overhead = timer_overhead()
    return {
        "median_us": statistics.median(per_event) - overhead,
        "p99_us": quantile(per_event, 0.99) - overhead,
        "pass_mean_us": statistics.median(pass_means),
        "hits_per_event": hits / (rounds * len(envs)),
    }


def baseline_evaluate(ruleset: RuleSet) -> Any:
    """The same rules through their plain compiled closures, scope checked per rule: the
    straightforward evaluator (no guards, no cost ordering, no scope cache), for the ratio."""
    rules = ruleset.ordered

    def evaluate(env: Env, *, tier: str, segment: str | None, **_: Any) -> list[str]:
        out = []
        for rule in rules:
            spec = rule.spec
            if tier not in spec.scope.tiers:
                continue
            if spec.scope.segments and segment not in spec.scope.segments:
                continue
            try:
                if rule.when.evaluate(env):
                    out.append(rule.id)
            except Exception:
                continue
        return out

    return evaluate


def measure_baseline(
    ruleset: RuleSet, envs: Sequence[tuple[Env, str, str | None]], rounds: int
) -> float:
    clock = time.perf_counter_ns
    evaluate = baseline_evaluate(ruleset)
    per_event: list[float] = []
    for _ in range(rounds):
        for env, tier, segment in envs:
            t0 = clock()
            evaluate(env, tier=tier, segment=segment)
            per_event.append((clock() - t0) / 1e3)
    return statistics.median(per_event) - timer_overhead()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rules", type=int, default=100)
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--days", type=int, default=45)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    t = time.perf_counter()
    envs = realistic_envs(args.customers, args.days, args.seed)
    built = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "generated.yaml").write_text(generate_rules(args.rules, envs, args.seed))
        t = time.perf_counter()
        ruleset = load_rules(Path(tmp), model_names())
        load_ms = (time.perf_counter() - t) * 1e3
    default = load_rules(ROOT / "rules" / "default", model_names())
    gc.collect()
    gc.freeze()  # as the worker does after start-up: no collector pauses inside the timing
    print(f"python {platform.python_version()} on {platform.machine()}, one core")
    print(
        f"{len(envs)} events from {args.customers} simulated customers over {args.days} days "
        f"({built:.1f} s to build); {len(feature_names())} features"
    )
    print(f"{len(ruleset.rules)} generated rules loaded in {load_ms:.0f} ms")
    for label, rs in (
        (f"{len(ruleset.rules)} generated rules", ruleset),
        (f"default set ({len(default.rules)} rules)", default),
    ):
        r = measure(rs, envs, args.rounds)
        print(
            f"{label:>28}: median {r['median_us']:.2f} µs/event, p99 {r['p99_us']:.2f} µs, "
            f"pass mean {r['pass_mean_us']:.2f} µs, {r['hits_per_event']:.3f} hits/event"
        )
    base = measure_baseline(ruleset, envs, args.rounds)
    r = measure(ruleset, envs, args.rounds)
    print(
        f"{'plain closures (baseline)':>28}: median {base:.2f} µs/event; the evaluator is "
        f"{base / r['median_us']:.1f}x faster (guards + cost order + scope cache)"
    )
    verdict = "PASS" if r["median_us"] <= 20.0 else "FAIL"
    print(f"target: 100 rules <= 20 µs median per event -> {verdict} ({r['median_us']:.2f} µs)")


if __name__ == "__main__":
    main()
