"""`vigil services` against a real Kafka and Redis.

The shared services come from ``up(load_settings())``: the ones `make test` started, or started
here. A service that cannot be started or reached makes these tests fail, never skip.
One test runs a second, private pair on free ports to cover the whole up/down cycle.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]
from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped]
from aiokafka.admin.config_resource import (  # type: ignore[import-untyped]
    ConfigResource,
    ConfigResourceType,
)

from engine.config import (
    KafkaSettings,
    RedisSettings,
    ServiceSettings,
    Settings,
    load_settings,
)
from services import local
from services.topics import ensure_topics


@pytest.fixture(scope="module")
def settings() -> Settings:
    """The shared services, started (or found answering) once for this module."""
    settings = load_settings()
    local.up(settings, echo=lambda _: None)
    return settings


@pytest_asyncio.fixture
async def admin(settings: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


def test_status_reports_every_service_answering(settings: Settings) -> None:
    report = local.status(settings)

    assert set(report) == {"kafka", "redis"}
    assert all(service["answering"] for service in report.values()), report
    for service in report.values():
        assert service["running"] == (service["pid"] is not None)


def test_up_twice_keeps_the_same_daemons(settings: Settings) -> None:
    before = local.status(settings)
    lines: list[str] = []

    after = local.up(settings, echo=lines.append)

    assert {n: s["pid"] for n, s in after.items()} == {n: s["pid"] for n, s in before.items()}
    assert not any(" started (pid" in line for line in lines), lines
    assert all(service["answering"] for service in after.values())


@pytest.mark.asyncio
async def test_topics_exist_with_the_configured_partitions(
    settings: Settings, admin: AIOKafkaAdminClient
) -> None:
    names = [*settings.kafka.input_topics, *settings.kafka.output_topics]

    topics = {t["topic"]: t for t in await admin.describe_topics(names)}

    assert set(topics) == set(names)
    for name, topic in topics.items():
        assert topic["error_code"] == 0, name
        assert len(topic["partitions"]) == settings.kafka.partitions, name
        assert all(p["leader"] >= 0 for p in topic["partitions"]), name


@pytest.mark.asyncio
async def test_dlq_and_outputs_allow_the_largest_record(
    settings: Settings, admin: AIOKafkaAdminClient
) -> None:
    resources = [
        ConfigResource(ConfigResourceType.TOPIC, name, {"max.message.bytes": None})
        for name in settings.kafka.output_topics
    ]

    responses = await admin.describe_configs(resources)

    limits = {
        resource["resource_name"]: resource["config_entries"][0]["config_value"]
        for response in responses
        for resource in response.to_object()["resources"]
    }
    assert limits == dict.fromkeys(
        settings.kafka.output_topics, str(settings.kafka.max_request_bytes)
    )


@pytest.mark.asyncio
async def test_a_record_larger_than_kafkas_default_limit_reaches_the_dlq(
    settings: Settings,
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        max_request_size=settings.kafka.max_request_bytes,
    )
    await producer.start()
    try:
        payload = os.urandom(2 * 1024 * 1024)  # twice Kafka's default max.message.bytes
        sent = await producer.send_and_wait(settings.kafka.topic("dlq"), payload, key=b"c-1")
    finally:
        await producer.stop()

    assert sent.offset >= 0


@pytest.mark.asyncio
async def test_ensure_topics_is_idempotent(settings: Settings) -> None:
    assert await ensure_topics(settings) == []
    assert await ensure_topics(settings) == []


# --------------------------------------------------------------------------- full cycle


def _free_port(consecutive: int = 1) -> int:
    """A port such that it and the next ``consecutive - 1`` ports are free on 127.0.0.1."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port + consecutive <= 65535 and all(_bindable(port + i) for i in range(consecutive)):
            return port
    raise RuntimeError("no free port range on 127.0.0.1")


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def private_settings(tmp_path: Path) -> Settings:
    """Settings for a second Kafka and Redis on free ports, in a temporary run folder."""
    shared = load_settings()
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{_free_port(2)}", partitions=2),
        redis=RedisSettings(url=f"redis://127.0.0.1:{_free_port()}/0"),
        services=ServiceSettings(
            run_dir=tmp_path / "run",
            cache_dir=shared.services.cache_dir,  # reuse the fetched jars
            kafka_heap="256m",
            start_timeout_seconds=shared.services.start_timeout_seconds,
        ),
    )


def test_down_stops_what_up_started_and_keeps_the_data(private_settings: Settings) -> None:
    settings = private_settings
    layout = local.RunLayout.of(settings)
    try:
        started = local.up(settings, echo=lambda _: None)
        assert all(s["running"] and s["answering"] for s in started.values()), started
        assert asyncio.run(ensure_topics(settings)) == []  # up created them already

        local.down(settings, echo=lambda _: None)

        stopped = local.status(settings)
        assert not any(s["running"] or s["answering"] for s in stopped.values()), stopped
        assert not layout.kafka_pid.exists()
        assert not layout.redis_pid.exists()
        assert (layout.kafka_data / "meta.properties").is_file()

        restarted = local.up(settings, echo=lambda _: None)  # from the kept data, no format
        assert all(s["answering"] for s in restarted.values()), restarted
    finally:
        local.down(settings, echo=lambda _: None)


def test_a_stale_pid_file_is_cleaned_and_not_signalled(private_settings: Settings) -> None:
    layout = local.RunLayout.of(private_settings)
    layout.kafka_dir.mkdir(parents=True)
    layout.kafka_pid.write_text(f"{os.getpid()}\n")  # alive, but not a broker

    report = local.status(private_settings)

    assert report["kafka"] == {
        "address": private_settings.kafka.bootstrap_servers,
        "pid": None,
        "running": False,
        "answering": False,
    }
    assert not layout.kafka_pid.exists()
    local.down(private_settings, echo=lambda _: None)  # must not signal this test process
