"""Webhook delivery: alerts from the alert log to every matching subscription, signed, retried
with exponential backoff and dead-lettered after ``webhook_max_attempts`` failures.

Two loops per API process, safe to run on several replicas at once:

- *fan-out* reads new alert log entries through the consumer group ``webhooks`` (each entry goes
  to one replica; one not acknowledged within the lease is claimed by another), turns each
  (matching subscription, entry) into a job in the shared queue, then acknowledges the entries;
- *delivery* claims due jobs for a lease, POSTs them with at most ``webhook_concurrency`` in
  flight and a ``webhook_timeout_seconds`` bound on each, and records the result.

Delivery is at least once: a receiver deduplicates by the ``Vigil-Delivery`` header. The request:

    POST <url>
    Content-Type: application/json
    Vigil-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>
    Vigil-Delivery: <subscription id>:<alert id>     (the same on every retry)
    Vigil-Attempt: <1, 2, ...>

    {"delivery_id": ..., "subscription_id": ..., "event_id": <alert log id>, "alert": {...}}

Any 2xx answer is a success; anything else (another status, a refused connection, a timeout) is
a failed attempt. Redirects are not followed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import httpx
import orjson

from api import metrics
from api.alert_log import AlertLog, LogEntry
from api.options import ApiOptions
from api.signing import (
    ATTEMPT_HEADER,
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    backoff,
    sign,
    spread_of,
)
from api.subscriptions import DeliveryRecord, Job, SubscriptionStore
from engine.clock import Clock

log = logging.getLogger(__name__)
GROUP = "webhooks"
USER_AGENT = "vigil-webhooks/0.1"


def new_http_client(options: ApiOptions) -> httpx.AsyncClient:
    """The client every delivery goes through: bounded pool, no redirects, no proxy variables."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(options.webhook_timeout_seconds),
        limits=httpx.Limits(max_connections=options.webhook_concurrency),
        follow_redirects=False,
        trust_env=False,
    )


