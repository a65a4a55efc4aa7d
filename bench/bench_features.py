"""Benchmark of the feature store (run by hand; figures go to BENCHMARKS.md).

    .venv/bin/python bench/bench_features.py --customers 10000 --days 30

By default it starts a private ``redis-server`` (no persistence) on a free port so that INFO
memory and INFO commandstats see nothing but this benchmark; ``--redis-url`` uses another one
(its INFO then includes other users' traffic). It measures, on events of the simulated bank:

1. memory: INFO used_memory before and after applying ``--days`` of activity of
   ``--customers`` customers, per customer, with and without the short-lived stored results;
   the encoding of the customer hashes (OBJECT ENCODING, expected listpack);
2. round trips and Redis time: batches of ``--batch`` events applied in one pipeline each
   (EVALSHA per event), against pipelines of as many PINGs on the same connection, alternated;
   medians per event and their ratio; INFO commandstats calls and usec_per_call;
3. the in-memory twin: events per second for apply + derive on one core (median of 3 runs).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.events import InvalidEvent, parse_event
from engine.ports import StoreLimits
from engine.types import StateUpdate
from features.definitions import ops_for_dict
from features.memory_store import MemoryStateStore
from features.redis_store import RedisStateStore
from simulator.bank import simulate


def updates_for(customers: int, days: int, seed: int) -> list[StateUpdate]:
    out = []
    for doc in simulate(customers, days, seed):
        ev = parse_event(orjson.dumps(doc), now=4e9, max_bytes=65536, max_future_seconds=1e9)
        if isinstance(ev, InvalidEvent):
            raise SystemExit(f"simulator produced an invalid event: {ev}")
        out.append(StateUpdate(ev.customer_id, ev.event_id, ev.epoch, ops_for_dict(ev.__dict__)))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_private_redis() -> tuple[subprocess.Popen[bytes], str, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found: pass --redis-url")
    port = free_port()
    folder = tempfile.mkdtemp(prefix="vigil-bench-redis-")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            folder,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return proc, url, folder
        except OSError:
            time.sleep(0.05)
    proc.terminate()
    raise SystemExit("private redis-server did not start")


async def used_memory(client: aioredis.Redis) -> int:
    info = await client.info("memory")
    return int(info["used_memory"])


async def delete_matching(client: aioredis.Redis, pattern: str) -> int:
    n = 0
    batch: list[Any] = []
    async for key in client.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            n += await client.delete(*batch)
            batch = []
    if batch:
        n += await client.delete(*batch)
    return n


async def bench_memory(
    url: str, ups: list[StateUpdate], limits: StoreLimits, batch: int, prefix: str
) -> dict[str, Any]:
    client = aioredis.Redis.from_url(url)
    store = RedisStateStore(client, limits, prefix=prefix)
    customers = {u.customer_id for u in ups}
    await store.ping()
    await store.apply_raw(ups[:1], wall=time.time())  # load the scripts before measuring
    await client.delete(*[k async for k in client.scan_iter(match=f"{prefix}:*")])
    gc.collect()
    before = await used_memory(client)
    started = time.perf_counter()
    for i in range(0, len(ups), batch):
        await store.apply_raw(ups[i : i + batch], wall=time.time())
    elapsed = time.perf_counter() - started
    after_all = await used_memory(client)
    results = await delete_matching(client, f"{prefix}:*:r:*")
    after_state = await used_memory(client)
    sample = [k async for k in client.scan_iter(match=f"{prefix}:*:s", count=1000)][:200]
    encodings: dict[str, int] = {}
    usage = []
    fields = []
    for key in sample:
        enc = (await client.object("encoding", key)).decode()
        encodings[enc] = encodings.get(enc, 0) + 1
        usage.append(int(await client.memory_usage(key, samples=0)))
        fields.append(int(await client.hlen(key)))
    await delete_matching(client, f"{prefix}:*")
    await store.close()
    n = len(customers)
    return {
        "customers": n,
        "events": len(ups),
        "load_seconds": round(elapsed, 1),
        "bytes_per_customer_state": round((after_state - before) / n, 1),
        "bytes_per_customer_with_stored_results": round((after_all - before) / n, 1),
        "stored_results_at_end": results,
        "memory_usage_per_hash_median": statistics.median(usage) if usage else None,
        "fields_per_hash_median": statistics.median(fields) if fields else None,
        "fields_per_hash_max": max(fields) if fields else None,
        "encodings": encodings,
    }


async def bench_round_trips(
    url: str, ups: list[StateUpdate], limits: StoreLimits, batch: int, rounds: int, prefix: str
) -> dict[str, Any]:
    client = aioredis.Redis.from_url(url)
    store = RedisStateStore(client, limits, prefix=prefix)
    await store.apply_raw(ups[:1], wall=time.time())
    await client.config_resetstat()
    store.round_trips = 0
    per_event_apply: list[float] = []
    per_event_full: list[float] = []
    per_ping: list[float] = []
    batches = [ups[i : i + batch] for i in range(0, len(ups), batch)][: rounds * 2]
    for k, chunk in enumerate(batches):
        pipe = client.pipeline(transaction=False)
        for _ in range(len(chunk)):
            pipe.ping()
        t0 = time.perf_counter()
        await pipe.execute()
        per_ping.append((time.perf_counter() - t0) / len(chunk))
        t0 = time.perf_counter()
        if k % 2:
            await store.apply(chunk, wall=time.time())
            per_event_full.append((time.perf_counter() - t0) / len(chunk))
        else:
            await store.apply_raw(chunk, wall=time.time())
            per_event_apply.append((time.perf_counter() - t0) / len(chunk))
    stats = await client.info("commandstats")
    evalsha = stats.get("cmdstat_evalsha", {})
    ping = stats.get("cmdstat_ping", {})
    applied_batches = len(batches)
    await delete_matching(client, f"{prefix}:*")
    await store.close()
    ping_med = statistics.median(per_ping)
    apply_med = statistics.median(per_event_apply)
    return {
        "batch": batch,
        "batches": applied_batches,
        "pipelines_sent": store.round_trips,
        "round_trips_per_batch": store.round_trips / applied_batches,
        "evalsha_calls": evalsha.get("calls"),
        "events_applied": sum(len(c) for c in batches),
        "evalsha_usec_per_call": evalsha.get("usec_per_call"),
        "ping_usec_per_call": ping.get("usec_per_call"),
        "pipelined_ping_us_per_command_median": round(ping_med * 1e6, 2),
        "apply_raw_us_per_event_median": round(apply_med * 1e6, 2),
        "apply_decoded_us_per_event_median": round(statistics.median(per_event_full) * 1e6, 2),
        "ratio_apply_to_ping": round(apply_med / ping_med, 2),
        "server_ratio_evalsha_to_ping": (
            round(evalsha["usec_per_call"] / ping["usec_per_call"], 2) if evalsha and ping else None
        ),
    }


def bench_twin(ups: list[StateUpdate], limits: StoreLimits) -> dict[str, Any]:
    rates = []
    gc.collect()
    gc.freeze()
    for _ in range(3):
        store = MemoryStateStore(limits)
        t0 = time.perf_counter()
        for up in ups:
            store.apply_one(up, 0.0)
        rates.append(len(ups) / (time.perf_counter() - t0))
    gc.unfreeze()
    return {"events": len(ups), "events_per_second_median": round(statistics.median(rates))}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--dedup-horizon-hours", type=float, default=48)
    ap.add_argument("--twin-customers", type=int, default=1000)
    ap.add_argument("--redis-url", default=None)
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args()
    limits = StoreLimits(
        dedup_horizon=args.dedup_horizon_hours * 3600,
        allowed_lateness=3600,
        result_retention=600,
        ttl=120 * 86400,
    )
    proc = folder = None
    url = args.redis_url
    if url is None:
        proc, url, folder = start_private_redis()
    try:
        report: dict[str, Any] = {"limits": limits.__repr__()}
        twin_ups = updates_for(args.twin_customers, args.days, args.seed)
        report["twin"] = bench_twin(twin_ups, limits)
        print(orjson.dumps(report["twin"]).decode(), flush=True)
        report["round_trips"] = await bench_round_trips(
            url, twin_ups, limits, args.batch, args.rounds, "benchrt"
        )
        print(orjson.dumps(report["round_trips"]).decode(), flush=True)
        if not args.skip_memory:
            ups = updates_for(args.customers, args.days, args.seed)
            report["memory"] = await bench_memory(url, ups, limits, args.batch, "benchmem")
        print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
            shutil.rmtree(folder or "", ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
