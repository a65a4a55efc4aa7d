"""End-to-end benchmark: Vigil's worker against a bare aiokafka baseline, on the real Kafka/Redis.

    .venv/bin/python bench/bench_e2e.py [--rate 1000] [--seconds 20] [--burst 20000] [--only vigil]

The contenders, one after the other in the same run: the baseline, a bare Faust pass-through
(what the framework alone costs), then the Vigil worker (``--only vigil`` or ``--only faust``:
the baseline and that one). For each:

- fixed rate: a load generator publishes simulated events at --rate for --seconds; an observer
  reads the output topic; latency = time the output is readable by the observer minus the time
  the event was handed to the producer (both on this machine's clock). p50 / p99 / p99.9.
- full speed: --burst events are published first, then the contender starts; throughput = events
  / (time of the last output - time of the first output).

For the worker, the mean time per batch in each pipeline stage (validate, state, decide, commit,
emit) and the mean batch size, read from its Prometheus endpoint after the fixed-rate phase.

The baseline is a bare aiokafka consumer that decodes each event (orjson) and produces a small
reply keyed by customer_id to another topic: no features, no models, no rules. Vigil's figures
are reported as ratios to it. Everything runs on 127.0.0.1, bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.config import Settings  # noqa: E402
from services.topics import ensure_topics  # noqa: E402
from simulator.bank import simulate  # noqa: E402

BASELINE = r"""
import asyncio, sys, orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
async def main(bootstrap, source, sink, group):
    consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=True)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks="all")
    await consumer.start(); await producer.start()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=100, max_records=500)
            futures = []
            for records in batch.values():
                for r in records:
                    event = orjson.loads(r.value)
                    reply = {"event_id": event["event_id"], "sent": event.get("bench_sent_at")}
                    futures.append(await producer.send(sink, orjson.dumps(reply), key=r.key))
            if futures:
                await asyncio.gather(*futures)
    finally:
        await consumer.stop(); await producer.stop()
asyncio.run(main(*sys.argv[1:5]))
"""


# The same pass-through as BASELINE, but as a Faust agent taking batches like Vigil's: what the
# stream framework alone costs (Faust is fixed by the product owner).
FAUST = r"""
import asyncio, sys, orjson, faust
bootstrap, source, sink, group = sys.argv[1:5]
app = faust.App(group, broker=f"kafka://{bootstrap}", key_serializer="raw", value_serializer="raw",
    topic_allow_declare=False, topic_disable_leader=True, consumer_auto_offset_reset="earliest",
    producer_linger=0.0, web_enabled=False, store="memory://", datadir=f"/tmp/vigil-bench-{group}")
@app.agent(app.topic(source, key_type=bytes, value_type=bytes))
async def passthrough(stream):
    async for events in stream.take_events(200, within=0.001):
        futures = []
        for e in events:
            event = orjson.loads(e.value)
            reply = {"event_id": event["event_id"], "sent": event.get("bench_sent_at")}
            futures.append(
                await app.producer.send(sink, e.key, orjson.dumps(reply), None, None, None)
            )
        await asyncio.gather(*futures)
