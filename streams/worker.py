"""`vigil worker`: the Faust worker process that drives the DecisionPipeline."""

from __future__ import annotations

import gc
import logging
from collections.abc import Awaitable
from typing import Any

import faust
from prometheus_client import start_http_server

from engine.config import Settings
from engine.wiring import build_pipeline
from streams.agents import register
from streams.app import create_app
from streams.sinks import KafkaSink

log = logging.getLogger(__name__)


def faust_send(app: faust.App) -> Any:
    async def send(topic: str, key: bytes, value: bytes) -> Awaitable[Any]:
        return await app.producer.send(topic, key, value, None, None, None)

    return send


def build_worker(settings: Settings) -> faust.App:
    app = create_app(settings)
    pipeline, rules = build_pipeline(settings, KafkaSink(faust_send(app), settings.kafka))
    register(app, pipeline, rules, settings)

    @app.task
    async def _started() -> None:
        # Long-lived start-up objects leave the collector's generations: shorter GC pauses.
        gc.collect()
        gc.freeze()
        log.info(
            "vigil worker started: group=%s inputs=%s rules=%s",
            settings.kafka.consumer_group,
            ",".join(settings.kafka.input_topics),
            rules.current.version,
        )

    return app


def run_worker(settings: Settings) -> None:
    w = settings.worker
    if w.metrics_port:
        start_http_server(w.metrics_port, addr=w.metrics_host)
    app = build_worker(settings)
    # Faust names two levels its own way.
    level = settings.log_level.lower()
    level = {"warning": "warn", "critical": "crit"}.get(level, level)
    worker = faust.Worker(app, loglevel=level, quiet=True)
    worker.execute_from_commandline()
