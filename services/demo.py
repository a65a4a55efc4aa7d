"""`vigil demo`: a worker and the API on the local services, a simulated bank published through
Kafka, and the alerts and actions printed as they fire. `vigil demo --stop` stops both processes.

Kafka and Redis must be up (`make demo` runs `vigil services up` first). The worker and the API
keep running after the demo returns, so the API and `vigil tail` can be explored; their logs
and pids are under ``<run_dir>/demo``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from api.auth import hash_key
from engine.config import Settings
from services.topics import ensure_topics
from simulator.bank import simulate, write_jsonl
from streams.tools import publish

PROCESSES = ("worker", "api")


def demo_dir(settings: Settings) -> Path:
    path = settings.services.run_dir.resolve() / "demo"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def stop(settings: Settings) -> None:
    for name in PROCESSES:
        pid_file = demo_dir(settings) / f"{name}.pid"
        pid = _pid(pid_file)
        if pid is not None:
            os.killpg(pid, signal.SIGTERM)
            for _ in range(100):
                if _pid(pid_file) is None:
                    break
                time.sleep(0.1)
            print(f"stopped the demo {name} (pid {pid})")
        pid_file.unlink(missing_ok=True)


def _start(name: str, args: list[str], env: dict[str, str], settings: Settings) -> int:
    folder = demo_dir(settings)
    existing = _pid(folder / f"{name}.pid")
    if existing is not None:
        return existing
    with (folder / f"{name}.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    (folder / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def _short(alert_or_action: dict[str, Any]) -> str:
    a = alert_or_action
    if "rule_id" in a:
        return f"ALERT  {a['customer_id']:<8} {a['type']:<11} {a['severity']:<6} {a['reason']}"
    return (
        f"ACTION {a['customer_id']:<8} {a['channel']:<10} {a['action_id']:<22} "
        f"lead={a['lead_grade']} priority={a['priority']:.0f}"
    )


async def _watch(settings: Settings, seconds: float, show: int) -> dict[str, int]:
    topics = [settings.kafka.topic("alerts"), settings.kafka.topic("actions")]
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.kafka.bootstrap_servers,
        auto_offset_reset="latest",
        enable_auto_commit=False,
    )
    await consumer.start()
    counts = {"alerts": 0, "actions": 0}
    shown = 0
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, records in batch.items():
                role = "alerts" if tp.topic == topics[0] else "actions"
                for rec in records:
                    counts[role] += 1
                    if shown < show:
                        print(_short(orjson.loads(rec.value)))
                        shown += 1
    finally:
        await consumer.stop()
    return counts


def demo_namespace(settings: Settings, run_id: str) -> Settings:
    """Settings of one demo run: its own topics, consumer group and Redis keys, so a second run
    starts from nothing (the same simulated events would otherwise be duplicates of the first)."""
    ns = f"demo-{run_id}"
    return settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(
                update={"topic_prefix": f"{ns}.", "consumer_group": f"vigil-{ns}"}
            ),
            "redis": settings.redis.model_copy(update={"key_prefix": ns}),
        }
    )


def run(settings: Settings, customers: int, days: int, watch_seconds: float, rate: float) -> None:
    stop(settings)  # a previous demo's worker and API belong to another namespace
    folder = demo_dir(settings)
    run_id = time.strftime("%m%d%H%M%S")
    settings = demo_namespace(settings, run_id)
    asyncio.run(ensure_topics(settings))
    key = secrets.token_urlsafe(24)
    env = dict(os.environ)
    ns_env = {
        "VIGIL_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "VIGIL_KAFKA__CONSUMER_GROUP": settings.kafka.consumer_group,
        "VIGIL_REDIS__KEY_PREFIX": settings.redis.key_prefix,
    }
    env.update(ns_env)
    env["VIGIL_API__API_KEYS"] = f"demo:read+subscribe+admin:{hash_key(key)}"
    worker_pid = _start("worker", ["worker"], env, settings)
    api_pid = _start("api", ["api"], env, settings)
    print(f"worker pid {worker_pid}, API pid {api_pid} (logs in {folder})")

    data = folder / f"bank-{customers}x{days}.jsonl.gz"
    if not data.exists():
        started = time.monotonic()
        n = write_jsonl(simulate(customers=customers, days=days, seed=7), data)
        print(
            f"simulated {n} events of {customers} customers over {days} days "
            f"in {time.monotonic() - started:.1f}s -> {data}"
        )

    async def go() -> dict[str, int]:
        watcher = asyncio.create_task(_watch(settings, watch_seconds, show=40))
        await asyncio.sleep(1.0)
        await publish(settings, data, rate=rate, out=sys.stdout)
        return await watcher

    print(
        f"publishing at {rate:.0f} events/s through Kafka (live-like: the input topics stay\n"
        "aligned in event time)"
        f" and printing alerts and actions for {watch_seconds:.0f}s ..."
    )
    counts = asyncio.run(go())
    api = f"http://{settings.api.host}:{settings.api.port}"
    print(
        f"\n{counts['alerts']} alerts and {counts['actions']} actions in {watch_seconds:.0f}s.\n"
        "Where to look next (this run's topics and keys are in their own namespace):\n"
        f"  export {' '.join(f'{k}={v}' for k, v in ns_env.items())}\n"
        f"  vigil tail alerts --from-beginning --max 5      the alerts topic\n"
        f"  vigil tail decisions --max 1                     a decision's full explanation\n"
        f"  vigil customer c000001                           a customer's rolling features\n"
        f"  {api}/console                     the live console (key below)\n"
        f"  {api}/docs                        the API\n"
        f"  curl -H 'Authorization: Bearer {key}' {api}/rules\n"
        f"  http://{settings.worker.metrics_host}:{settings.worker.metrics_port}/metrics"
        "   worker metrics\n"
        "  make stop                                        stop the worker, API, Kafka and Redis"
    )
    (folder / "api-key.txt").write_text(key + "\n")
    os.chmod(folder / "api-key.txt", 0o600)
