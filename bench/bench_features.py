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

``--memory-only`` runs part 1 alone, streamed, for the issue's scale (100,000 customers x 30 days
is about 15-16 million events, far too many to hold as a list):

    nice -n 19 .venv/bin/python bench/bench_features.py --memory-only --customers 100000 \
        --days 30 --batch 1000 --result-retention 0

Events come from ``simulator.bank.simulate`` one bank day at a time, become ``StateUpdate`` s as
in ``updates_for`` and are applied ``--batch`` to a pipeline (``RedisStateStore.apply_raw``, the
worker's path); progress (events, events/s) goes to stderr every ``--progress-seconds``. It
reports INFO used_memory before and after, per customer: with the stored results still alive
(``<prefix>:*:r:*``: only those of the last ``result_retention`` + 60 s of *wall* time, so that
figure depends on how fast the bench loads and is no property of a customer) and after deleting
them. **The figure for the issue is the state alone** (``bytes_per_customer_state``): the customer
hashes, their keys, expiries and the key tables, once the tables have shrunk back after the
deletion (the bench waits until used_memory stops moving; MEMORY STATS is in the report). Then
DBSIZE, and over ``--sample`` hashes of evenly spaced customers: OBJECT ENCODING counts, MEMORY
USAGE and HLEN medians, p99 and maxima, and the fields and listpack bytes by kind of field.

``--result-retention`` (seconds, default 600 as in the other modes) only decides whether the
script also writes each event's result key; the customer's hash is written the same either way
(the retention is read only when a duplicate is met, and the simulator sends none), so the
hashes, their MEMORY USAGE and HLEN are identical. ``--result-retention 0`` (no result keys:
faster, no expiry work, and none of the ~0.9 KB per event of the last 11 minutes, ~6 GB at
10,000 events/s) is what the 100,000-customer figure uses. It is also the cleaner state figure:
after deleting millions of result keys Redis shrinks its key tables only until they are 10 %
full, so with results the state figure keeps up to ~25 B per customer of oversized tables
(2,000 customers: 1,173 B against 1,126 B without results, same hashes). Its "with stored
results" figure then equals the state one (no result keys were written).
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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.events import InvalidEvent, parse_event
from engine.ports import StoreLimits
from engine.types import StateUpdate
from features.definitions import ops_for_dict
from features.keys import CustomerKeys
from features.memory_store import MemoryStateStore
from features.redis_store import RedisStateStore
from replay.runner import GcTuning
from simulator.bank import simulate
from simulator.plan import customer_id


def stream_updates(customers: int, days: int, seed: int) -> Iterator[StateUpdate]:
    """The simulated bank's events as the feature store receives them, in time order (streamed:
    the simulator holds one bank day at a time)."""
    for doc in simulate(customers, days, seed):
        ev = parse_event(orjson.dumps(doc), now=4e9, max_bytes=65536, max_future_seconds=1e9)
        if isinstance(ev, InvalidEvent):
            raise SystemExit(f"simulator produced an invalid event: {ev}")
        yield StateUpdate(ev.customer_id, ev.event_id, ev.epoch, ops_for_dict(ev.__dict__))


def updates_for(customers: int, days: int, seed: int) -> list[StateUpdate]:
    return list(stream_updates(customers, days, seed))


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


def percentile(values: list[int], q: float) -> int | None:
    """Nearest-rank percentile (``q`` in 0-100)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(-(-q * len(ordered) // 100)) - 1))]


def field_kind(name: bytes) -> str:
    """The kind of a customer-hash field (docs/features.md, Redis layout)."""
    head = name[:2]
    if head in (b"c:", b"f:", b"p:", b"b:"):
        return head.decode()
    first = name[:1]
    if first in (b"H", b"D", b"W", b"E"):
        return first.decode()
    return "pc" if name == b"pc" else "plain"


def _lp_int(text: bytes) -> int | None:
    """The integer a listpack would store ``text`` as (Redis' string2ll rules), or None."""
    if not text or len(text) > 20 or text == b"-" or not text.lstrip(b"-").isdigit():
        return None
    if text.startswith(b"-0") or (text.startswith(b"0") and len(text) > 1):
        return None
    value = int(text)
    return value if -(2**63) <= value < 2**63 else None


def lp_entry_bytes(text: bytes) -> int:
    """Bytes of one listpack entry (Redis 7.0 listpack.c): encoding + data + back-length."""
    value = _lp_int(text)
    if value is not None:
        if 0 <= value <= 127:
            size = 1
        elif -4096 <= value <= 4095:
            size = 2
        elif -(2**15) <= value < 2**15:
            size = 3
        elif -(2**23) <= value < 2**23:
            size = 4
        elif -(2**31) <= value < 2**31:
            size = 5
        else:
            size = 9
    else:
        n = len(text)
        size = n + (1 if n < 64 else 2 if n < 4096 else 5)
    return size + (1 if size <= 127 else 2 if size < 16383 else 3)


async def _memory_stats(client: aioredis.Redis) -> dict[str, Any]:
    raw = await client.memory_stats()  # redis-py gives a dict (db.0 nested)

    def text(x: Any) -> Any:
        return x.decode() if isinstance(x, bytes) else x

    stats = {
        text(k): ({text(a): b for a, b in v.items()} if isinstance(v, dict) else v)
        for k, v in dict(raw).items()
    }
    return stats


async def _settled_used_memory(client: aioredis.Redis, timeout: float = 60.0) -> int:
    """used_memory once it stops moving: after a mass deletion Redis shrinks its key tables
    from serverCron, a step per tick."""
    last, stable, deadline = await used_memory(client), 0, time.monotonic() + timeout
    while stable < 5 and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        now = await used_memory(client)
        stable = stable + 1 if now == last else 0
        last = now
    return last


async def sample_hashes(
    client: aioredis.Redis, prefix: str, customers: int, size: int
) -> dict[str, Any]:
    """OBJECT ENCODING, MEMORY USAGE, HLEN and the fields by kind of ``size`` customer hashes
    of evenly spaced customers (c000001, ...)."""
    step = max(1, customers // max(1, size))
    keys = [CustomerKeys(prefix, customer_id(i)).state for i in range(0, customers, step)][:size]
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.object("encoding", key)
        pipe.memory_usage(key, samples=0)
        pipe.hgetall(key)
    replies = await pipe.execute()
    encodings: dict[str, int] = {}
    usage: list[int] = []
    fields: list[int] = []
    listpack: list[int] = []
    kinds: dict[str, dict[str, int]] = {}
    per_key: list[tuple[int, str, int]] = []
    missing = 0
    for n, key in enumerate(keys):
        enc, mem, flat = replies[3 * n : 3 * n + 3]
        if enc is None:
            missing += 1
            continue
        encodings[enc.decode()] = encodings.get(enc.decode(), 0) + 1
        usage.append(int(mem))
        fields.append(len(flat))
        lp = 7  # listpack header (total bytes, count) and end byte
        for name, value in flat.items():
            cost = lp_entry_bytes(name) + lp_entry_bytes(value)
            lp += cost
            k = kinds.setdefault(field_kind(name), {"fields": 0, "listpack_bytes": 0})
            k["fields"] += 1
            k["listpack_bytes"] += cost
        listpack.append(lp)
        per_key.append((int(mem), key, len(flat)))
    got = len(usage)
    per_key.sort()

    def summary(values: list[int]) -> dict[str, Any]:
        return {
            "median": statistics.median(values) if values else None,
            "mean": round(statistics.fmean(values), 1) if values else None,
            "p99": percentile(values, 99),
            "max": max(values) if values else None,
        }

    return {
        "sampled": got,
        "missing": missing,
        "encodings": encodings,
        "memory_usage": summary(usage),
        "hlen": summary(fields),
        "listpack_bytes_estimate": summary(listpack),
        "by_kind_mean_per_hash": {
            kind: {
                "fields": round(v["fields"] / got, 2),
                "listpack_bytes": round(v["listpack_bytes"] / got, 1),
            }
            for kind, v in sorted(kinds.items(), key=lambda kv: -kv[1]["listpack_bytes"])
        }
        if got
        else {},
        "median_key": per_key[len(per_key) // 2][1] if per_key else None,
        "largest_key": per_key[-1][1] if per_key else None,
    }


async def bench_memory_stream(
    url: str,
    customers: int,
    days: int,
    seed: int,
    limits: StoreLimits,
    batch: int,
    prefix: str,
    sample: int,
    progress_seconds: float,
) -> dict[str, Any]:
    """Part 1 streamed (``--memory-only``): see the module docstring."""
    client = aioredis.Redis.from_url(url)
    store = RedisStateStore(client, limits, prefix=prefix)
    if not await store.ping():
        raise SystemExit(f"Redis at {url} does not answer")
    warm = StateUpdate("bench-warmup", "bench-warmup", 0.0, ())
    await store.apply_raw([warm], wall=time.time())  # load the scripts before measuring
    await delete_matching(client, f"{prefix}:*")
    gc.collect()
    before = await _settled_used_memory(client)
    stats_before = await _memory_stats(client)
    events = 0
    apply_seconds = 0.0
    started = last_report = time.perf_counter()
    last_events = 0

    def progress(final: bool = False) -> None:
        nonlocal last_report, last_events
        now = time.perf_counter()
        print(
            f"[memory] {'done' if final else 'at'} {events:,} events in {now - started:,.0f} s:"
            f" {events / max(now - started, 1e-9):,.0f} events/s overall,"
            f" {(events - last_events) / max(now - last_report, 1e-9):,.0f} events/s lately,"
            f" {apply_seconds / max(now - started, 1e-9):.0%} of the time in Redis round trips",
            file=sys.stderr,
            flush=True,
        )
        last_report, last_events = now, events

    chunk: list[StateUpdate] = []
    for up in stream_updates(customers, days, seed):
        chunk.append(up)
        if len(chunk) >= batch:
            t0 = time.perf_counter()
            await store.apply_raw(chunk, wall=time.time())
            apply_seconds += time.perf_counter() - t0
            events += len(chunk)
            chunk = []
            if time.perf_counter() - last_report >= progress_seconds:
                progress()
    if chunk:
        t0 = time.perf_counter()
        await store.apply_raw(chunk, wall=time.time())
        apply_seconds += time.perf_counter() - t0
        events += len(chunk)
    elapsed = time.perf_counter() - started
    progress(final=True)
    after_all = await used_memory(client)
    keys_all = int(await client.dbsize())
    results = await delete_matching(client, f"{prefix}:*:r:*")
    after_state = await _settled_used_memory(client)
    stats_after = await _memory_stats(client)
    state_keys = int(await client.dbsize())
    sampled = await sample_hashes(client, prefix, customers, sample)
    await delete_matching(client, f"{prefix}:*")
    await store.close()
    return {
        "customers": customers,
        "days": days,
        "seed": seed,
        "events": events,
        "batch": batch,
        "result_retention": limits.result_retention,
        "load_seconds": round(elapsed, 1),
        "apply_seconds": round(apply_seconds, 1),
        "events_per_second": round(events / elapsed) if elapsed else None,
        "used_memory_before": before,
        "used_memory_after_with_stored_results": after_all,
        "used_memory_after_state_only": after_state,
        "bytes_per_customer_state": round((after_state - before) / customers, 1),
        "bytes_per_customer_with_stored_results": round((after_all - before) / customers, 1),
        "keys_after_with_stored_results": keys_all,
        "stored_results_deleted": results,
        "state_keys": state_keys,
        "sample": sampled,
        "memory_stats_before": stats_before,
        "memory_stats_after_state_only": stats_after,
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


def _twin_rate(ups: list[StateUpdate], limits: StoreLimits, tuning: GcTuning | None) -> float:
    """Events/s; with ``tuning``, what survives each 1,000 events is frozen, as the replay's
    batches are."""
    store = MemoryStateStore(limits)
    t0 = time.perf_counter()
    for start in range(0, len(ups), 1000):
        for up in ups[start : start + 1000]:
            store.apply_one(up, up.ts)  # the wall clock of a replay: event time
        if tuning is not None:
            tuning.after_batch()
    return len(ups) / (time.perf_counter() - t0)


def bench_twin(ups: list[StateUpdate], limits: StoreLimits) -> dict[str, Any]:
    """Events/s of apply + read on one core, median of 3, as the replay runs the twin (its
    collector tuning, ``replay.runner.GcTuning``), and with the default collector after
    ``gc.freeze()`` only."""
    tuning = GcTuning()
    try:
        rates = [_twin_rate(ups, limits, tuning) for _ in range(3)]
    finally:
        tuning.restore()
    gc.collect()
    gc.freeze()
    try:
        default_gc = [_twin_rate(ups, limits, None) for _ in range(3)]
    finally:
        gc.unfreeze()
    return {
        "events": len(ups),
        "events_per_second_median": round(statistics.median(rates)),
        "events_per_second_median_default_gc": round(statistics.median(default_gc)),
    }


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
    ap.add_argument(
        "--memory-only",
        action="store_true",
        help="only part 1, streamed (for 100,000 customers); see the module docstring",
    )
    ap.add_argument(
        "--result-retention",
        type=float,
        default=600,
        help="seconds a stored result counts (0: none stored; the state figure is the same)",
    )
    ap.add_argument("--sample", type=int, default=1000, help="hashes sampled by --memory-only")
    ap.add_argument("--progress-seconds", type=float, default=30)
    ap.add_argument("--twin-only", action="store_true", help="only part 3 (no Redis)")
    args = ap.parse_args()
    limits = StoreLimits(
        dedup_horizon=args.dedup_horizon_hours * 3600,
        allowed_lateness=3600,
        result_retention=args.result_retention,
        ttl=120 * 86400,
    )
    if args.twin_only:
        twin = bench_twin(updates_for(args.twin_customers, args.days, args.seed), limits)
        print(orjson.dumps(twin, option=orjson.OPT_INDENT_2).decode())
        return
    proc = folder = None
    url = args.redis_url
    if url is None:
        proc, url, folder = start_private_redis()
    try:
        report: dict[str, Any] = {"limits": limits.__repr__()}
        if args.memory_only:
            report["memory"] = await bench_memory_stream(
                url,
                args.customers,
                args.days,
                args.seed,
                limits,
                args.batch,
                "benchmem",
                args.sample,
                args.progress_seconds,
            )
            print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
            return
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
