"""`vigil publish` and `vigil tail`: the simplest producer and subscriber of Vigil's topics."""

from __future__ import annotations

import asyncio
import gzip
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from engine.config import Settings

TOPIC_BY_TYPE = {
    "transaction": "transactions",
    "app": "app",
    "outcome": "outcomes",
    "profile": "profile",
}


def read_lines(path: Path) -> Iterator[bytes]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        for line in fh:
            line = line.rstrip(b"\r\n")
            if line:
                yield line


def route(line: bytes, settings: Settings) -> tuple[str, bytes | None]:
    """The input topic (by the event's type) and key (customer_id) of one line.

    A line that cannot be read goes to the transactions topic unkeyed: the worker dead-letters it.
    """
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return settings.kafka.topic("transactions"), None
    if not isinstance(doc, dict):
        return settings.kafka.topic("transactions"), None
    role = TOPIC_BY_TYPE.get(str(doc.get("type")), "transactions")
    cid = doc.get("customer_id")
    return settings.kafka.topic(role), str(cid).encode() if cid is not None else None


async def publish(
    settings: Settings,
    path: Path,
    rate: float | None = None,
    topic: str | None = None,
    out: IO[str] = sys.stderr,
) -> int:
    """Send every line of a JSONL file (plain or .gz) to the input topics. Returns the count."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        linger_ms=5,
        acks="all",
        max_request_size=settings.kafka.max_request_bytes,
    )
    await producer.start()
    sent = 0
    started = time.monotonic()
    try:
        pending = []
        for line in read_lines(path):
            target, key = route(line, settings)
            pending.append(await producer.send(topic or target, value=line, key=key))
            sent += 1
            if rate:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    elapsed = time.monotonic() - started
    print(f"published {sent} events from {path} in {elapsed:.1f}s", file=out)
    return sent


async def tail(
    settings: Settings,
    topic: str,
    from_beginning: bool = False,
    max_messages: int | None = None,
    idle_timeout: float | None = None,
    out: IO[str] = sys.stdout,
) -> int:
    """Print a topic's messages as JSON lines (non-JSON values as a JSON string). Returns count."""
    name = topic if topic in _all_topics(settings) else settings.kafka.topic(topic)
    consumer = AIOKafkaConsumer(
        name,  # no group: every partition is assigned to this reader
        bootstrap_servers=settings.kafka.bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    await consumer.start()
    count = 0
    try:
        if name not in await consumer.topics():
            raise SystemExit(f"topic {name!r} does not exist on {settings.kafka.bootstrap_servers}")
        last = time.monotonic()
        while max_messages is None or count < max_messages:
            batch = await consumer.getmany(timeout_ms=200)
            if not batch:
                if idle_timeout is not None and time.monotonic() - last > idle_timeout:
                    break
                continue
            last = time.monotonic()
            for records in batch.values():
                for rec in records:
                    out.write(_as_json_line(rec.value) + "\n")
                    count += 1
                    if max_messages is not None and count >= max_messages:
                        break
                if max_messages is not None and count >= max_messages:
                    break
            out.flush()
    finally:
        await consumer.stop()
    return count


def _all_topics(settings: Settings) -> tuple[str, ...]:
    return settings.kafka.input_topics + settings.kafka.output_topics


def _as_json_line(value: bytes | None) -> str:
    if value is None:
        return "null"
    try:
        doc: Any = orjson.loads(value)
    except orjson.JSONDecodeError:
        doc = value.decode("utf-8", errors="replace")
    return orjson.dumps(doc).decode()
