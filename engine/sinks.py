"""The in-memory output sink: the twin of streams.sinks.KafkaSink, for replay and tests."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from engine.ports import OutRecord


class MemorySink:
    """Keeps every emitted record by role (``alerts``, ``actions``, ``decisions``, ``dlq``)."""

    def __init__(self) -> None:
        self.records: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)

    async def emit(self, records: Sequence[OutRecord]) -> None:
        for r in records:
            self.records[r.role].append((r.key, r.value))

    def values(self, role: str) -> list[dict[str, Any]]:
        return [v for _, v in self.records[role]]
