"""Redis key layout. Every key of a customer carries ``{customer_id}`` as its hash tag, so a
Redis Cluster keeps one customer on one slot and a Lua script may touch all of them.

- ``<prefix>:{<customer>}:s`` — one hash holding the customer's whole state (see
  docs/features.md): plain fields, time buckets, recent event digests, cooldowns and contacts;
- ``<prefix>:{<customer>}:r:<digest>`` — the result of one applied event, kept a few minutes so a
  redelivered event is decided again identically (expires on its own).

>>> k = CustomerKeys("vigil", "c42")
>>> k.state, k.result(bytes.fromhex("00ff00ff00ff00ff"))
('vigil:{c42}:s', 'vigil:{c42}:r:00ff00ff00ff00ff')
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
    def state(self) -> str:
        """The customer's hash (a listpack: every field and value is kept under 64 bytes)."""
        return self._key("s")

    def result(self, digest: bytes) -> str:
        """The stored result of the event whose id hashes to ``digest``."""
        return self._key(f"r:{digest.hex()}")
