"""Hot reload in a real worker on the real Kafka and Redis: a rule added to the folder starts
firing within seconds under a new version; a broken file is refused and the old set serves on."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from engine.config import Settings
from online_models.catalog import model_names
from rules.loader import load_rules
from tests.integration.harness import (
    WorkerProcess,
    create_topics,
    event_bytes,
    produce,
    read_topic,
    topic_role,
)

pytestmark = pytest.mark.integration

DEFAULT = Path(__file__).resolve().parents[2] / "rules" / "default"
RELOAD_SECONDS = 1.0
NEW_RULE = """\
version: 1
rules:
  - id: login_after_failures
    description: A successful login after two or more failed ones in 24 hours.
    alert_type: service_risk
    severity: low
    when: event_type == 'app' and event_name == 'login' and login_failed_count_24h >= 2
    cooldown: 1d
    reason: "logged in after {login_failed_count_24h:.0f} failed attempts"
"""


def app_event(cid: str, n: int, name: str) -> dict[str, Any]:
    return {
        "event_id": f"{cid}-{n}",
        "type": "app",
        "customer_id": cid,
        "session_id": f"{cid}-s",
        "ts": f"2026-01-05T09:{n:02d}:00+08:00",
        "name": name,
    }


def story(cid: str) -> list[dict[str, Any]]:
    """Two failed logins, then a successful one: what the new rule looks for."""
    return [
        app_event(cid, 1, "login_failed"),
        app_event(cid, 2, "login_failed"),
        app_event(cid, 3, "login"),
    ]


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    copy = tmp_path / "rules"
    shutil.copytree(DEFAULT, copy)
    return copy


@pytest.fixture
def worker_settings(
    unique: str,
    kafka_bootstrap: str,
    redis_url: str,
    rules_dir: Path,
    settings_for: Callable[..., Settings],
) -> Settings:
    return settings_for(
        kafka={"topic_prefix": f"rr{unique}.", "consumer_group": f"vigil-rr-{unique}"},
        redis={"key_prefix": f"rr{unique}"},
        worker={"metrics_port": 0, "batch_max": 50, "rules_reload_seconds": RELOAD_SECONDS},
        rules_dir=str(rules_dir),
    )


@pytest.fixture
def worker(
    worker_settings: Settings,
    env_for_settings: Callable[[Settings], dict[str, str]],
    tmp_path: Path,
    cleanup: list[Callable[[], None]],
) -> WorkerProcess:
    env = env_for_settings(worker_settings)
    env["VIGIL_WORKER__RULES_RELOAD_SECONDS"] = str(RELOAD_SECONDS)
    w = WorkerProcess(env, tmp_path / "worker.log")
    cleanup.append(w.kill)
    return w


@pytest.fixture
def redis_keys(redis_url: str, worker_settings: Settings) -> Iterator[None]:
    client = redis.Redis.from_url(redis_url)
    yield
    keys = list(client.scan_iter(match=f"{worker_settings.redis.key_prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


async def send(settings: Settings, events: list[dict[str, Any]]) -> None:
    await produce(
        settings, ((topic_role(e), e["customer_id"].encode(), event_bytes(e)) for e in events)
    )


async def alerts_of(settings: Settings, rule_id: str, count: int, timeout: float) -> list[Any]:
    found = await read_topic(
        settings,
        "alerts",
        lambda m: sum(1 for a in m if a["rule_id"] == rule_id) >= count,
        timeout=timeout,
    )
    return [a for a in found if a["rule_id"] == rule_id]


async def test_a_worker_picks_up_new_rules_and_refuses_broken_ones(
    worker_settings: Settings, worker: WorkerProcess, rules_dir: Path, redis_keys: None
) -> None:
    s = worker_settings
    models = model_names()
    await create_topics(s)
    worker.start()

    # Before: the story raises nothing; its decisions carry the shipped version.
    v1 = load_rules(rules_dir, models).version
    await send(s, story("before"))
    decisions = await read_topic(s, "decisions", lambda m: len(m) >= 3, timeout=90)
    assert worker.alive(), worker.log_tail()
    assert {d["ruleset_version"] for d in decisions} == {v1}
    assert await alerts_of(s, "login_after_failures", 1, timeout=2) == []

    # A rule added to the folder starts firing within a few seconds, under the new version.
    write_atomically(rules_dir / "service.yaml", NEW_RULE)
    v2 = load_rules(rules_dir, models).version
    written = time.monotonic()
    fired: list[Any] = []
    n = 0
    while not fired and time.monotonic() - written < 30:
        n += 1
        await send(s, story(f"after{n}"))
        fired = await alerts_of(s, "login_after_failures", 1, timeout=RELOAD_SECONDS)
    picked_up = time.monotonic() - written
    print(f"new rule fired {picked_up:.1f} s after the file was written")
    assert fired, worker.log_tail()
    assert picked_up < 10, f"the new rule took {picked_up:.1f} s to fire"
    first = fired[0]
    assert first["ruleset_version"] == v2 != v1
    assert first["reason"] == "logged in after 2 failed attempts"
    assert first["conditions"]["login_failed_count_24h"] == 2.0
    assert first["type"] == "service_risk" and first["customer_id"].startswith("after")

    # A broken file is refused: logged, and the old set (v2) keeps serving.
    write_atomically(
        rules_dir / "broken.yaml", NEW_RULE.replace("login_after_failures", "x") + "  - id: [\n"
    )
    deadline = time.monotonic() + 30
    while "rule reload refused" not in worker.log.read_text(errors="replace"):
        assert time.monotonic() < deadline, worker.log_tail()
        await asyncio.sleep(0.25)
    await send(s, story("broken"))
    served = await read_topic(
        s, "alerts", lambda m: any(a["customer_id"] == "broken" for a in m), timeout=60
    )
    mine = [a for a in served if a["customer_id"] == "broken"]
    assert [a["rule_id"] for a in mine] == ["login_after_failures"]
    assert mine[0]["ruleset_version"] == v2
    assert worker.alive(), worker.log_tail()
    log = worker.log.read_text(errors="replace")
    assert "broken.yaml" in log and f"version {v2} keeps serving" in log

    # Fixed: the folder loads again and decisions move on to its version.
    (rules_dir / "broken.yaml").unlink()
    (rules_dir / "service.yaml").write_text(NEW_RULE.replace("cooldown: 1d", "cooldown: 2d"))
    v3 = load_rules(rules_dir, models).version
    deadline = time.monotonic() + 30
    seen: set[str] = set()
    n = 0
    while v3 not in seen and time.monotonic() < deadline:
        n += 1
        cid = f"fixed{n}"
        await send(s, [app_event(cid, 1, "login")])
        got = await read_topic(
            s, "decisions", lambda m, c=cid: any(d["customer_id"] == c for d in m), timeout=10
        )
        seen = {d["ruleset_version"] for d in got if d["customer_id"].startswith("fixed")}
    assert v3 in seen, worker.log_tail()
    worker.stop()
