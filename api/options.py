"""The API's tunables: retention of the alert stream, webhook delivery, stream clients.

``ApiOptions.from_settings(settings.api)`` takes every field that ``ApiSettings`` defines under
the same name (``VIGIL_API__WEBHOOK_MAX_ATTEMPTS``, ...) and keeps the defaults below for the
rest, so tests can pass their own options to ``create_app`` without touching the environment.

>>> ApiOptions().webhook_max_attempts
6
>>> ApiOptions(alert_retention_seconds=60).alert_retention_seconds
60
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class ApiOptions:
    # The alert stream (a Redis Stream shared by every API replica): how long alerts are kept
    # for resuming clients and webhook retries, and a hard cap on its length.
    alert_retention_seconds: int = 6 * 3600
    alert_log_max: int = 200_000
    # The customer/decision index built from the decisions and alerts topics.
    index_ttl_seconds: int = 7 * 86400
    recent_per_customer: int = 50
    # SSE and WebSocket clients.
    stream_batch: int = 200
    stream_heartbeat_seconds: float = 15.0
    stream_send_timeout_seconds: float = 30.0
    stream_backlog_max: int = 1000
    stream_token_ttl_seconds: int = 600
    # Webhooks: attempts before dead-lettering, exponential backoff, per-request timeout,
    # deliveries in flight per API process, and how long a claimed delivery stays leased.
    webhook_max_attempts: int = 6
    webhook_backoff_base_seconds: float = 1.0
    webhook_backoff_max_seconds: float = 300.0
    webhook_timeout_seconds: float = 5.0
    webhook_concurrency: int = 16
    webhook_lease_seconds: float = 60.0
    webhook_history: int = 50
    webhook_dead_letters_kept: int = 1000
    webhook_poll_seconds: float = 0.25
    # Readiness: the Kafka metadata request's timeout and how long an answer is reused.
    ready_cache_seconds: float = 3.0
    kafka_timeout_seconds: float = 2.0
    # Background tasks (tests may turn them off to drive them by hand).
    run_consumer: bool = True
    run_webhooks: bool = True

    @classmethod
    def from_settings(cls, api: Any) -> ApiOptions:
        """The options ``api`` (an ``ApiSettings``) sets; defaults for the others."""
        return cls(**{f.name: getattr(api, f.name) for f in fields(cls) if hasattr(api, f.name)})
