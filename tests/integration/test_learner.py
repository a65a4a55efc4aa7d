"""The learner and a worker as real processes on the real Kafka and Redis: outcomes published ->
the learner learns -> it publishes a snapshot -> the worker hot-swaps it (a later decision is
scored by the warm model); a second learner stands by until the first stops, then takes over
and restores the last snapshot; a learner that loses its lease stops (status 3); a corrupt
snapshot is refused and the previous model keeps serving."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from engine.config import Settings
from online_models.snapshots import read_header
from tests.integration.harness import (
    ROOT,
    WorkerProcess,
    create_topics,
    event_bytes,
    produce,
    read_topic,
    topic_role,
)

pytestmark = pytest.mark.integration

MODEL_ENV = {
    "VIGIL_MODELS__SNAPSHOT_SECONDS": "1",
    "VIGIL_MODELS__POLL_SECONDS": "0.5",
    "VIGIL_MODELS__MIN_EXAMPLES": '{"churn_risk": 4}',
    "VIGIL_MODELS__LEARNER_METRICS_PORT": "0",
    "VIGIL_MODELS__LEARNER_BATCH_WITHIN_SECONDS": "0.05",
    "VIGIL_MODELS__LEARNER_LEASE_SECONDS": "6",
}


class LearnerProcess(WorkerProcess):
    """`python -m streams.learner` (what `vigil learner` runs) in a subprocess."""

    def start(self) -> LearnerProcess:
        fh = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.learner"],
            cwd=ROOT,
            env=self.env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        fh.close()
        return self


def tx(cid: str, n: int, day: int, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": f"{cid}-t{n}",
        "type": "transaction",
        "customer_id": cid,
        "account_id": f"{cid}-a",
        "ts": f"2026-01-{day:02d}T10:{n % 60:02d}:00+08:00",
        "amount": 1000.0,
        "currency": "CNY",
        "direction": "debit",
        "kind": "transfer_out",
        "channel": "mobile",
        "counterparty_bank": "ICBC",
        "balance_after": 5000.0,
        **extra,
    }


def out(cid: str, label: str, day: int) -> dict[str, Any]:
    return {
        "event_id": f"{cid}-o-{label}",
        "type": "outcome",
        "customer_id": cid,
        "ts": f"2026-01-{day:02d}T12:00:00+08:00",
        "label": label,
    }


def keyed(events: list[dict[str, Any]]) -> list[tuple[str, bytes, bytes]]:
    return [(topic_role(e), e["customer_id"].encode(), event_bytes(e)) for e in events]


@pytest.fixture
def model_settings_(
    unique: str, kafka_bootstrap: str, redis_url: str, settings_for: Callable[..., Settings]
) -> Settings:
    return settings_for(
        kafka={"topic_prefix": f"ml{unique}.", "consumer_group": f"vigil-ml-{unique}"},
        redis={"key_prefix": f"ml{unique}"},
        worker={"metrics_port": 0, "batch_max": 50},
    )


@pytest.fixture
def sync_redis(redis_url: str, model_settings_: Settings) -> Any:
    client = redis.Redis.from_url(redis_url)
    yield client
    keys = list(client.scan_iter(match=f"{model_settings_.redis.key_prefix}:*"))
    if keys:
        client.delete(*keys)


async def wait_for(check: Callable[[], Any], timeout: float, what: str, *procs: Any) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        await asyncio.sleep(0.2)
    tails = "\n".join(p.log_tail(30) for p in procs)
    raise AssertionError(f"timed out waiting for {what}\n{tails}")


async def probe(s: Settings, n: int) -> dict[str, Any]:
    """Decide one event of a new customer and return its decision record."""
    cid = f"probe{n}"
    await produce(s, keyed([tx(cid, 1, 20)]))
    found = await read_topic(
        s, "decisions", lambda m: any(d["customer_id"] == cid for d in m), timeout=20
    )
    return next(d for d in found if d["customer_id"] == cid)


async def test_outcomes_teach_the_learner_and_workers_hot_swap_its_snapshots(
    model_settings_: Settings,
    env_for_settings: Callable[[Settings], dict[str, str]],
    sync_redis: Any,
    tmp_path: Path,
    cleanup: list[Callable[[], None]],
) -> None:
    s = model_settings_
    env = env_for_settings(s) | MODEL_ENV
    prefix = s.redis.key_prefix
    await create_topics(s)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    cleanup.append(worker.kill)
    learner = LearnerProcess(env, tmp_path / "learner.log").start()
    cleanup.append(learner.kill)

    def number(name: str) -> int:
        raw = sync_redis.hget(f"{prefix}:{{models}}:numbers", name)
        return int(raw) if raw else 0

    def examples(name: str) -> int:
        blob = sync_redis.hget(f"{prefix}:{{models}}:snapshot:{name}", "blob")
        return read_header(blob, name)[0].examples if blob else 0

    # 1. decisions: the learner keeps each customer's feature snapshot (in Redis, by customer)
    customers = [f"c{i}" for i in range(8)]
    await produce(s, keyed([tx(c, 1, 2) for c in customers]))
    await wait_for(
        lambda: sync_redis.exists(f"{prefix}:{{c7}}:md"), 45, "snapshots", worker, learner
    )
    first = await probe(s, 0)
    assert first["scores"]["churn_risk"]["cold"] is True
    assert first["scores"]["churn_risk"]["score"] == 0.05  # the documented prior

    # 2. late labels: churned or retained a week later (and one outcome nobody can join)
    labels = [out(c, "churned" if i % 2 else "retained", 9) for i, c in enumerate(customers)]
    labels.append(out("stranger", "churned", 9))
    await produce(s, keyed(labels))
    await wait_for(lambda: examples("churn_risk") >= 8, 30, "a learned snapshot", learner)

    # 3. the worker hot-swaps: a later decision is scored by the warm model
    async def warm() -> dict[str, Any] | None:
        d = await probe(s, int(time.monotonic() * 1000))
        return d if d["scores"]["churn_risk"]["cold"] is False else None

    deadline = time.monotonic() + 20
    record = None
    while record is None and time.monotonic() < deadline:
        record = await warm()
    assert record is not None, worker.log_tail()
    served = record["scores"]["churn_risk"]["version"]
    assert int(served.rsplit(".", 1)[1]) >= 1 and record["scores"]["churn_risk"]["score"] != 0.05
    assert "now serving snapshot" in worker.log.read_text()

    # 4. a second learner stands by, outside the consumer group, while the first holds the
    # lease; a graceful stop publishes one last snapshot, leaves the group and releases the
    # lease at once, and the standby takes over and restores that snapshot (a killed learner's
    # lease expires within the lease period; its learning since the last snapshot is lost:
    # see tests/unit/test_models_runner.py)
    standby = LearnerProcess(env, tmp_path / "learner2.log").start()
    cleanup.append(standby.kill)
    await wait_for(
        lambda: "standing by, the lease is held by" in standby.log.read_text(),
        30,
        "the standby",
        standby,
    )
    assert "vigil learner started" not in standby.log.read_text()
    assert learner.stop() == 0
    published = number("churn_risk")
    learner = standby
    await wait_for(
        lambda: "restored churn_risk from snapshot" in learner.log.read_text(),
        30,
        "restore",
        learner,
    )
    await produce(s, keyed([tx("c20", 1, 2), out("c20", "churned", 5)]))
    await wait_for(lambda: number("churn_risk") > published, 30, "a new snapshot", learner)
    assert examples("churn_risk") >= 9

    # 5. a learner whose lease is taken (e.g. it paused longer than the lease) stops at its
    # next renewal, publishes nothing more and exits with status 3 (a supervisor restarts it)
    sync_redis.set(f"{prefix}:{{models}}:learner-lease", "another-learner", px=60_000)
    await wait_for(lambda: not learner.alive(), 30, "the learner to stop", learner)
    assert learner.proc is not None and learner.proc.returncode == 3, learner.log_tail()
    assert "lost the lease (held by another-learner now)" in learner.log.read_text()

    # 6. a corrupt snapshot is refused by the worker; the previous model keeps serving
    current = number("churn_risk")
    corrupt = {"n": current + 1, "blob": b"VIGILSNAP1\nnot a snapshot"}
    sync_redis.hset(f"{prefix}:{{models}}:snapshot:churn_risk", mapping=corrupt)
    sync_redis.hincrby(f"{prefix}:{{models}}:numbers", "churn_risk", 1)
    await wait_for(
        lambda: f"refused snapshot {current + 1} of churn_risk" in worker.log.read_text(),
        15,
        "the refusal",
        worker,
    )
    after = await probe(s, 99)
    assert after["scores"]["churn_risk"]["cold"] is False
    assert after["scores"]["churn_risk"]["version"].endswith(f".{current}")
    assert worker.alive(), worker.log_tail()
    worker.stop()
