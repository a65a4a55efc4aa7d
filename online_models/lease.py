"""The learner's lease: at most one learner learns and publishes at a time.

Two learners in one consumer group would each take part of the decisions' partitions and both
publish half-taught models over each other. So a learner holds a lease before it joins the group
(``vigil learner`` waits for it, as a standby, while another holds it), renews it while it runs
and stops learning and publishing the moment a renewal fails. The lease expires by itself when
its holder dies without a graceful stop, so a standby takes over within one lease period.

``Lease`` is the port; ``MemoryLease`` is its twin (injected clock) and
``streams.model_store.RedisLease`` the real adapter (``SET NX PX`` and two small scripts). One
contract suite (``tests/contract/test_lease.py``) runs on both. Publishing a model snapshot is
fenced by the lease too (the snapshot stores take the owner): a learner that paused past its
lease cannot overwrite the new holder's snapshots even before its next renewal says so.

>>> from engine.clock import FixedClock
>>> clock = FixedClock(100.0)
>>> lease = MemoryLease(clock)
>>> import asyncio
>>> asyncio.run(lease.acquire("a", 30.0)), asyncio.run(lease.acquire("b", 30.0))
(True, False)
>>> clock.set(131.0)
>>> asyncio.run(lease.acquire("b", 30.0)), asyncio.run(lease.renew("a", 30.0))
(True, False)
"""

from __future__ import annotations

from typing import Protocol

from engine.clock import Clock


class LeaseLostError(Exception):
    """A write fenced by the lease was refused: another learner holds it now."""


class Lease(Protocol):
    """One named lease with an owner and an expiry."""

    async def acquire(self, owner: str, ttl: float) -> bool:
        """Take the lease for ``ttl`` seconds if nobody holds it (or ``owner`` already does)."""
        ...

    async def renew(self, owner: str, ttl: float) -> bool:
        """Extend the lease by ``ttl`` seconds from now if ``owner`` still holds it."""
        ...

    async def release(self, owner: str) -> None:
        """Give the lease up if ``owner`` holds it (anyone else's lease is left alone)."""
        ...

    async def holder(self) -> str | None:
        """Who holds the lease now (None: free)."""
        ...

    async def close(self) -> None: ...


class MemoryLease:
    """``Lease`` in memory, expiring by an injected clock (unit tests, one process)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._owner: str | None = None
        self._until = 0.0

    def _current(self) -> str | None:
        if self._owner is not None and self._clock.now() >= self._until:
            self._owner = None
        return self._owner

    async def acquire(self, owner: str, ttl: float) -> bool:
        current = self._current()
        if current is not None and current != owner:
            return False
        self._owner, self._until = owner, self._clock.now() + ttl
        return True

    async def renew(self, owner: str, ttl: float) -> bool:
        if self._current() != owner:
            return False
        self._until = self._clock.now() + ttl
        return True

    async def release(self, owner: str) -> None:
        if self._current() == owner:
            self._owner = None

    async def holder(self) -> str | None:
        return self._current()

    async def close(self) -> None:
        return None