sys.argv = [sys.argv[0], "worker", "-l", "warn"]
app.main()
"""


def events(n: int, seed: int = 11) -> list[dict[str, Any]]:
    customers = max(50, n // 150)
    out: list[dict[str, Any]] = []
    for e in simulate(customers=customers, days=60, seed=seed):
        out.append(e)
        if len(out) >= n:
            break
    return out


async def publish(
    settings: Settings, topic: str, batch: list[dict[str, Any]], rate: float | None
) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, linger_ms=0)
    await producer.start()
    started = time.perf_counter()
    try:
        pending = []
        for i, e in enumerate(batch):
            e = {**e, "bench_sent_at": time.time()}
            pending.append(
                await producer.send(topic, orjson.dumps(e), key=e["customer_id"].encode())
            )
            if rate:
                ahead = (i + 1) / rate - (time.perf_counter() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def observe(
    settings: Settings, topic: str, expected: int, timeout: float, skip_prefix: str | None = None
) -> tuple[list[float], float, float]:
    """Latencies (seconds) of the first `expected` outputs, and first/last arrival times."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.kafka.bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    latencies: list[float] = []
    seen: set[str] = set()
    first = last = 0.0
    deadline = time.monotonic() + timeout
    try:
        while len(seen) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=100)
            now = time.time()
            for records in batch.values():
                for r in records:
                    doc = orjson.loads(r.value)
                    if doc["event_id"] in seen:
                        continue
                    seen.add(doc["event_id"])
                    sent = doc.get("sent") or (doc.get("input") or {}).get("bench_sent_at")
                    if skip_prefix and doc["event_id"].startswith(skip_prefix):
                        continue
                    if sent:
                        latencies.append(now - float(sent))
                    first = first or now
                    last = now
    finally:
        await consumer.stop()
    return latencies, first, last


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def stage_means(port: int) -> dict[str, float]:
    """Mean per batch of each pipeline stage (ms) and the mean batch size, from the worker's
    Prometheus endpoint (where a batch's ~latency goes)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r'vigil_stage_seconds_(sum|count)\{stage="(\w+)"\} (\S+)', line)
        if m:
            (sums if m[1] == "sum" else counts)[m[2]] = float(m[3])
        m = re.match(r"vigil_batch_size_(sum|count) (\S+)", line)
        if m:
            (sums if m[1] == "sum" else counts)["batch_size"] = float(m[2])
    out = {k: sums[k] / counts[k] * 1000 for k in sums if counts.get(k)}
    if "batch_size" in out:
        out["batch_size"] /= 1000
    return {k: round(v, 3) for k, v in out.items()}


def start_contender(
    kind: str, settings: Settings, group: str, metrics_port: int = 0
) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    source = settings.kafka.topic("transactions")
    if kind in ("baseline", "faust"):
        sink = settings.kafka.topic("alerts") + ".baseline"
        cmd = [
            sys.executable,
            "-c",
            BASELINE if kind == "baseline" else FAUST,
            settings.kafka.bootstrap_servers,
            source,
            sink,
            group,
        ]
    else:
        env.update(
            VIGIL_KAFKA__TOPIC_PREFIX=settings.kafka.topic_prefix,
            VIGIL_KAFKA__CONSUMER_GROUP=group,
            VIGIL_REDIS__KEY_PREFIX=settings.redis.key_prefix + group,
            VIGIL_WORKER__METRICS_PORT=str(metrics_port),
            VIGIL_LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        )
        cmd = [sys.executable, "-m", "engine.cli", "worker"]
    log = open(ROOT / ".run" / f"bench-{kind}.log", "ab")  # noqa: SIM115
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def output_topic(kind: str, settings: Settings) -> str:
    if kind in ("baseline", "faust"):
        return settings.kafka.topic("alerts") + ".baseline"
    return settings.kafka.topic("decisions")


async def run_one(
    kind: str,
    settings: Settings,
    load: list[dict[str, Any]],
    rate: float,
    burst: list[dict[str, Any]],
) -> dict[str, float]:
    source = settings.kafka.topic("transactions")
    out = output_topic(kind, settings)
    # fixed rate: contender up first, then the load
    group = f"bench-{kind}-{uuid.uuid4().hex[:6]}"
    port = free_port() if kind == "vigil" else 0
    proc = start_contender(kind, settings, group, port)
    # warm-up: measure only once the contender answers (consumer group joined, caches warm)
    warm = [{**e, "event_id": f"warm-{kind}-{i}"} for i, e in enumerate(load[:200])]
    observer = asyncio.create_task(observe(settings, out, len(warm), timeout=120))
    await publish(settings, source, warm, 100.0)
    await observer
    observer = asyncio.create_task(
        observe(settings, out, len(warm) + len(load), timeout=120, skip_prefix="warm-")
    )
    await publish(settings, source, load, rate)
    latencies, _, _ = await observer
    stages = stage_means(port) if port else {}
    proc.terminate()
    proc.wait(30)
    # full speed: backlog first (on fresh topics), then the contender
    burst_settings = settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(
                update={"topic_prefix": settings.kafka.topic_prefix + "burst."}
            )
        }
    )
    await ensure_topics(burst_settings)
    if kind in ("baseline", "faust"):
        await _create(burst_settings, output_topic(kind, burst_settings))
    await publish(burst_settings, burst_settings.kafka.topic("transactions"), burst, None)
    proc = start_contender(kind, burst_settings, group + "-burst")
    _, first, last = await observe(
        burst_settings, output_topic(kind, burst_settings), len(burst), timeout=300
    )
    proc.terminate()
    proc.wait(30)
    return {
        **{f"stage_{k}_ms" if k != "batch_size" else "mean_batch": v for k, v in stages.items()},
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "p999_ms": percentile(latencies, 0.999) * 1000,
        "measured": float(len(latencies)),
        "throughput_eps": len(burst) / (last - first) if last > first else float("nan"),
    }


async def _create(settings: Settings, topic: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        if topic not in existing:
            await admin.create_topics([NewTopic(topic, settings.kafka.partitions, 1)])
    finally:
        await admin.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--burst", type=int, default=20000)
    parser.add_argument(
        "--only", choices=("vigil", "faust"), help="run this contender and the baseline only"
    )
    args = parser.parse_args()
    run = uuid.uuid4().hex[:6]
    base = Settings()
    settings = base.model_copy(
        update={"kafka": base.kafka.model_copy(update={"topic_prefix": f"bench{run}."})}
    )
    load = events(int(args.rate * args.seconds), seed=11)
    burst = events(args.burst, seed=12)
    results = {}
    kinds = ("baseline", args.only) if args.only else ("baseline", "faust", "vigil")
    for kind in kinds:
        # each contender gets its own topics: neither sees the other's backlog
        own = settings.model_copy(
            update={
                "kafka": settings.kafka.model_copy(
                    update={"topic_prefix": f"{settings.kafka.topic_prefix}{kind}."}
                )
            }
        )
        await ensure_topics(own)
        await _create(own, output_topic("baseline", own))
        results[kind] = await run_one(kind, own, load, args.rate, burst)
        print(kind, {k: round(v, 2) for k, v in results[kind].items()}, flush=True)
    b = results["baseline"]
    f = results.get("faust") or {k: float("nan") for k in b}
    v = results.get("vigil") or {k: float("nan") for k in b}
    print(
        orjson.dumps(
            {
                "settings": {
                    "rate": args.rate,
                    "seconds": args.seconds,
                    "burst": args.burst,
                    "partitions": settings.kafka.partitions,
                    "batch_max": settings.worker.batch_max,
                    "batch_within_seconds": settings.worker.batch_within_seconds,
                },
                "baseline": b,
                "faust_passthrough": f,
                "vigil": v,
                "faust_ratios": {
                    "throughput": f["throughput_eps"] / b["throughput_eps"],
                    "p50": f["p50_ms"] / b["p50_ms"],
                    "p99": f["p99_ms"] / b["p99_ms"],
                },
                "ratios": {
                    "throughput": v["throughput_eps"] / b["throughput_eps"],
                    "p50": v["p50_ms"] / b["p50_ms"],
                    "p99": v["p99_ms"] / b["p99_ms"],
                    "p999": v["p999_ms"] / b["p999_ms"],
                },
            },
            option=orjson.OPT_INDENT_2,
        ).decode()
    )


if __name__ == "__main__":
    asyncio.run(main())
