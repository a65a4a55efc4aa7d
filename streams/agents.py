"""The worker's Faust agent: a thin driver of the DecisionPipeline.

It takes small batches (one Redis round trip each), hands them to the pipeline, and retries a
batch that failed on Redis or Kafka until it succeeds: offsets are acknowledged only after the
pipeline returned, that is, after every output is durable. If the worker is stopped while a
batch cannot complete, it exits without acknowledging it, so the batch is redelivered.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust

from engine import metrics
from engine.config import Settings
from engine.dead_letter import InputRecord
from engine.errors import InfrastructureError
from engine.pipeline import DecisionPipeline
from online_models.settings import model_settings  # [models]
from rules.reload import RuleSetHolder
from streams.model_store import model_swapper  # [models]

log = logging.getLogger(__name__)
EXIT_UNFINISHED_BATCH = 75


def to_input(event: Any) -> InputRecord:
    msg = event.message
    value = event.value if isinstance(event.value, bytes) else bytes(event.value or b"")
    return InputRecord(value, msg.topic, msg.partition, msg.offset, msg.timestamp, event.key)


async def process_with_retry(
    process: Callable[[Sequence[InputRecord]], Awaitable[object]],
    records: Sequence[InputRecord],
    backoff_max: float,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Run ``process`` until it succeeds; infrastructure errors wait and try again."""
    delay = 0.05
    while True:
        try:
            await process(records)
            return
        except InfrastructureError as exc:
            metrics.RETRIES.inc()
            log.warning("batch of %d failed, retrying in %.2fs: %s", len(records), delay, exc)
            await sleep(delay)
            delay = min(delay * 2, backoff_max)


def register(
    app: faust.App, pipeline: DecisionPipeline, rules: RuleSetHolder, settings: Settings
) -> None:
    w = settings.worker
    source = app.topic(*settings.kafka.input_topics, key_type=bytes, value_type=bytes)
    models = model_swapper(settings, pipeline.scorer)  # [models] hot-swap of model snapshots

    @app.agent(source, name="vigil.decide")
    async def decide_events(stream: Any) -> None:
        await models.poll()  # [models] the first batch is scored by the latest snapshot
        async for events in stream.take_events(w.batch_max, within=w.batch_within_seconds):
            records = [to_input(e) for e in events]
            task = asyncio.ensure_future(
                process_with_retry(pipeline.process, records, w.retry_backoff_max_seconds)
            )
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                # Stopping: let the batch finish so its acknowledgement is true, or leave
                # without acknowledging it (the next worker will get it again).
                try:
                    await asyncio.wait_for(task, timeout=10.0)
                except (TimeoutError, Exception):
                    log.error("stopping with an unfinished batch: exiting without committing it")
                    os._exit(EXIT_UNFINISHED_BATCH)
                raise

    @app.timer(interval=w.rules_reload_seconds)
    async def reload_rules() -> None:
        rules.check()

    # [models] newer model snapshots: compare numbers (one small read), swap between batches
    @app.timer(interval=model_settings(settings).poll_seconds)
    async def reload_models() -> None:
        await models.poll()
