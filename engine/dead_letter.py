"""Dead-letter records: the original bytes, why they were refused, and where they came from."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from engine.decide import stable_id
from engine.events import InvalidEvent, iso


@dataclass(frozen=True, slots=True)
class InputRecord:
    """One consumed Kafka record, as a driver hands it to the pipeline."""

    value: bytes
    topic: str
    partition: int
    offset: int
    timestamp: float | None = None  # when the record reached Kafka (seconds), if known
    key: bytes | None = None


def dead_letter(record: InputRecord, invalid: InvalidEvent, received_at: float) -> dict[str, Any]:
    """The DLQ message: enough to understand, fix and re-publish the record."""
    try:
        text: str | None = record.value.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return {
        "dlq_id": stable_id("q", record.topic, str(record.partition), str(record.offset)),
        "reason": invalid.reason.value,
        "message": invalid.message,
        "source": {"topic": record.topic, "partition": record.partition, "offset": record.offset},
        "event_id": invalid.event_id,
        "customer_id": invalid.customer_id,
        "received_at": iso(received_at),
        "original_size": len(record.value),
        "original_b64": base64.b64encode(record.value).decode("ascii"),
        "original_text": text if text is not None and len(text) <= 4096 else None,
    }
