"""The API's topic consumer: the alerts and decisions topics into the alert log and the index.

One consumer per API process, without a consumer group: it assigns itself every partition of
both topics and keeps its positions in Redis (``Index.save_offsets``) after each batch is stored,
so an API restart resumes where the last one stopped, and a first start begins one retention
window back (``offsets_for_times``). Replicas each read everything; the alert log appends an
alert once whoever reads it first, and the index overwrites itself, so that is harmless.

Failures: a message that is not a JSON object with the expected ids is counted
(``vigil_api_bad_messages_total``) and skipped; a Redis or Kafka error restarts the consumer
from the saved positions after a backoff, so nothing is lost and nothing is indexed twice in a
way that matters.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from api import metrics
from api.alert_log import AlertLog
from api.index import Index
from engine.clock import Clock
from engine.config import Settings

log = logging.getLogger(__name__)


def read_message(role: str, value: bytes | None) -> dict[str, Any] | None:
    """The message as a dict when it carries the ids its role needs, else None.

    >>> read_message("alerts", b'{"alert_id": "a1", "customer_id": "c1"}')["alert_id"]
    'a1'
    >>> read_message("alerts", b'{"customer_id": "c1"}') is None
    True
    >>> read_message("decisions", b'not json') is None
    True
    """
    if value is None:
        return None
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    id_field = "alert_id" if role == "alerts" else "decision_id"
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get(id_field), str)
        or not isinstance(doc.get("customer_id"), str)
    ):
        return None
    return doc


def alert_age(alert: Mapping[str, Any], now: float) -> float | None:
    """Seconds from the alert's decision time to ``now``.

    >>> alert_age({"decision_time": "2026-01-01T00:00:00.000+00:00"}, 1767225601.5)
    1.5
    """
    try:
        return now - datetime.fromisoformat(str(alert["decision_time"])).timestamp()
    except (KeyError, ValueError):
        return None


class TopicIndexer:
    def __init__(
        self,
        settings: Settings,
        alert_log: AlertLog,
        index: Index,
        clock: Clock,
        retention_seconds: int,
    ) -> None:
        self._settings = settings
        self._log = alert_log
        self._index = index
        self._clock = clock
        self._retention = retention_seconds
        self.roles = {
            settings.kafka.topic("alerts"): "alerts",
            settings.kafka.topic("decisions"): "decisions",
        }
        self.assigned = False
        self.last_error: str | None = None
        self.batches = 0
        self._next: dict[TopicPartition, int] = {}

    async def run(self) -> None:
        delay = 0.5
        while True:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.assigned = False
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("API consumer: %s; restarting in %.1fs", self.last_error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _consume(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id="vigil-api",
        )
        await consumer.start()
        try:
            tps = await self._partitions(consumer)
            consumer.assign(tps)
            await self._seek(consumer, tps)
            self.assigned, self.last_error = True, None
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=500)
                if batch:
                    await self.handle(batch)
                self._report_lag(consumer, tps)
        finally:
            self.assigned = False
            await consumer.stop()

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        """Every partition of both topics; waits (not ready) until both topics exist."""
        while True:
            # A fresh metadata request (``consumer.topics()`` does not keep what it fetched for
            # ``partitions_for_topic`` when partitions are assigned by hand).
            cluster = await consumer._client.fetch_all_metadata()
            found = {t: cluster.partitions_for_topic(t) for t in self.roles}
            if all(found.values()):
                return [TopicPartition(t, p) for t, ps in found.items() for p in sorted(ps or ())]
            self.last_error = f"waiting for topics {sorted(t for t, p in found.items() if not p)}"
            await asyncio.sleep(1.0)

    async def _seek(self, consumer: AIOKafkaConsumer, tps: Sequence[TopicPartition]) -> None:
        saved = await self._index.offsets()
        fresh = [tp for tp in tps if f"{tp.topic}:{tp.partition}" not in saved]
        since = int((self._clock.now() - self._retention) * 1000)
        found = await consumer.offsets_for_times(dict.fromkeys(fresh, max(since, 0)))
        starts: dict[TopicPartition, int] = {}
        for tp in tps:
            position = saved.get(f"{tp.topic}:{tp.partition}")
            if position is None and found.get(tp) is not None:
                position = found[tp].offset
            if position is not None:
                starts[tp] = position
        ends = await consumer.end_offsets([tp for tp in tps if tp not in starts])
        for tp in tps:
            position = starts.get(tp, ends.get(tp))
            if position is None:  # pragma: no cover - end_offsets answers for every partition
                raise RuntimeError(f"no start offset for {tp}")
            consumer.seek(tp, position)
            self._next[tp] = position

    async def handle(self, batch: Mapping[TopicPartition, Sequence[Any]]) -> None:
        """Store one batch of records (alert log, then index), then save the positions."""
        alerts: list[dict[str, Any]] = []
        decisions: list[dict[str, Any]] = []
        positions: dict[str, int] = {}
        for tp, records in batch.items():
            role = self.roles.get(tp.topic, "")
            for rec in records:
                doc = read_message(role, rec.value)
                if doc is None:
                    metrics.BAD_MESSAGES.labels(role).inc()
                elif role == "alerts":
                    alerts.append(doc)
                else:
                    decisions.append(doc)
            if records:
                positions[f"{tp.topic}:{tp.partition}"] = records[-1].offset + 1
                self._next[tp] = records[-1].offset + 1
        if alerts:
            await self._log.append(alerts)
            age = alert_age(alerts[-1], self._clock.now())
            if age is not None:
                metrics.ALERT_STREAM_LAG.set(max(age, 0.0))
        await self._index.put(decisions, alerts)
        await self._index.save_offsets(positions)
        metrics.INDEXED.labels("alerts").inc(len(alerts))
        metrics.INDEXED.labels("decisions").inc(len(decisions))
        self.batches += 1

    def _report_lag(self, consumer: AIOKafkaConsumer, tps: Sequence[TopicPartition]) -> None:
        lag: dict[str, int] = dict.fromkeys(self.roles.values(), 0)
        for tp in tps:
            high, position = consumer.highwater(tp), self._next.get(tp)
            if high is not None and position is not None:
                lag[self.roles[tp.topic]] += max(high - position, 0)
        for role, n in lag.items():
            metrics.CONSUMER_LAG.labels(role).set(n)
