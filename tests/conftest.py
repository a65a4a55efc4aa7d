"""Shared fixtures. Integration and contract tests use the real Kafka and Redis that `make test`
starts; when either is missing they FAIL with a message, never skip."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from engine.config import Settings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def redis_url(base_settings: Settings) -> str:
    url = base_settings.redis.url
    hostport = url.split("//", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not _answers(host, int(port)):
        pytest.fail(
            f"Redis is not answering at {host}:{port}: run `make services` (or `vigil services up`)"
        )
    return url


@pytest.fixture(scope="session")
def kafka_bootstrap(base_settings: Settings) -> str:
    bootstrap = base_settings.kafka.bootstrap_servers
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    if not _answers(host, int(port)):
        pytest.fail(
            f"Kafka is not answering at {bootstrap}: run `make services` (or `vigil services up`)"
        )
    return bootstrap


@pytest.fixture
def unique() -> str:
    """A fresh name part, so tests never see each other's topics, groups or keys."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def settings_for() -> Callable[..., Settings]:
    """Settings with overrides, e.g. ``settings_for(kafka={"topic_prefix": "t1."})``."""

    def make(**overrides: Any) -> Settings:
        base = Settings().model_dump()
        for group, values in overrides.items():
            if isinstance(values, dict):
                base[group] = {**base[group], **values}
            else:
                base[group] = values
        return Settings.model_validate(base)

    return make


@pytest.fixture
def env_for_settings() -> Callable[[Settings], dict[str, str]]:
    """Environment variables that reproduce a Settings in a subprocess."""

    def env(settings: Settings) -> dict[str, str]:
        out = dict(os.environ)
        k, r, w = settings.kafka, settings.redis, settings.worker
        out.update(
            {
                "VIGIL_KAFKA__BOOTSTRAP_SERVERS": k.bootstrap_servers,
                "VIGIL_KAFKA__TOPIC_PREFIX": k.topic_prefix,
                "VIGIL_KAFKA__CONSUMER_GROUP": k.consumer_group,
                "VIGIL_KAFKA__PARTITIONS": str(k.partitions),
                "VIGIL_REDIS__URL": r.url,
                "VIGIL_REDIS__KEY_PREFIX": r.key_prefix,
                "VIGIL_WORKER__METRICS_PORT": str(w.metrics_port),
                "VIGIL_WORKER__BATCH_MAX": str(w.batch_max),
                "VIGIL_RULES_DIR": str(settings.rules_dir),
            }
        )
        return out

    return env


@pytest.fixture
def cleanup() -> Iterator[list[Callable[[], None]]]:
    todo: list[Callable[[], None]] = []
    yield todo
    for fn in reversed(todo):
        fn()
