"""The Faust application of the worker: settings in, a configured ``faust.App`` out."""

from __future__ import annotations

import faust

from engine.config import Settings


def create_app(settings: Settings) -> faust.App:
    k = settings.kafka
    datadir = (settings.services.run_dir / "faust" / k.consumer_group).resolve()
    datadir.parent.mkdir(parents=True, exist_ok=True)
    return faust.App(
        k.consumer_group,
        broker=[f"kafka://{server.strip()}" for server in k.bootstrap_servers.split(",")],
        # Vigil decodes and validates the bytes itself: bad input goes to the DLQ, not a crash.
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=k.partitions,
        topic_replication_factor=k.replication_factor,
        # Topics are created by `vigil services up` (or the ops team): never auto-declared.
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        producer_linger=0.0,
        producer_max_request_size=k.max_request_bytes,
        producer_acks=-1,
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        stream_wait_empty=True,
        web_enabled=False,
        store="memory://",
        datadir=str(datadir),
        loghandlers=[],
    )
