"""Readiness checks, each answer reused for a few seconds so probes cannot hammer Kafka."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from aiokafka.client import AIOKafkaClient

from engine.config import Settings


class KafkaCheck:
    """A metadata request to the brokers, with a timeout: are they up, and do the API's topics
    exist? One client kept open and re-created after a failure."""

    def __init__(self, settings: Settings, timeout: float, cache_seconds: float) -> None:
        self._bootstrap = settings.kafka.bootstrap_servers
        self._topics = (settings.kafka.topic("alerts"), settings.kafka.topic("decisions"))
        self._timeout = timeout
        self._cache = cache_seconds
        self._client: AIOKafkaClient | None = None
        self._answer: tuple[float, dict[str, Any]] | None = None
        self._lock = asyncio.Lock()

    async def check(self) -> dict[str, Any]:
        async with self._lock:
            if self._answer is not None and time.monotonic() - self._answer[0] < self._cache:
                return self._answer[1]
            answer = await self._ask()
            self._answer = (time.monotonic(), answer)
            return answer

    async def _ask(self) -> dict[str, Any]:
        try:
            async with asyncio.timeout(self._timeout):
                if self._client is None:
                    self._client = AIOKafkaClient(
                        bootstrap_servers=self._bootstrap, client_id="vigil-api-health"
                    )
                    await self._client.bootstrap()
                metadata = await self._client.fetch_all_metadata()
        except Exception as exc:  # any failure means "not ready"; the reason is reported
            await self.close()
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:200]}
        missing = sorted(t for t in self._topics if t not in metadata.topics())
        if missing:
            return {"ok": False, "error": f"missing topics {missing}"}
        return {"ok": True, "brokers": len(metadata.brokers())}

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):  # a broken client is dropped either way
                await client.close()
