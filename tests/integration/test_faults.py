"""Crashes and restarts on the real stack: nothing lost, nothing counted twice.

Every test publishes a simulated stream to ONE input topic (a customer stays on one partition, so
the per-customer order is the file order), disturbs the worker, Redis or Kafka mid-stream, waits
until every event has a decision, and compares everything with an undisturbed in-memory run of
the same events: each customer's features, cooldowns and contacts in Redis; the set of alert and
action ids (a repeated id must carry the same content: a consumer drops it by id).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.config import Settings
from services import local
from tests.integration.faults import (
    assert_same_outputs,
    assert_same_state,
    private_stack,
    simulated,
    twin_run,
)
from tests.integration.harness import WorkerProcess, create_topics, produce, read_topic

pytestmark = pytest.mark.integration


def customers_of(lines: list[bytes]) -> set[str]:
    return {orjson.loads(line)["customer_id"] for line in lines}


async def collect(
    settings: Settings, expected_events: int, timeout: float
) -> dict[str, list[dict[str, Any]]]:
    decisions = await read_topic(
        settings, "decisions", lambda m: len({d["event_id"] for d in m}) >= expected_events, timeout
    )
    alerts = await read_topic(settings, "alerts", lambda m: False, 3)
    actions = await read_topic(settings, "actions", lambda m: False, 3)
    return {"decisions": decisions, "alerts": alerts, "actions": actions}


@pytest.fixture
def fault_settings(
    unique: str, kafka_bootstrap: str, redis_url: str, settings_for: Callable[..., Settings]
) -> Settings:
    return settings_for(
        kafka={"topic_prefix": f"ft{unique}.", "consumer_group": f"vigil-ft-{unique}"},
        redis={"key_prefix": f"ft{unique}"},
        worker={"metrics_port": 0, "batch_max": 50},
    )


async def test_worker_killed_repeatedly_mid_stream(
    fault_settings: Settings,
    env_for_settings: Callable[[Settings], dict[str, str]],
    tmp_path: Path,
    cleanup: list[Callable[[], None]],
) -> None:
    s = fault_settings
    await create_topics(s)
    lines = simulated(customers=30, days=30, seed=21)
    worker = WorkerProcess(env_for_settings(s), tmp_path / "worker.log")
    cleanup.append(worker.kill)
    await produce(
        s, ((("transactions"), orjson.loads(v)["customer_id"].encode(), v) for v in lines)
    )

    decided_before_kill: list[int] = []
    for _ in range(3):
        # each run makes some progress (at least 300 more events decided), then dies by SIGKILL
        worker.start()
        target = (decided_before_kill[-1] if decided_before_kill else 0) + 300
        seen = await read_topic(
            s, "decisions", lambda m, t=target: len({d["event_id"] for d in m}) >= t, 120
        )
        worker.kill()
        decided_before_kill.append(len({d["event_id"] for d in seen}))
    # the kills really landed mid-stream: some but not all events were decided before the last
    assert 0 < decided_before_kill[0] < decided_before_kill[-1] < len(lines), decided_before_kill
    worker.start()
    live = await collect(s, len(lines), timeout=240)
    assert worker.alive(), worker.log_tail()
    worker.stop()

    twin_sink, twin_store = await twin_run(s, lines)
    assert_same_outputs(live, twin_sink)
    await assert_same_state(s, twin_store, customers_of(lines))


@pytest.fixture
def private(tmp_path: Path, unique: str, cleanup: list[Callable[[], None]]) -> Settings:
    settings = private_stack(tmp_path, Settings(), f"pv{unique}.")
    local.up(settings, echo=lambda _: None)
    cleanup.append(lambda: local.down(settings, echo=lambda _: None))
    return settings.model_copy(
        update={"worker": settings.worker.model_copy(update={"metrics_port": 0, "batch_max": 50})}
    )


def _restart(pid_file: Path, start: Callable[[], Any], down_seconds: float) -> None:
    pid = int(pid_file.read_text().strip())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    time.sleep(down_seconds)
    start()


@pytest.mark.parametrize(("service", "seed"), [("redis", 22), ("kafka", 23)])
async def test_service_restarted_mid_stream(
    service: str,
    seed: int,
    private: Settings,
    env_for_settings: Callable[[Settings], dict[str, str]],
    tmp_path: Path,
    cleanup: list[Callable[[], None]],
) -> None:
    s = private
    lines = simulated(customers=30, days=30, seed=seed)
    worker = WorkerProcess(env_for_settings(s), tmp_path / "worker.log").start()
    cleanup.append(worker.kill)
    await produce(s, (("transactions", orjson.loads(v)["customer_id"].encode(), v) for v in lines))
    # restart once the worker is well into the stream, and check it had not finished
    progress = await read_topic(
        s, "decisions", lambda m: len({d["event_id"] for d in m}) >= 300, 120
    )
    assert len({d["event_id"] for d in progress}) < len(lines)
    layout = local.RunLayout.of(s)
    pid_file = layout.redis_pid if service == "redis" else layout.kafka_pid
    await asyncio.to_thread(_restart, pid_file, lambda: local.up(s, echo=lambda _: None), 3.0)
    if service == "kafka" and not worker.alive():
        worker.start()  # a worker that lost its broker for good may exit; a supervisor restarts it
    live = await collect(s, len(lines), timeout=240)
    if service == "redis":
        assert worker.alive(), worker.log_tail()
        assert "retrying" in worker.log.read_text(errors="replace")  # it waited for Redis
    worker.stop()
    twin_sink, twin_store = await twin_run(s, lines)
    assert_same_outputs(live, twin_sink)
    await assert_same_state(s, twin_store, customers_of(lines))
