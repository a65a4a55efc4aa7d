"""The pipeline's I/O edges. Each Protocol has a real adapter and an in-memory twin, held
identical by one contract suite per port (tests/contract/).

| port        | real adapter                         | twin                                 |
|-------------|--------------------------------------|--------------------------------------|
| StateStore  | features.redis_store.RedisStateStore | features.memory_store.MemoryStateStore |
| OutputSink  | streams.sinks.KafkaSink              | engine.sinks.MemorySink              |

``PipelineMetrics`` (what the pipeline reports about its work) has ``engine.metrics.
PrometheusMetrics`` live and ``engine.metrics.NoMetrics`` in replay; it has no contract suite: the
two share nothing to hold identical.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from actions.policy import CapacityReservation
from engine.types import CustomerState, Effects, StateUpdate

if TYPE_CHECKING:
    from engine.decide import Decision

# (channel, bank day "YYYY-MM-DD"): the unit of the bank-wide daily capacity.
CapacityKey = tuple[str, str]
CAPACITY_TTL_SECONDS = 3 * 86400


@dataclass(frozen=True, slots=True)
class StoreLimits:
    """Time limits every state store applies the same way (seconds)."""

    dedup_horizon: float = 7 * 86400
    allowed_lateness: float = 3600
    result_retention: float = 3600
    ttl: int = 120 * 86400
    contact_retention: float = 35 * 86400


class StateStore(Protocol):
    """Per-customer rolling state: features, deduplication, cooldowns, contacts."""

    async def apply(self, updates: Sequence[StateUpdate], wall: float) -> list[CustomerState]:
        """Apply each event once (in order) and return the state right after each.

        One round trip for the whole batch. Raises ``InfrastructureError`` on failure, in which
        case nothing of the batch may be acknowledged.
        """
        ...

    async def apply_with_capacity(
        self, updates: Sequence[StateUpdate], wall: float, capacity: Sequence[CapacityKey]
    ) -> tuple[list[CustomerState], dict[CapacityKey, int]]:
        """``apply``, plus how much of each (channel, bank day) capacity is already reserved,
        read in the same round trip."""
        ...

    async def commit(
        self, effects: Sequence[Effects], reservations: Sequence[CapacityReservation] = ()
    ) -> None:
        """Record cooldowns and contacts of decisions, and the daily capacity they reserved.
        Idempotent: a reservation is a member of a set, counted once however often it comes."""
        ...

    async def read(self, customer_id: str) -> CustomerState | None:
        """The customer's current state without changing anything; None if unknown."""
        ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class OutRecord:
    """One output message: the topic by role (alerts, actions, decisions, dlq), key and value."""

    role: str
    key: str
    value: dict[str, Any]


class OutputSink(Protocol):
    """Where decisions go. ``emit`` returns only when every record is durable."""

    async def emit(self, records: Sequence[OutRecord]) -> None: ...


class PipelineMetrics(Protocol):
    """What the pipeline reports about its work."""

    def dead_letter(self, reason: str) -> None: ...

    def decided(
        self, event_type: str, status: str, decision: Decision, waited: float | None
    ) -> None:
        """One decision; ``waited``: decision time minus the record's Kafka timestamp."""
        ...

    def batch(self, size: int, stages: Sequence[tuple[str, float]]) -> None:
        """A batch's size and the seconds it spent in each stage."""
        ...
