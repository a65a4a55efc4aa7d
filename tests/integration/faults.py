"""Shared checks of the fault tests: the live outcome must equal an undisturbed in-memory run."""

from __future__ import annotations

import socket
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson

from engine.clock import FixedClock
from engine.config import KafkaSettings, RedisSettings, ServiceSettings, Settings
from engine.dead_letter import InputRecord
from engine.sinks import MemorySink
from engine.wiring import build_pipeline, redis_store, store_limits
from features.memory_store import MemoryStateStore
from simulator.bank import simulate

VOLATILE = ("decision_time",)  # the wall clock at decision: legitimately differs between runs


def simulated(customers: int, days: int, seed: int) -> list[bytes]:
    return [orjson.dumps(e) for e in simulate(customers=customers, days=days, seed=seed)]


async def twin_run(settings: Settings, lines: list[bytes]) -> tuple[MemorySink, MemoryStateStore]:
    """The same events through the same pipeline, undisturbed, with the in-memory twins."""
    sink = MemorySink()
    store = MemoryStateStore(store_limits(settings))
    pipeline, _ = build_pipeline(settings, sink, store=store, clock=FixedClock(1.9e9))
    batch = [InputRecord(v, "replay", 0, i) for i, v in enumerate(lines)]
    for start in range(0, len(batch), 200):
        await pipeline.process(batch[start : start + 200])
    return sink, store


def stable(message: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {k: v for k, v in message.items() if k not in VOLATILE}, option=orjson.OPT_SORT_KEYS
    )


def by_id(messages: list[dict[str, Any]], key: str) -> dict[str, set[bytes]]:
    """Messages grouped by their id: each id must map to exactly one content."""
    out: dict[str, set[bytes]] = defaultdict(set)
    for m in messages:
        out[m[key]].add(stable(m))
    return out


def assert_same_outputs(live: dict[str, list[dict[str, Any]]], twin: MemorySink) -> None:
    for role, key in (("alerts", "alert_id"), ("actions", "action_msg_id")):
        live_ids = by_id(live[role], key)
        twin_ids = by_id(twin.values(role), key)
        assert set(live_ids) == set(twin_ids), f"{role}: lost or extra ids"
        repeated = {k: sorted(v) for k, v in live_ids.items() if len(v) != 1}
        assert not repeated, f"{role}: a repeated id carries different content: {repeated}"
        assert live_ids == twin_ids, f"{role}: content differs from the undisturbed run"
    if live["actions"]:
        keys = {a["action_msg_id"]: a["idempotency_key"] for a in live["actions"]}
        assert all(k.startswith("d-") for k in keys.values())
    assert {d["event_id"] for d in live["decisions"]} == {
        d["event_id"] for d in twin.values("decisions")
    }


async def assert_same_state(
    settings: Settings, twin: MemoryStateStore, customers: set[str]
) -> None:
    store = redis_store(settings)
    try:
        for cid in sorted(customers):
            live = await store.read(cid)
            expected = await twin.read(cid)
            assert live is not None and expected is not None, cid
            assert live.features == expected.features, f"features of {cid} differ"
            assert live.fired == expected.fired, f"cooldowns of {cid} differ"
            assert set(live.contacts) == set(expected.contacts), f"contacts of {cid} differ"
    finally:
        await store.close()


def free_port(consecutive: int = 1) -> int:
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if all(_bindable(port + i) for i in range(consecutive)):
            return port
    raise RuntimeError("no free port on 127.0.0.1")


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def private_stack(tmp: Path, base: Settings, prefix: str) -> Settings:
    """Settings of a Kafka and Redis of this test's own, so restarting them disturbs nobody."""
    return base.model_copy(
        update={
            "kafka": KafkaSettings(
                bootstrap_servers=f"127.0.0.1:{free_port(2)}",
                partitions=base.kafka.partitions,
                topic_prefix=prefix,
                consumer_group=f"vigil-{prefix.strip('.')}",
            ),
            "redis": RedisSettings(
                url=f"redis://127.0.0.1:{free_port()}/0", key_prefix=prefix.strip(".")
            ),
            "services": ServiceSettings(
                run_dir=tmp / "run",
                cache_dir=base.services.cache_dir.resolve(),
                kafka_heap="384m",
                start_timeout_seconds=base.services.start_timeout_seconds,
            ),
        }
    )
