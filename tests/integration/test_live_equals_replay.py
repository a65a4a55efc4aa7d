"""Live equals replay: a simulated file through the real worker (Kafka + Redis) and through
`vigil replay` gives the same alerts and the same actions — and replaying the Kafka topic range
the worker consumed gives them again.

Why every event goes to ONE input topic: the worker consumes its four input topics at different
rates, so a customer's transaction and app events, published to two topics, may be decided in a
different order live than in the file. A customer's events on one topic stay on one partition
(keyed by customer_id) and keep the file's order, which is exactly the order replay uses. The
worker accepts any event type on any input topic, so nothing else changes.

``decision_time`` legitimately differs (the wall clock live, event time in replay): messages are
compared without it, by their deterministic ids and everything else they carry.

The worker here runs without the models' learner, so replay runs with ``--no-learn``: both score
with the models' start-up state.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
import typer
from typer.testing import CliRunner

from engine.config import Settings
from replay.cli import replay_command
from simulator import simulate, write_jsonl
from streams.tools import publish
from tests.integration.harness import WorkerProcess, create_topics, read_topic

pytestmark = pytest.mark.integration

# 40 customers over 20 days from 2026-01-01, seed 10: churn journeys, an asset drop, several
# rules firing with the default configuration. A garbage line at the end goes to the DLQ.
CUSTOMERS, DAYS, SEED = 40, 20, 10
GARBAGE = b"not an event"


@pytest.fixture
def live_settings(
    unique: str, kafka_bootstrap: str, redis_url: str, settings_for: Callable[..., Settings]
) -> Settings:
    return settings_for(
        kafka={"topic_prefix": f"lr{unique}.", "consumer_group": f"vigil-lr-{unique}"},
        redis={"key_prefix": f"lr{unique}"},
        worker={"metrics_port": 0, "batch_max": 100},
    )


@pytest.fixture
def redis_keys(redis_url: str, live_settings: Settings) -> Iterator[None]:
    yield
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{live_settings.redis.key_prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def events_file(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    write_jsonl(simulate(CUSTOMERS, DAYS, SEED), path)
    with path.open("ab") as fh:
        fh.write(GARBAGE + b"\n")
    return path


def replay_cli(out: Path, *args: Any) -> dict[str, Any]:
    """`vigil replay ... --report out` (called in a thread: the command runs its own loop)."""
    app = typer.Typer()
    app.command()(replay_command)
    argv = [*(str(a) for a in args), "--report", str(out), "--no-learn", "--quiet"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.stderr
    return dict(orjson.loads((out / "report.json").read_bytes()))


def from_jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def without_time(messages: list[dict[str, Any]], key: str) -> dict[str, bytes]:
    """Messages by id, each without decision_time, as canonical bytes.

    A decision record's ``actions.capacity.used`` is left out too: it is the bank-wide count of
    contacts already reserved today when the decision was made, which depends on the order in
    which *other* customers were decided (live, partitions are consumed concurrently). What a
    decision reserves (``capacity.reserved``) and chooses is compared.
    """
    out = {}
    for m in messages:
        rest = {k: v for k, v in m.items() if k != "decision_time"}
        actions = rest.get("actions")
        if isinstance(actions, dict) and isinstance(actions.get("capacity"), dict):
            capacity = {k: v for k, v in actions["capacity"].items() if k != "used"}
            rest["actions"] = {**actions, "capacity": capacity}
        out[m[key]] = orjson.dumps(rest, option=orjson.OPT_SORT_KEYS)
    return out


async def test_the_live_worker_and_replay_raise_the_same_alerts_and_actions(
    live_settings: Settings,
    env_for_settings: Callable[[Settings], dict[str, str]],
    events_file: Path,
    tmp_path: Path,
    cleanup: list[Callable[[], None]],
    redis_keys: None,
) -> None:
    s = live_settings
    n_events = sum(1 for _ in events_file.open("rb")) - 1

    # Replay (in-memory twins, event-time clock): what the worker must produce.
    report = await asyncio.to_thread(replay_cli, tmp_path / "replay", events_file)
    replayed = {
        role: from_jsonl(tmp_path / "replay" / f"{role}.jsonl")
        for role in ("decisions", "alerts", "actions")
    }
    assert len(replayed["decisions"]) == n_events and report["invalid"]["total"] == 1
    assert replayed["alerts"] and replayed["actions"], "the fixture must raise alerts and actions"
    assert len(replayed["alerts"]) == report["alerts"]["total"]
    assert len(replayed["actions"]) == report["actions"]["total"]

    # Live: the real worker on the real Kafka and Redis, every event on one input topic.
    await create_topics(s)
    worker = WorkerProcess(env_for_settings(s), tmp_path / "worker.log").start()
    cleanup.append(worker.kill)
    published_from = datetime.now(tz=UTC) - timedelta(seconds=5)
    topic = s.kafka.topic("transactions")
    sent = await publish(s, events_file, topic=topic, out=io.StringIO())
    assert sent == n_events + 1
    decisions = await read_topic(s, "decisions", lambda m: len(m) >= n_events, timeout=240)
    assert worker.alive(), worker.log_tail()
    assert len(decisions) == n_events, worker.log_tail()
    dlq = await read_topic(s, "dlq", lambda m: len(m) >= 1, timeout=30)
    await asyncio.sleep(2)  # time for an unexpected extra alert or action to show up
    alerts = await read_topic(s, "alerts", lambda m: False, timeout=4)
    actions = await read_topic(s, "actions", lambda m: False, timeout=4)
    worker.stop()

    assert without_time(alerts, "alert_id") == without_time(replayed["alerts"], "alert_id")
    assert len(alerts) == len(replayed["alerts"])  # and no duplicate
    assert without_time(actions, "action_msg_id") == without_time(
        replayed["actions"], "action_msg_id"
    )
    assert len(actions) == len(replayed["actions"])
    # whole decisions too: features from Redis equal the in-memory twin's, rules, candidates
    assert without_time(decisions, "decision_id") == without_time(
        replayed["decisions"], "decision_id"
    )
    assert [d["reason"] for d in dlq] == ["not_json"]

    # The same history replayed from the topic range the worker consumed (all partitions).
    until = datetime.now(tz=UTC) + timedelta(seconds=5)
    from_topic = await asyncio.to_thread(
        replay_cli,
        tmp_path / "topic",
        "--topic",
        topic,
        "--since",
        published_from.isoformat(),
        "--until",
        until.isoformat(),
    )
    assert from_topic["events"] == n_events + 1
    assert [i["reason"] for i in from_topic["invalid"]["first"]] == ["not_json"]
    assert {"partition", "offset"} <= set(from_topic["invalid"]["first"][0])
    assert {i["kind"] for i in from_topic["inputs"]} == {"kafka"}
    assert sum(i["records"] for i in from_topic["inputs"]) == n_events + 1
    for role, key in (("alerts", "alert_id"), ("actions", "action_msg_id")):
        ranged = from_jsonl(tmp_path / "topic" / f"{role}.jsonl")
        assert without_time(ranged, key) == without_time(replayed[role], key), role
