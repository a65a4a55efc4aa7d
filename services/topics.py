"""Create Vigil's Kafka topics and wait for a broker, through aiokafka's admin client.

``ensure_topics`` is idempotent: a topic that already exists is left as it is (a partition count
that differs from the settings is logged, never changed: shrinking is impossible and growing
moves customers between partitions, so that is an operator's decision).

Both functions are coroutines; the synchronous ``services.local.up`` runs them with
``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from engine.config import Settings

log = logging.getLogger(__name__)

# Kafka error codes met while creating topics (org.apache.kafka.common.protocol.Errors).
_NONE = 0
_TOPIC_ALREADY_EXISTS = 36
# Transient while a fresh broker registers with its controller or a leader is elected.
_RETRIABLE = frozenset(
    {
        5,  # LEADER_NOT_AVAILABLE
        7,  # REQUEST_TIMED_OUT
        14,  # COORDINATOR_LOAD_IN_PROGRESS
        15,  # COORDINATOR_NOT_AVAILABLE
        38,  # INVALID_REPLICATION_FACTOR: "only 0 broker(s) are registered"
        41,  # NOT_CONTROLLER
    }
)
_RETRY_PAUSE_SECONDS = 0.25
_PROBE_TIMEOUT_MS = 3000


class KafkaUnavailable(RuntimeError):
    """No Kafka broker answered in time, or a topic could not be created."""


def topic_specs(settings: Settings) -> list[NewTopic]:
    """The topics Vigil needs, as aiokafka ``NewTopic`` values (pure: no network).

    Every input and output topic gets ``settings.kafka.partitions`` partitions; the output
    topics (the DLQ among them) accept records up to ``settings.kafka.max_request_bytes``.

    >>> from engine.config import Settings
    >>> specs = {t.name: t for t in topic_specs(Settings())}
    >>> specs["events.transactions"].num_partitions
    6
    >>> specs["events.dlq"].topic_configs
    {'max.message.bytes': '4194304'}
    """
    kafka = settings.kafka
    large = {kafka.topic("dlq"), *kafka.output_topics}
    specs: list[NewTopic] = []
    for name in dict.fromkeys((*kafka.input_topics, *kafka.output_topics)):
        configs = {"max.message.bytes": str(kafka.max_request_bytes)} if name in large else {}
        specs.append(
            NewTopic(
                name=name,
                num_partitions=kafka.partitions,
                replication_factor=kafka.replication_factor,
                topic_configs=configs,
            )
        )
    return specs


@contextlib.contextmanager
def quiet_aiokafka() -> Iterator[None]:
    """Silence aiokafka's connection-error logging while a broker is expected to be down."""
    logger = logging.getLogger("aiokafka")
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)


@contextlib.asynccontextmanager
async def admin_client(
    bootstrap: str, request_timeout_ms: int = 30000
) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client, closed on exit."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="vigil-services",
        request_timeout_ms=request_timeout_ms,
    )
    try:
        await admin.start()
        yield admin
    finally:
        await admin.close()


async def kafka_answers(bootstrap: str, timeout: float = 3.0) -> bool:
    """True when a broker at ``bootstrap`` answers a metadata request and lists a broker."""
    with quiet_aiokafka():
        try:
            async with asyncio.timeout(timeout):
                async with admin_client(bootstrap, int(timeout * 1000)) as admin:
                    cluster = await admin.describe_cluster()
        except (KafkaError, OSError, TimeoutError):
            return False
    return bool(cluster.get("brokers"))


async def wait_for_kafka(bootstrap: str, timeout: float) -> None:
    """Wait until a broker at ``bootstrap`` answers a metadata request.

    Raises ``KafkaUnavailable`` after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        probe = min(_PROBE_TIMEOUT_MS / 1000, max(remaining, 0.1))
        if await kafka_answers(bootstrap, probe):
            return
        if time.monotonic() >= deadline:
            raise KafkaUnavailable(f"Kafka at {bootstrap} did not answer within {timeout:.0f} s")
        await asyncio.sleep(_RETRY_PAUSE_SECONDS)


async def ensure_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create every missing Vigil topic; return the names created by this call.

    Topics that already exist are left alone. Transient errors of a broker that has just
    started are retried until ``timeout`` seconds; the call returns once every topic has a
    leader for each partition, so producing right after it works.
    """
    bootstrap = settings.kafka.bootstrap_servers
    specs = topic_specs(settings)
    deadline = time.monotonic() + timeout
    created: list[str] = []
    async with admin_client(bootstrap) as admin:
        pending = await _missing(admin, specs)
        while pending:
            pending = await _create(admin, pending, created, deadline)
        await _wait_for_leaders(admin, [s.name for s in specs], deadline)
        _warn_on_partition_mismatch(await admin.describe_topics([s.name for s in specs]), settings)
    return created


async def _missing(admin: AIOKafkaAdminClient, specs: list[NewTopic]) -> list[NewTopic]:
    existing = set(await admin.list_topics())
    return [s for s in specs if s.name not in existing]


async def _create(
    admin: AIOKafkaAdminClient, specs: list[NewTopic], created: list[str], deadline: float
) -> list[NewTopic]:
    """One CreateTopics round; returns the specs to retry, raises on a permanent error."""
    response = await admin.create_topics(specs, timeout_ms=_PROBE_TIMEOUT_MS * 3)
    by_name = {s.name: s for s in specs}
    retry: list[NewTopic] = []
    for error in response.to_object()["topic_errors"]:
        name, code = error["topic"], error["error_code"]
        if code == _NONE:
            created.append(name)
        elif code in _RETRIABLE and time.monotonic() < deadline:
            retry.append(by_name[name])
        elif code != _TOPIC_ALREADY_EXISTS:
            message = error.get("error_message") or ""
            raise KafkaUnavailable(f"cannot create topic {name!r}: error {code} {message}")
    if retry:
        await asyncio.sleep(_RETRY_PAUSE_SECONDS)
    return retry


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str], deadline: float) -> None:
    """Wait until the broker's metadata shows a leader for every partition of ``names``."""
    while True:
        topics = await admin.describe_topics(names)
        if all(_has_leaders(t) for t in topics) and len(topics) == len(names):
            return
        if time.monotonic() >= deadline:
            lagging = [t["topic"] for t in topics if not _has_leaders(t)]
            raise KafkaUnavailable(f"topics without a leader after creation: {lagging}")
        await asyncio.sleep(_RETRY_PAUSE_SECONDS)


def _has_leaders(topic: dict[str, Any]) -> bool:
    partitions = topic.get("partitions") or []
    return (
        topic["error_code"] == _NONE
        and bool(partitions)
        and all(p["leader"] >= 0 for p in partitions)
    )


def _warn_on_partition_mismatch(topics: list[dict[str, Any]], settings: Settings) -> None:
    for topic in topics:
        count = len(topic.get("partitions") or [])
        if count != settings.kafka.partitions:
            log.warning(
                "topic %s has %d partitions, settings say %d (left unchanged)",
                topic["topic"],
                count,
                settings.kafka.partitions,
            )
