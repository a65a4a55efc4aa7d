"""Online models: cost per event, and how well the churn model learns the simulated bank.

Targets (issue 4):
- default models: score + learn at most 50 µs median per event per model, one core;
- on the simulator's stream, the churn model's progressive ROC AUC is at least 0.80 after its
  first 30 days.

How (the way replay runs): a simulated bank (``simulator.simulate`` + its ground truth) is fed
in batches of ``InputRecord`` to the real pipeline's in-memory path (``build_pipeline`` with
``MemoryStateStore``, ``MemorySink`` and a ``FixedClock`` at the batch's event time), scored by
the learner's own models (``Learner.scorer()``); after each batch the decision records are taken
from the sink and given to the ``Learner``. Every label judges the prediction made when its
snapshot was taken (progressive validation on delayed labels). "After its first 30 days":
predictions made at least 30 days of event time after the stream starts.

Timing: the decision features of that run, each model warm (``min_examples`` 0): one score
(``LiveModel.score`` on the decision's features) plus one learn (``LiveModel.learn``), timed per
event, median and p99; beside it the bare River calls on the same dicts (the baseline: our
layer's overhead is the ratio). Also the learner's cost per decision record.

    .venv/bin/python bench/bench_models.py                          # 1000 customers, 90 days
    .venv/bin/python bench/bench_models.py --customers 300 --days 60
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import platform
import statistics
import sys
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.clock import FixedClock  # noqa: E402
from engine.config import Settings  # noqa: E402
from engine.dead_letter import InputRecord  # noqa: E402
from engine.sinks import MemorySink  # noqa: E402
from engine.wiring import build_pipeline, store_limits  # noqa: E402
from features.memory_store import MemoryStateStore  # noqa: E402
from online_models.catalog import build_catalog  # noqa: E402
from online_models.health import roc_auc  # noqa: E402
from online_models.learner import LabelledExample, Learner, LearnerConfig  # noqa: E402
from online_models.scorer import LiveModel  # noqa: E402
from online_models.settings import ModelSettings  # noqa: E402
from simulator import simulate  # noqa: E402
from simulator.plan import plan_customers  # noqa: E402

DAY = 86400.0


def epoch(ts: str) -> float:
    return datetime.fromisoformat(ts).timestamp()


async def run_stream(
    customers: int, days: int, seed: int, batch: int
) -> tuple[Learner, list[LabelledExample], list[dict[str, Any]], float, dict[str, float]]:
    settings = Settings()
    examples: list[LabelledExample] = []
    learner = Learner(
        LearnerConfig.from_settings(ModelSettings(), settings.model_seed),
        build_catalog(),
        listener=examples.append,
    )
    # For the record: the same decisions labelled with positive window = horizon (30 days),
    # by a learner that makes its own predictions (it serves nothing).
    plain = Learner(
        LearnerConfig.from_settings(ModelSettings(positive_window_days=30.0), settings.model_seed),
        build_catalog(),
        listener=lambda e: examples.append(replace(e, model="plain:" + e.model)),
    )
    sink = MemorySink()
    clock = FixedClock(0.0)
    pipeline, _ = build_pipeline(
        settings,
        sink,
        store=MemoryStateStore(store_limits(settings)),
        clock=clock,
        scorer=learner.scorer(),
    )
    kept: list[dict[str, Any]] = []
    records: list[InputRecord] = []
    start: float | None = None
    timing = {"pipeline": 0.0, "learner": 0.0, "events": 0.0}

    async def flush(at: float) -> None:
        clock.set(at + 1.0)
        t0 = time.perf_counter()
        await pipeline.process(records)
        t1 = time.perf_counter()
        decisions = sink.values("decisions")
        learner.observe(decisions)
        timing["learner"] += time.perf_counter() - t1
        timing["pipeline"] += t1 - t0
        plain.observe({k: v for k, v in d.items() if k != "scores"} for d in decisions)
        timing["events"] += len(records)
        if len(kept) < 30_000:
            kept.extend(d for d in decisions if d["event_type"] != "outcome")
        sink.records.clear()
        records.clear()

    ts = 0.0
    for n, event in enumerate(simulate(customers, days, seed)):
        ts = epoch(event["ts"])
        start = ts if start is None else start
        records.append(InputRecord(orjson.dumps(event), "bench", 0, n))
        if len(records) >= batch:
            await flush(ts)
    if records:
        await flush(ts)
    return learner, examples, kept, start or 0.0, timing


def time_models(features: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Median and p99 µs of score + learn per event, per default model, warm; and bare River."""
    out: dict[str, dict[str, float]] = {}
    catalog = build_catalog(min_examples={"churn_risk": 0, "asset_drop": 0, "offer_response": 0})
    specs = [*catalog.specs(), catalog.offer_spec()]
    perf = time.perf_counter_ns
    empty = [perf() - perf() for _ in range(2000)]
    overhead = -statistics.median(empty)
    for spec in specs:
        assert spec is not None
        live = LiveModel(spec, spec.build(7))
        warm, timed = features[:2000], features[2000:]
        for i, f in enumerate(warm):
            live.learn(live.inputs(f), i % 7 == 0)
        ours: list[float] = []
        bare: list[float] = []
        model = live.model
        gc.disable()
        for i, f in enumerate(timed):
            y = i % 7 == 0
            t0 = perf()
            live.score(f)
            live.learn(live.inputs(f), y)
            ours.append(perf() - t0 - overhead)
            x = {k: float(f.get(k) or 0.0) for k in spec.inputs}  # bare: a ready dict
            t0 = perf()
            if spec.kind == "classifier":
                model.predict_proba_one(x)
                model.learn_one(x, y)
            else:
                model.score_one(x)
                model.learn_one(x)
            bare.append(perf() - t0 - overhead)
        gc.enable()
        ours.sort()
        bare.sort()
        med, bmed = statistics.median(ours) / 1e3, statistics.median(bare) / 1e3
        out[spec.name] = {
            "median_us": med,
            "p99_us": ours[int(len(ours) * 0.99)] / 1e3,
            "river_median_us": bmed,
            "ratio_to_river": med / bmed,
            "events": len(ours),
        }
    return out


