"""`vigil learner`: the one process where every model learns.

A Faust app in its own consumer group (the workers' group + ``-learner``) reads the
``decisions`` topic: the decision records carry the features each decision saw, and outcome
events come through the worker as decision records too, in the same partition (keyed by
customer) after the decisions that preceded them. ``online_models.learner.Learner`` does the
learning; this module only loads and saves its pending snapshots (Redis), publishes model
snapshots every ``models.snapshot_seconds`` (and on a graceful stop), and restores them at start.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

import faust
import orjson
import typer
from prometheus_client import start_http_server

from engine.config import Settings, load_settings
from engine.errors import SnapshotError
from online_models import metrics as prom
from online_models.catalog import build_catalog
from online_models.labels import LabelStore
from online_models.learner import Learner, LearnerConfig
from online_models.settings import model_settings
from online_models.snapshots import SnapshotStore
from streams.agents import process_with_retry
from streams.app import create_app
from streams.model_store import label_store, redis_client, snapshot_store

log = logging.getLogger(__name__)


class LearnerRunner:
    """Drives a ``Learner`` from batches of raw decision records, against the two stores."""

    def __init__(self, learner: Learner, labels: LabelStore, snapshots: SnapshotStore) -> None:
        self.learner = learner
        self.labels = labels
        self.snapshots = snapshots
        self.ready = False
        self.batches = 0

    async def start(self) -> None:
        """Restore the latest published snapshots (a refused one: that model starts fresh)."""
        if self.ready:
            return
        for name in self.learner.snapshot_names():
            found = await self.snapshots.fetch(name)
            if found is None:
                continue
            number, blob = found
            try:
                self.learner.restore(name, number, blob)
            except SnapshotError as exc:
                prom.SNAPSHOT_REFUSED.labels(name).inc()
                log.error(
                    "learner: %s starts fresh, its snapshot %d is refused: %s", name, number, exc
                )
                continue
            self.learner.published(name, number)
            log.info("learner: restored %s from snapshot %d", name, number)
        self.ready = True

    async def process(self, values: Sequence[bytes]) -> None:
        started = time.perf_counter()
        records: list[dict[str, Any]] = []
        for value in values:
            try:
                doc = orjson.loads(value)
            except (orjson.JSONDecodeError, TypeError):
                doc = None
            if isinstance(doc, dict):
                records.append(doc)
            else:
                self.learner.counts["bad_records"] += 1
                prom.BAD_RECORDS.inc()
        view = await self.labels.checkout(self.learner.plan(records))
        self.learner.observe(records, view)
        await self.labels.commit(view)
        self.learner.export_metrics()
        self.batches += 1
        prom.LEARN_BATCH.observe(time.perf_counter() - started)

    async def publish(self, force: bool = False) -> dict[str, int]:
        """Publish every model (and the learner's state) if anything was learned since."""
        if not (force or self.learner.changes):
            return {}
        out: dict[str, int] = {}
        for name in self.learner.snapshot_names():
            blob = self.learner.export(name)
            number = await self.snapshots.publish(name, blob)
            self.learner.published(name, number)
            prom.SNAPSHOTS_PUBLISHED.labels(name).inc()
            prom.SNAPSHOT_BYTES.labels(name).set(len(blob))
            out[name] = number
        self.learner.changes = 0
        log.info("learner: published snapshots %s", out)
        return out


def build_runner(settings: Settings) -> LearnerRunner:
    ms = model_settings(settings)
    client = redis_client(settings)
    learner = Learner(
        LearnerConfig.from_settings(ms, settings.model_seed),
        build_catalog(ms.challenger, ms.min_examples),
    )
    return LearnerRunner(learner, label_store(settings, client), snapshot_store(settings, client))


def build_learner(settings: Settings) -> tuple[faust.App, LearnerRunner]:
    ms = model_settings(settings)
    group = settings.kafka.consumer_group + ms.learner_group_suffix
    kafka = settings.kafka.model_copy(update={"consumer_group": group})
    app = create_app(settings.model_copy(update={"kafka": kafka}))
    runner = build_runner(settings)
    backoff = settings.worker.retry_backoff_max_seconds
    source = app.topic(settings.kafka.topic("decisions"), key_type=bytes, value_type=bytes)

    @app.agent(source, name="vigil.learn")
    async def learn(stream: Any) -> None:
        await runner.start()
        async for values in stream.take(
            ms.learner_batch_max, within=ms.learner_batch_within_seconds
        ):
            # process_with_retry is generic in what a batch holds (typed for the worker's).
            await process_with_retry(runner.process, values, backoff)  # type: ignore[arg-type]

    @app.timer(interval=ms.snapshot_seconds)
    async def checkpoint() -> None:
        if runner.ready:
            await runner.publish()

    @app.on_before_shutdown.connect
    async def final_checkpoint(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        if runner.ready:
            try:
                await runner.publish()
            except Exception as exc:  # stopping anyway: say what is lost
                log.error("learner: final snapshot not published: %s", exc)

    @app.task
    async def started() -> None:
        log.info(
            "vigil learner started: group=%s topic=%s snapshot every %.0fs",
            group,
            settings.kafka.topic("decisions"),
            ms.snapshot_seconds,
        )

    return app, runner


def run_learner(settings: Settings) -> None:
    ms = model_settings(settings)
    if ms.learner_metrics_port:
        start_http_server(ms.learner_metrics_port, addr=settings.worker.metrics_host)
    app, _ = build_learner(settings)
    worker = faust.Worker(app, loglevel=settings.log_level.lower(), quiet=True)
    worker.execute_from_commandline()


def learner_command() -> None:
    """Run the learner: learn every model from decisions and late outcomes, publish snapshots."""
    try:
        settings = load_settings()
    except Exception as exc:  # pydantic's ValidationError names the variable and the problem
        typer.echo(f"error: invalid settings: {exc}", err=True)
        raise typer.Exit(2) from None
    sys.argv = [sys.argv[0], "worker"]  # Faust's worker reads argv; give it only its own verb
    run_learner(settings)


if __name__ == "__main__":  # `python -m streams.learner`, before `vigil learner` is mounted
    learner_command()
