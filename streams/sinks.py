"""The Kafka output sink: every record produced, then awaited until the broker has it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson

from engine.config import KafkaSettings
from engine.errors import InfrastructureError
from engine.ports import OutRecord

# (topic, key, value) -> awaitable that resolves when the record is durable
SendFn = Callable[[str, bytes, bytes], Awaitable[Awaitable[Any]]]


class KafkaSink:
    """``OutputSink`` on Kafka. ``send`` is the producer's send (faust's or aiokafka's)."""

    def __init__(self, send: SendFn, kafka: KafkaSettings) -> None:
        self._send = send
        self._topics = {
            role: kafka.topic(role) for role in ("alerts", "actions", "decisions", "dlq")
        }

    async def emit(self, records: Sequence[OutRecord]) -> None:
        if not records:
            return
        try:
            pending = [
                await self._send(self._topics[r.role], r.key.encode(), orjson.dumps(r.value))
                for r in records
            ]
            await asyncio.gather(*pending)
        except (asyncio.CancelledError, InfrastructureError):
            raise
        except Exception as exc:  # aiokafka raises many types; all mean "not durable"
            raise InfrastructureError(f"Kafka produce failed: {type(exc).__name__}: {exc}") from exc


def aiokafka_send(producer: Any) -> SendFn:
    """A ``SendFn`` over an ``AIOKafkaProducer``."""

    async def send(topic: str, key: bytes, value: bytes) -> Awaitable[Any]:
        return await producer.send(topic, value=value, key=key)  # type: ignore[no-any-return]

    return send
