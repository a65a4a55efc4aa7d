"""Helpers for integration tests: a real worker process, a producer, and topic readers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from engine.config import Settings
from services.topics import ensure_topics

ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess:
    """`vigil worker` in a subprocess, with its output in a log file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        fh = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "worker"],
            cwd=ROOT,
            env=self.env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        fh.close()
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown, no commit."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait: a graceful stop commits offsets."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


async def create_topics(settings: Settings) -> None:
    await ensure_topics(settings)


async def produce(settings: Settings, items: Iterable[tuple[str, bytes | None, bytes]]) -> int:
    """Send (topic role or name, key, value) records and wait until all are acknowledged."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, acks="all")
    await producer.start()
    n = 0
    try:
        futures = []
        for topic, key, value in items:
            name = settings.kafka.topic(topic) if hasattr(settings.kafka.topics, topic) else topic
            futures.append(await producer.send(name, value=value, key=key))
            n += 1
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return n


def event_bytes(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)


def topic_role(event: dict[str, Any]) -> str:
    return {
        "transaction": "transactions",
        "app": "app",
        "outcome": "outcomes",
        "profile": "profile",
    }.get(str(event.get("type")), "transactions")


async def read_topic(
    settings: Settings,
    role: str,
    until: Callable[[list[dict[str, Any]]], bool],
    timeout: float,
) -> list[dict[str, Any]]:
    """Every message of a topic from the beginning, until ``until(messages)`` or the timeout."""
    name = settings.kafka.topic(role)
    consumer = AIOKafkaConsumer(
        name,
        bootstrap_servers=settings.kafka.bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    out: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=250)
            for records in batch.values():
                out.extend(orjson.loads(r.value) for r in records)
            if until(out):
                break
    finally:
        await consumer.stop()
    return out
