"""Replay throughput: events per second of `vigil replay` on a simulated month, on one core.

Run by hand (not part of the test suite):

    .venv/bin/python bench/bench_replay.py                       # 1,000 customers x 30 days
    .venv/bin/python bench/bench_replay.py --customers 10000     # the full month (~1.5M events)
    .venv/bin/python bench/bench_replay.py --profile             # where the time goes

What is measured, in one process, on the same events:

- ``replay``: the whole replay as `vigil replay` runs it by default (read the file, pre-scan
  event times, the live DecisionPipeline with the in-memory twins, the models learning from the
  replayed outcomes, decisions.jsonl / alerts.jsonl written, report aggregated; report.json and
  report.html built at the end);
- ``pipeline``: the baseline — the bare DecisionPipeline with MemoryStateStore and MemorySink fed
  the same lines in the same batches, nothing written; ``replay / pipeline`` is replay's own cost.

Events per second are reported over CPU time (``time.process_time``: one core, whatever else
runs on the machine) and over wall time; each figure is the median of ``--repeat`` runs. The
events of a month depend on the day, not on how many customers live it (every customer's state
is their own), so a subset of customers over the full month gives the month's rate.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import pstats
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.clock import FixedClock  # noqa: E402
from engine.config import Settings  # noqa: E402
from engine.dead_letter import InputRecord  # noqa: E402
from engine.metrics import NoMetrics  # noqa: E402
from engine.sinks import MemorySink  # noqa: E402
from engine.wiring import build_pipeline, store_limits  # noqa: E402
from features.memory_store import MemoryStateStore  # noqa: E402
from replay.runner import (  # noqa: E402
    GcTuning,
    ReplayOptions,
    VariantRun,
    champion_variant,
    run_replay,
)
from replay.sources import event_epoch, open_file_source  # noqa: E402
from simulator import simulate, write_jsonl  # noqa: E402

PACKAGES = ("engine", "features", "rules", "actions", "online_models", "replay")


def dataset(customers: int, days: int, seed: int, cache: Path) -> Path:
    path = cache / f"bench-replay-{customers}x{days}-s{seed}.jsonl"
    if not path.exists():
        t = time.perf_counter()
        n = write_jsonl(simulate(customers, days, seed), path)
        print(f"simulated {n:,} events in {time.perf_counter() - t:.1f}s -> {path}", flush=True)
    return path


def timed(fn: Any) -> tuple[float, float]:
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def run_full(
    path: Path, out: Path, batch: int, gc_tuning: bool = True, learn: bool = True
) -> dict[str, Any]:
    run = VariantRun(champion_variant(Settings()), learn=learn)
    options = ReplayOptions(out, batch_size=batch, gc_tuning=gc_tuning)
    return asyncio.run(run_replay([open_file_source(path)], [run], options))


def run_pipeline(lines: list[bytes], batch: int) -> None:
    """The baseline: the bare pipeline, same batches, the same event-time clock and the same
    garbage-collector tuning as replay, nothing written."""
    settings = Settings()
    sink = MemorySink()
    clock = FixedClock(0.0)
    pipeline, _ = build_pipeline(
        settings,
        sink,
        store=MemoryStateStore(store_limits(settings)),
        clock=clock,
        metrics=NoMetrics(),
    )

    async def go() -> None:
        at = 0.0
        for start in range(0, len(lines), batch):
            chunk = lines[start : start + batch]
            records = [InputRecord(v, "bench", 0, start + i) for i, v in enumerate(chunk)]
            times = [t for t in map(event_epoch, chunk) if t is not None]
            at = max([at, *times])
            clock.set(at)
            await pipeline.process(records)
            sink.records.clear()
            tuning.after_batch()

    tuning = GcTuning()  # as the replay runs
    try:
        asyncio.run(go())
    finally:
        tuning.restore()


def by_package(stats: pstats.Stats) -> dict[str, float]:
    """Own (tottime) seconds per package of this repository (engine and features per module)."""
    out: dict[str, float] = defaultdict(float)
    for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        parts = Path(filename).parts
        pkg = "other (stdlib, pydantic, orjson, river, asyncio...)"
        if "site-packages" not in parts:
            for i in range(len(parts) - 1, -1, -1):
                if parts[i] in PACKAGES:
                    pkg = parts[i]
                    if pkg in ("engine", "features"):
                        pkg = f"{pkg}/{parts[-1]}"
                    break
        out[pkg] += tottime
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--customers", type=int, default=1000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="cProfile one replay run")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()))
    ap.add_argument("--compare-gc", action="store_true", help="also replay without the GC tuning")
    ap.add_argument("--compare-learn", action="store_true", help="also replay with --no-learn")
    ap.add_argument(
        "--batch-sweep", type=_ints, default=[], help="also replay with these batch sizes: 100,5000"
    )
    args = ap.parse_args()

    path = dataset(args.customers, args.days, args.seed, args.cache)
    lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    n = len(lines)
    print(f"{n:,} events, {args.customers:,} customers x {args.days} days, batch {args.batch}")

    with tempfile.TemporaryDirectory() as tmp:
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            run_full(path, Path(tmp) / "profile", args.batch)
            prof.disable()
            stats = pstats.Stats(prof)
            total = sum(v for v in by_package(stats).values())
            print("\nown time by package (cProfile, one replay):")
            for pkg, secs in by_package(stats).items():
                print(f"  {pkg:48s} {secs:7.2f}s {secs / total:6.1%}")
            buf = io.StringIO()
            stats.stream = buf  # type: ignore[attr-defined]
            stats.sort_stats("tottime").print_stats(25)
            print(buf.getvalue())
            return

        out = Path(tmp)
        todo: dict[str, Any] = {
            "pipeline": lambda: run_pipeline(lines, args.batch),
            "replay": lambda: run_full(path, out / "r", args.batch),
        }
        if args.compare_learn:
            todo["replay, no learning"] = lambda: run_full(path, out / "l", args.batch, learn=False)
        if args.compare_gc:
            todo["replay, no gc tuning"] = lambda: run_full(path, out / "g", args.batch, False)
        for b in args.batch_sweep:
            todo[f"replay, batch {b}"] = lambda b=b: run_full(path, out / f"b{b}", b)
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in todo}
        for i in range(args.repeat):
            for name, fn in todo.items():
                results[name].append(timed(fn))
            print(
                f"run {i + 1}: "
                + ", ".join(f"{k} {n / v[-1][1]:,.0f} ev/s cpu" for k, v in results.items()),
                flush=True,
            )

    print(f"\nmedian of {args.repeat} runs over {n:,} events:")
    med: dict[str, tuple[float, float]] = {}
    for name, runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        med[name] = (wall, cpu)
        print(
            f"  {name:22s} {n / cpu:9,.0f} events/s on CPU time ({cpu:.1f}s)  "
            f"{n / wall:9,.0f} events/s on wall time ({wall:.1f}s)"
        )
    base = med["pipeline"][1]
    for name, (_, cpu) in med.items():
        if name != "pipeline":
            print(f"  {name} / bare pipeline throughput (CPU): {base / cpu:.3f}")


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


if __name__ == "__main__":
    main()