class WebhookDispatcher:
    def __init__(
        self,
        log: AlertLog,
        subs: SubscriptionStore,
        options: ApiOptions,
        clock: Clock,
        client: httpx.AsyncClient,
        consumer: str,
    ) -> None:
        self._log = log
        self._subs = subs
        self._o = options
        self._clock = clock
        self._client = client
        self._consumer = consumer
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task[DeliveryRecord | None]] = set()
        self.running = False

    # ------------------------------------------------------------------ fan-out

    async def fan_out(self, block_seconds: float = 1.0) -> int:
        """Queue a job per (new entry, matching subscription); returns the jobs queued."""
        entries = await self._log.read_group(
            GROUP, self._consumer, 200, block_seconds, self._o.webhook_lease_seconds
        )
        if not entries:
            return 0
        subs = await self._subs.all()
        jobs = [(s.id, e.id) for e in entries for s in subs if s.filter.matches(e.alert)]
        await self._subs.enqueue(jobs, due=self._clock.now())
        await self._log.ack(GROUP, [e.id for e in entries])
        if jobs:
            self._wake.set()
        return len(jobs)

    # ------------------------------------------------------------------ delivery

    async def deliver_due(self) -> list[DeliveryRecord]:
        """Claim the jobs due now (up to the free slots) and deliver them; wait for all."""
        now = self._clock.now()
        jobs = await self._subs.claim(
            now, self._o.webhook_concurrency, now + self._o.webhook_lease_seconds
        )
        done = await asyncio.gather(*(self.deliver(job) for job in jobs))
        return [r for r in done if r is not None]

    async def deliver(self, job: Job) -> DeliveryRecord | None:
        sub = await self._subs.get(job.sub_id)
        if sub is None:
            await self._subs.drop(job)
            return None
        entry = await self._log.entry(job.entry_id)
        attempt = job.attempts + 1
        alert_id = str(entry.alert.get("alert_id")) if entry is not None else None
        delivery_id = f"{sub.id}:{alert_id or job.entry_id}"
        started = time.perf_counter()
        status: int | None = None
        if entry is None:
            error: str | None = "the alert left the alert log (retention) before delivery"
            attempt = self._o.webhook_max_attempts  # nothing to retry: dead-letter now
        else:
            status, error = await self._post(sub.url, sub.secret, delivery_id, attempt, entry)
        elapsed = time.perf_counter() - started
        metrics.WEBHOOK_SECONDS.observe(elapsed)
        at = self._clock.now()
        if error is None:
            record = DeliveryRecord(
                delivery_id, alert_id, job.entry_id, attempt, "delivered", status, None, at, elapsed
            )
            await self._subs.succeeded(job, record, self._o.webhook_history)
            metrics.WEBHOOK_DELIVERIES.labels("delivered").inc()
            return record
        dead = attempt >= self._o.webhook_max_attempts
        result = "dead_lettered" if dead else "failed"
        record = DeliveryRecord(
            delivery_id, alert_id, job.entry_id, attempt, result, status, error, at, elapsed
        )
        retry_at = (
            None
            if dead
            else at
            + backoff(
                attempt,
                self._o.webhook_backoff_base_seconds,
                self._o.webhook_backoff_max_seconds,
                spread_of(delivery_id),
            )
        )
        letter = (
            {
                "delivery_id": delivery_id,
                "alert_id": alert_id,
                "event_id": job.entry_id,
                "attempts": attempt,
                "last_error": error,
                "last_status_code": status,
                "dead_lettered_at": at,
                "alert": dict(entry.alert) if entry is not None else None,
            }
            if dead
            else None
        )
        await self._subs.failed(
            job,
            record,
            self._o.webhook_history,
            retry_at,
            letter,
            self._o.webhook_dead_letters_kept,
        )
        metrics.WEBHOOK_DELIVERIES.labels(result).inc()
        return record

    async def _post(
        self, url: str, secret: str, delivery_id: str, attempt: int, entry: LogEntry
    ) -> tuple[int | None, str | None]:
        body = orjson.dumps(
            {
                "delivery_id": delivery_id,
                "subscription_id": delivery_id.split(":", 1)[0],
                "event_id": entry.id,
                "alert": entry.alert,
            }
        )
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign(secret, int(self._clock.now()), body),
            DELIVERY_HEADER: delivery_id,
            ATTEMPT_HEADER: str(attempt),
        }
        try:
            async with (
                asyncio.timeout(self._o.webhook_timeout_seconds),
                self._client.stream("POST", url, content=body, headers=headers) as resp,
            ):
                status = resp.status_code  # the body is never read: receivers cannot flood us
        except Exception as exc:  # any failure to deliver is a failed attempt, never a crash
            return None, f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__
        if 200 <= status < 300:
            return status, None
        return status, f"HTTP {status}"

    async def close(self) -> None:
        await self._client.aclose()

    # ------------------------------------------------------------------ loops

    async def run(self) -> None:
        self.running = True
        try:
            await asyncio.gather(
                _forever("webhook fan-out", self._fan_out_loop),
                _forever("webhook delivery", self._delivery_loop),
            )
        finally:
            self.running = False
            for task in list(self._inflight):
                task.cancel()

    async def _fan_out_loop(self) -> None:
        while True:
            await self.fan_out(block_seconds=1.0)

    async def _delivery_loop(self) -> None:
        while True:
            free = self._o.webhook_concurrency - len(self._inflight)
            if free > 0:
                now = self._clock.now()
                for job in await self._subs.claim(now, free, now + self._o.webhook_lease_seconds):
                    task = asyncio.create_task(self.deliver(job))
                    self._inflight.add(task)
                    task.add_done_callback(self._finished)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._o.webhook_poll_seconds)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._inflight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("webhook delivery failed unexpectedly: %r", task.exception())
        self._wake.set()


async def _forever(name: str, loop: Any) -> None:
    """Run ``loop`` again after an error (Redis down, ...), backing off up to 10 s."""
    delay = 0.5
    while True:
        try:
            await loop()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s: %s: %s; again in %.1fs", name, type(exc).__name__, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
