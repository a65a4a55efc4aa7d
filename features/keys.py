"""Redis key layout. Every key of a customer carries ``{customer_id}`` as its hash tag, so a
Redis Cluster keeps one customer on one slot and a Lua script may touch all of them.

>>> CustomerKeys("vigil", "c42").all()[:2]
('vigil:{c42}:b', 'vigil:{c42}:s')
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CustomerKeys:
    prefix: str
    customer_id: str

    def _key(self, suffix: str) -> str:
        return f"{self.prefix}:{{{self.customer_id}}}:{suffix}"

    @property
    def buckets(self) -> str:
        """Hash of time buckets: ``<agg>|<metric>|<h|d>|<bucket index>`` -> number."""
        return self._key("b")

    @property
    def state(self) -> str:
        """Hash of plain state: watermark, AUM, balances, last times, profile attributes."""
        return self._key("s")

    @property
    def seen(self) -> str:
        """Sorted set of recent event ids by event time (deduplication)."""
        return self._key("e")

    @property
    def results(self) -> str:
        """Hash of recent apply results by event id, so a redelivery decides the same again."""
        return self._key("r")

    @property
    def fired(self) -> str:
        """Hash of the latest alert per rule (cooldowns)."""
        return self._key("f")

    @property
    def contacts(self) -> str:
        """Sorted set of contacts by event time (contact policy)."""
        return self._key("c")

    def all(self) -> tuple[str, str, str, str, str, str]:
        """The keys in the order the Lua scripts take them."""
        return (self.buckets, self.state, self.seen, self.results, self.fired, self.contacts)