def time_learner(records: list[dict[str, Any]]) -> float:
    """Median µs of ``Learner.observe_decision`` per decision record (scores in the records)."""
    learner = Learner(LearnerConfig(), build_catalog())
    perf = time.perf_counter_ns
    times = []
    gc.disable()
    for r in records:
        t0 = perf()
        learner.observe_decision(r)
        times.append(perf() - t0)
    gc.enable()
    return statistics.median(times) / 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    print(f"python {platform.python_version()} on {platform.machine()}, one core")
    wall = time.perf_counter()
    learner, examples, kept, start, timing = asyncio.run(
        run_stream(args.customers, args.days, args.seed, args.batch)
    )
    wall = time.perf_counter() - wall
    plans = plan_customers(args.customers, args.days, args.seed)
    churners = sum(p.fate == "churn" for p in plans)
    print(
        f"\nstream: {args.customers} customers x {args.days} days (seed {args.seed}), "
        f"{int(timing['events'])} events, {churners} churn journeys; {wall:.0f}s "
        f"(pipeline {timing['pipeline']:.0f}s, learner {timing['learner']:.1f}s = "
        f"{timing['learner'] / timing['events'] * 1e6:.1f} µs/event)"
    )
    health = learner.health()
    for name in ("churn_risk", "asset_drop", "offer_response", "plain:churn_risk"):
        judged = [e for e in examples if e.model == name]
        after = [(e.y, e.p) for e in judged if e.ts >= start + 30 * DAY]
        m = health["models"].get(name, {})
        print(
            f"  {name:17s} progressive ROC AUC after day 30: {roc_auc(after):.3f} "
            f"({len(after)} labels, {sum(y for y, _ in after)} positive); whole stream "
            f"{roc_auc((e.y, e.p) for e in judged):.3f}; rolling {m.get('roc_auc')}; "
            f"log loss {m.get('log_loss')}; examples {m.get('examples')}; "
            f"drifts {m.get('drifts')}"
        )
    print(f"  counts: {health['counts']}")
    print("  (plain:churn_risk = the same decisions with positive window = horizon = 30 days)")

    features = [r["features"] for r in kept]
    print(f"\nscore + learn per event, warm, {len(features) - 2000} events:")
    for name, t in time_models(features).items():
        print(
            f"  {name:15s} median {t['median_us']:6.1f} µs  p99 {t['p99_us']:6.1f} µs  "
            f"(bare River {t['river_median_us']:5.1f} µs, ratio {t['ratio_to_river']:.2f})"
        )
    print(f"\nlearner per decision record (median): {time_learner(kept):.1f} µs")


if __name__ == "__main__":
    main()
