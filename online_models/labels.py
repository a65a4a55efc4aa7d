"""Feature snapshots awaiting their (late) labels: plain data, the store port and its twin.

The learner keeps, per customer, the feature snapshot of each event-time day (the last decision
of the day: the state the models saw then, with their predictions) and the snapshot of every
decision that chose an action (by decision id), plus the latest time of each outcome label
("marks"). A day whose horizon passed is listed in a due index. ``PendingLabels`` is that data
and the operations the learner needs; ``LabelStore`` loads the part a batch needs
(``checkout(plan)``) and writes back what changed (``commit``): one Redis round trip each way
(two when a day falls due), like the feature store.

The in-memory twin (``MemoryLabelStore``) keeps everything in one ``PendingLabels``; the Redis
adapter (``streams.model_store.RedisLabelStore``) keeps it under hash-tagged customer keys with a
TTL of the label horizon. ``tests/contract/test_snapshot_store.py`` runs one suite on both.

>>> p = PendingLabels()
>>> p.put_day("c1", 3, FeatureSnapshot(3 * 86400.0 + 5, "d1", {"a": 1.0}, {"m": 0.2}))
True
>>> p.due_customers(3), p.has_day("c1", 3)
(['c1'], True)
>>> [s.decision_id for s in p.take_days_before("c1", 4 * 86400.0)]
['d1']
>>> p.has_day("c1", 3), p.due_customers(3)
(False, [])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

import orjson

DAY = 86400.0
MARK_LABELS: tuple[str, ...] = ("churned", "retained", "asset_drop")
_NO_MARKS: Mapping[str, float] = MappingProxyType({})


@dataclass(slots=True)
class FeatureSnapshot:
    """What the models saw at a decision: inputs, their predictions then, the action chosen."""

    ts: float
    decision_id: str
    x: dict[str, float]
    preds: dict[str, float]
    action: str | None = None

    def encode(self) -> bytes:
        return orjson.dumps(
            {"t": self.ts, "d": self.decision_id, "x": self.x, "p": self.preds, "a": self.action}
        )

    @classmethod
    def decode(cls, raw: bytes | str) -> FeatureSnapshot:
        doc = orjson.loads(raw)
        return cls(float(doc["t"]), str(doc["d"]), doc["x"], doc["p"], doc.get("a"))


@dataclass(slots=True)
class CustomerLabels:
    days: dict[int, FeatureSnapshot] = field(default_factory=dict)
    offers: dict[str, FeatureSnapshot] = field(default_factory=dict)  # by decision id
    marks: dict[str, float] = field(default_factory=dict)  # outcome label -> latest event time

    def empty(self) -> bool:
        return not (self.days or self.offers or self.marks)


@dataclass
class Journal:
    """What a batch changed, for a store that writes back (Redis)."""

    put_days: dict[tuple[str, int], FeatureSnapshot] = field(default_factory=dict)
    del_days: set[tuple[str, int]] = field(default_factory=set)
    put_offers: dict[tuple[str, str], FeatureSnapshot] = field(default_factory=dict)
    del_offers: dict[tuple[str, str], bytes] = field(default_factory=dict)  # raw member
    marks: dict[tuple[str, str], float] = field(default_factory=dict)
    cleared_days: set[int] = field(default_factory=set)
    expire_offers: dict[str, float] = field(default_factory=dict)  # cid -> before ts

    def __bool__(self) -> bool:
        return bool(
            self.put_days
            or self.del_days
            or self.put_offers
            or self.del_offers
            or self.marks
            or self.cleared_days
            or self.expire_offers
        )


class PendingLabels:
    """Pending snapshots and marks, by customer; a due index of days.

    As the memory store it holds everything; as a Redis view it holds what ``checkout`` loaded
    and journals every change (``journal``) for ``commit``.
    """

    def __init__(self, journal: bool = False) -> None:
        self.customers: dict[str, CustomerLabels] = {}
        self.due: dict[int, set[str]] = {}
        self.journal: Journal | None = Journal() if journal else None
        self._offer_raw: dict[tuple[str, str], bytes] = {}

    def _customer(self, cid: str) -> CustomerLabels:
        found = self.customers.get(cid)
        if found is None:
            found = self.customers[cid] = CustomerLabels()
        return found

    # -- loading (used by adapters) ------------------------------------------------------

    def load_day(self, cid: str, day: int, snap: FeatureSnapshot) -> None:
        self._customer(cid).days[day] = snap

    def load_offer(self, cid: str, raw: bytes) -> None:
        snap = FeatureSnapshot.decode(raw)
        self._customer(cid).offers[snap.decision_id] = snap
        self._offer_raw[(cid, snap.decision_id)] = raw

    def load_mark(self, cid: str, label: str, ts: float) -> None:
        self._customer(cid).marks[label] = ts

    def load_due(self, day: int, customers: Iterable[str]) -> None:
        self.due.setdefault(day, set()).update(customers)

    # -- what the learner does -----------------------------------------------------------

    def has_day(self, cid: str, day: int) -> bool:
        c = self.customers.get(cid)
        return c is not None and day in c.days

    def put_day(self, cid: str, day: int, snap: FeatureSnapshot) -> bool:
        """Keep the day's snapshot (the latest decision of the day wins); True if new."""
        c = self._customer(cid)
        new = day not in c.days
        c.days[day] = snap
        self.due.setdefault(day, set()).add(cid)
        if self.journal is not None:
            self.journal.put_days[(cid, day)] = snap
            self.journal.del_days.discard((cid, day))
        return new

    def _drop_day(self, cid: str, day: int) -> None:
        self.customers[cid].days.pop(day, None)
        members = self.due.get(day)
        if members is not None:
            members.discard(cid)
        if self.journal is not None:
            self.journal.put_days.pop((cid, day), None)
            self.journal.del_days.add((cid, day))

    def take_days_before(self, cid: str, ts: float) -> list[FeatureSnapshot]:
        """Remove and return the customer's day snapshots taken before ``ts``, oldest first."""
        c = self.customers.get(cid)
        if c is None:
            return []
        days = sorted(d for d, s in c.days.items() if s.ts < ts)
        out = [c.days[d] for d in days]
        for d in days:
            self._drop_day(cid, d)
        return out

    def due_customers(self, day: int) -> list[str]:
        return sorted(self.due.get(day, ()))

    def take_due(self, day: int) -> list[tuple[str, FeatureSnapshot]]:
        """Remove and return the snapshots of a day whose horizon passed, by customer id."""
        out: list[tuple[str, FeatureSnapshot]] = []
        for cid in sorted(self.due.pop(day, ())):
            c = self.customers.get(cid)
            snap = c.days.pop(day, None) if c is not None else None
            if snap is not None:
                out.append((cid, snap))
                if self.journal is not None:
                    self.journal.put_days.pop((cid, day), None)
                    self.journal.del_days.add((cid, day))
        if self.journal is not None:
            self.journal.cleared_days.add(day)
        return out

    def put_offer(self, cid: str, snap: FeatureSnapshot) -> None:
        self._customer(cid).offers[snap.decision_id] = snap
        if self.journal is not None:
            self.journal.put_offers[(cid, snap.decision_id)] = snap

    def _drop_offer(self, cid: str, decision_id: str) -> None:
        self.customers[cid].offers.pop(decision_id, None)
        raw = self._offer_raw.pop((cid, decision_id), None)
        if self.journal is not None:
            self.journal.put_offers.pop((cid, decision_id), None)
            if raw is not None:
                self.journal.del_offers[(cid, decision_id)] = raw

    def take_offer(
        self, cid: str, decision_id: str | None, ts: float, since: float
    ) -> FeatureSnapshot | None:
        """The offer a response answers: by decision id, or else the customer's latest offer
        made in ``[since, ts)``. Removed: one response per offer."""
        c = self.customers.get(cid)
        if c is None:
            return None
        if decision_id:
            snap = c.offers.get(decision_id)
            snap = snap if snap is not None and snap.ts >= since else None
        else:
            recent = [s for s in c.offers.values() if since <= s.ts < ts]
            snap = max(recent, key=lambda s: (s.ts, s.decision_id)) if recent else None
        if snap is not None:
            self._drop_offer(cid, snap.decision_id)
        return snap

    def mark(self, cid: str, label: str, ts: float) -> None:
        """Remember the latest event time of an outcome label for the customer."""
        c = self._customer(cid)
        if ts > c.marks.get(label, float("-inf")):
            c.marks[label] = ts
            if self.journal is not None:
                self.journal.marks[(cid, label)] = ts

    def marks(self, cid: str) -> Mapping[str, float]:
        """The customer's marks (read-only: change them through ``mark``)."""
        c = self.customers.get(cid)
        return c.marks if c is not None else _NO_MARKS

    def expire(self, cid: str, before: float) -> None:
        """Forget offers and marks older than ``before`` (Redis also expires keys by TTL)."""
        c = self.customers.get(cid)
        if c is None:
            return
        for did in [d for d, s in c.offers.items() if s.ts < before]:
            self._drop_offer(cid, did)
        for label in [k for k, t in c.marks.items() if t < before]:
            del c.marks[label]
        if self.journal is not None:
            self.journal.expire_offers[cid] = before
        if c.empty():
            del self.customers[cid]

    def size(self) -> dict[str, int]:
        return {
            "customers": len(self.customers),
            "day_snapshots": sum(len(c.days) for c in self.customers.values()),
            "offer_snapshots": sum(len(c.offers) for c in self.customers.values()),
        }


@dataclass(frozen=True)
class Checkout:
    """What a batch will read: whole customers (outcomes), the given days and the marks of
    others (decisions), offers since a time (offer responses), and days falling due."""

    full: frozenset[str] = frozenset()
    days: dict[str, frozenset[int]] = field(default_factory=dict)
    offers: dict[str, float] = field(default_factory=dict)  # cid -> offers made since
    due_days: tuple[int, ...] = ()


class LabelStore(Protocol):
    """Where pending snapshots live between batches."""

    async def checkout(self, plan: Checkout) -> PendingLabels:
        """The pending data ``plan`` names (at least), ready for the learner to change."""
        ...

    async def commit(self, view: PendingLabels) -> None:
        """Make the view's changes durable."""
        ...

    async def close(self) -> None: ...


class MemoryLabelStore:
    """``LabelStore`` in one ``PendingLabels``: checkout returns it, commit has nothing to do."""

    def __init__(self) -> None:
        self.pending = PendingLabels()

    async def checkout(self, plan: Checkout) -> PendingLabels:
        return self.pending

    async def commit(self, view: PendingLabels) -> None:
        return None

    async def close(self) -> None:
        return None
