"""`vigil learner`: the one process where every model learns.

A Faust app in its own consumer group (the workers' group + ``-learner``) reads the
``decisions`` topic: the decision records carry the features each decision saw, and outcome
events come through the worker as decision records too, in the same partition (keyed by
customer) after the decisions that preceded them. ``online_models.learner.Learner`` does the
learning; this module only loads and saves its pending snapshots (Redis), publishes model
snapshots every ``models.snapshot_seconds`` (and on a graceful stop), and restores them at start.

At most one learner learns: each holds the learner's lease (``online_models.lease``) before it
joins its consumer group, so a second one stands by outside the group (its partitions would
otherwise be taken and half-taught models published). The holder renews the lease every third
of ``models.learner_lease_seconds`` and publishes snapshots only while it holds it (the publish
script checks). Once a renewal or a publish finds the lease gone, it exits at once with status
3, without committing the offsets of what it learned since its last snapshot: the new holder
gets those records again. A standby polls every third of the lease period: it takes over that
soon after a graceful stop (which releases the lease), within a lease period after a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust
import orjson
import typer
from prometheus_client import start_http_server

from engine.clock import Clock, WallClock
from engine.config import Settings, load_settings
from engine.errors import InfrastructureError, SnapshotError
from online_models import metrics as prom
from online_models.catalog import build_catalog
from online_models.labels import LabelStore
from online_models.learner import Learner, LearnerConfig
from online_models.lease import Lease, LeaseLostError
from online_models.settings import model_settings
from online_models.snapshots import SnapshotStore
from streams.agents import process_with_retry
from streams.app import create_app
from streams.model_store import label_store, learner_lease, redis_client, snapshot_store

log = logging.getLogger(__name__)

LEASE_LOST_EXIT = 3  # a supervisor restarts the learner: as a standby
# The lease is first taken for this many periods: it must outlast Faust's start-up.
FIRST_PERIODS = 3


def learner_owner() -> str:
    """This learner's name in the lease: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class LeaseKeeper:
    """Takes, renews and gives up the learner's lease; ``lost`` once it may no longer learn."""

    def __init__(self, lease: Lease, owner: str, ttl: float, clock: Clock | None = None) -> None:
        self.lease = lease  # replaceable (``rebind``): a client belongs to one event loop
        self.owner = owner
        self.ttl = ttl
        self.clock = clock or WallClock()
        self.lost = False
        self._confirmed_at: float | None = None

    async def wait(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """Block until this learner holds the lease (a standby waits here, outside the group)."""
        said: object = object()
        while True:
            try:
                # Taken for a longer first period: Faust starts before the first renewal.
                if await self.lease.acquire(self.owner, self.ttl * FIRST_PERIODS):
                    self._confirmed_at = self.clock.now()
                    log.info("learner: holding the lease as %s", self.owner)
                    return
                holder = await self.lease.holder()
                if holder != said:
                    log.info("learner: standing by, the lease is held by %s", holder)
                    said = holder
            except InfrastructureError as exc:
                log.warning("learner: the lease could not be checked, retrying: %s", exc)
            await sleep(self.ttl / 3)

    def rebind(self, lease: Lease) -> None:
        """Use another client to the same lease (the next event loop's), keeping what was
        confirmed when."""
        self.lease = lease

    async def renew(self) -> bool:
        """Renew the lease; False from the moment it is lost: another learner holds it, or
        Redis has not confirmed it for two thirds of a lease period (the renewal after that
        could come too late)."""
        if self.lost:
            return False
        now = self.clock.now()
        try:
            if await self.lease.renew(self.owner, self.ttl):
                self._confirmed_at = now
                return True
            self.lost = True
        except InfrastructureError as exc:
            since = self._confirmed_at if self._confirmed_at is not None else now
            if now - since >= self.ttl * 2 / 3:
                self.lost = True
            else:
                log.warning("learner: lease not renewed, retrying: %s", exc)
        return not self.lost

    async def release(self) -> None:
        """Give the lease up (a graceful stop): a standby takes over at its next poll."""
        if self.lost:
            return
        try:
            await self.lease.release(self.owner)
        except InfrastructureError as exc:
            log.warning("learner: lease not released (it expires by itself): %s", exc)


class LearnerRunner:
    """Drives a ``Learner`` from batches of raw decision records, against the two stores."""

    def __init__(self, learner: Learner, labels: LabelStore, snapshots: SnapshotStore) -> None:
        self.learner = learner
        self.labels = labels
        self.snapshots = snapshots
        self.ready = False
        self.batches = 0
        # False once the lease is lost: nothing more is published.
        self.holding = True

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
        """Publish every model (and the learner's state) if anything was learned since, and
        only while this learner holds the lease."""
        if not self.holding:
            return {}
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


def build_runner(settings: Settings, owner: str | None = None) -> LearnerRunner:
    """The runner on Redis; with ``owner``, its snapshots are published only under the lease."""
    ms = model_settings(settings)
    client = redis_client(settings)
    learner = Learner(
        LearnerConfig.from_settings(ms, settings.model_seed),
        build_catalog(ms.challenger, ms.min_examples),
    )
    snapshots = snapshot_store(settings, client, fence_owner=owner)
    return LearnerRunner(learner, label_store(settings, client), snapshots)


def build_learner(settings: Settings, keeper: LeaseKeeper) -> tuple[faust.App, LearnerRunner]:
    """The learner's Faust app; ``keeper`` already holds the lease (``LeaseKeeper.wait``)."""
    ms = model_settings(settings)
    group = settings.kafka.consumer_group + ms.learner_group_suffix
    kafka = settings.kafka.model_copy(update={"consumer_group": group})
    app = create_app(settings.model_copy(update={"kafka": kafka}))
    runner = build_runner(settings, keeper.owner)
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

    async def lease_lost(why: str) -> None:
        """Exit now: no graceful stop, so nothing more is published or committed (the new
        holder is handed the records learned since the last snapshot again)."""
        runner.holding = False
        holder = None
        with contextlib.suppress(InfrastructureError):
            holder = await keeper.lease.holder()
        log.critical("learner: lost the lease (held by %s now): %s; exiting", holder, why)
        logging.shutdown()
        os._exit(LEASE_LOST_EXIT)

    @app.timer(interval=ms.snapshot_seconds)
    async def checkpoint() -> None:
        if runner.ready:
            try:
                await runner.publish()
            except LeaseLostError as exc:
                await lease_lost(str(exc))

    async def keep_lease() -> None:
        if runner.holding and not await keeper.renew():
            await lease_lost("the renewal failed")

    @app.timer(interval=keeper.ttl / 3)
    async def renew_lease() -> None:
        await keep_lease()

    @app.on_before_shutdown.connect
    async def final_checkpoint(sender: Any, /, *args: Any, **kwargs: Any) -> None:
        if runner.ready and runner.holding:
            try:
                await runner.publish()
            except Exception as exc:  # stopping anyway: say what is lost
                log.error("learner: final snapshot not published: %s", exc)
        runner.holding = False
        await keeper.release()
        await keeper.lease.close()

    @app.task
    async def started() -> None:
        await keep_lease()  # the first renewal as soon as the app runs
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
    owner, ttl = learner_owner(), ms.learner_lease_seconds

    keeper = LeaseKeeper(learner_lease(settings), owner, ttl)

    async def wait_for_lease() -> None:
        try:
            await keeper.wait()
        finally:
            await keeper.lease.close()  # its client belongs to this loop, which ends here

    # Faust sets up logging when it starts; until then, say what the standby is doing.
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s")
    )
    log.addHandler(handler)
    log.setLevel(getattr(logging, settings.log_level.upper(), logging.INFO))
    try:
        asyncio.run(wait_for_lease())
    finally:
        log.removeHandler(handler)
        log.setLevel(logging.NOTSET)
    keeper.rebind(learner_lease(settings))  # a new client for Faust's event loop
    app, _ = build_learner(settings, keeper)
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
