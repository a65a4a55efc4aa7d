"""The in-memory twin of the Redis state store, for replay and unit tests.

Same semantics as ``apply_event.lua`` step for step (tests/contract runs one suite on both, and a
property-based test feeds both random streams with duplicates and disorder). Single process,
no expiry by wall clock other than result retention.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.ports import StoreLimits
from engine.types import CustomerState, Effects, StateUpdate
from features.buckets import aggregate_buckets, current_buckets, expired
from features.definitions import DAY, HOUR, RETENTION_BUCKETS, Op
from features.state import contact_member, decode_result, num


@dataclass
class _Customer:
    buckets: dict[str, float] = field(default_factory=dict)
    state: dict[str, str] = field(default_factory=dict)
    seen: dict[str, float] = field(default_factory=dict)
    results: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    fired: dict[str, str] = field(default_factory=dict)
    contacts: dict[str, float] = field(default_factory=dict)


def _move_aum(s: dict[str, str], delta: float, ts: float) -> None:
    s["aum"] = num(max(float(s.get("aum", 0.0)) + delta, 0.0))
    at = s.get("aum_ts")
    if at is None or ts > float(at):
        s["aum_ts"] = num(ts)


class MemoryStateStore:
    """``StateStore`` in a dict. Not shared between processes."""

    def __init__(self, limits: StoreLimits) -> None:
        self._limits = limits
        self._customers: dict[str, _Customer] = {}
        self.round_trips = 0

    async def apply(self, updates: Sequence[StateUpdate], wall: float) -> list[CustomerState]:
        if updates:
            self.round_trips += 1
        return [self.apply_one(up, wall) for up in updates]

    def apply_one(self, up: StateUpdate, wall: float) -> CustomerState:
        """Synchronous apply of one event (replay calls this directly)."""
        status, doc = self._apply(up, wall)
        return decode_result(up.customer_id, doc, status)  # type: ignore[arg-type]

    def _apply(self, up: StateUpdate, wall: float) -> tuple[str, dict[str, Any]]:
        lim = self._limits
        cust = self._customers.setdefault(up.customer_id, _Customer())
        wm_raw = cust.state.get("wm")
        wm = float(wm_raw) if wm_raw is not None else None
        ts = up.ts
        # An event without state changes (an outcome) is read as of the watermark.
        now = ts if wm is None else (max(wm, ts) if up.ops else wm)
        if up.event_id in cust.seen:
            stored = cust.results.get(up.event_id)
            if stored is not None:
                return "duplicate", stored[1]
            return "duplicate", self._read(cust, "duplicate", now)
        if ts < now - lim.dedup_horizon:
            return "too_late", self._read(cust, "too_late", now)
        status = "late" if ts < now - lim.allowed_lateness else "applied"
        cust.seen[up.event_id] = ts
        cutoff = now - lim.dedup_horizon
        for eid in [e for e, at in cust.seen.items() if at < cutoff]:
            del cust.seen[eid]
        for op in up.ops:
            self._op(cust, op, ts, now)
        if up.ops and (wm is None or ts > wm):
            cust.state["wm"] = num(ts)
        result = self._read(cust, status, now)
        if lim.result_retention > 0:
            cust.results[up.event_id] = (wall, result)
            if len(cust.results) > 8:
                old = [e for e, (at, _) in cust.results.items() if at < wall - lim.result_retention]
                for eid in old:
                    del cust.results[eid]
        return status, result

    @staticmethod
    def _op(cust: _Customer, op: Op, ts: float, now: float) -> None:
        hour, day = int(ts // HOUR), int(ts // DAY)
        b, s = cust.buckets, cust.state
        if op.kind == "sum":
            v = float(op.value)
            current = current_buckets(now)
            for res, bucket in (("h", hour), ("d", day)):
                if current[res] - bucket < RETENTION_BUCKETS[res]:
                    f = f"s|{op.name}|{res}|{bucket}"
                    b[f] = b.get(f, 0.0) + v
        elif op.kind == "max":
            f = f"x|{op.name}|d|{day}"
            if f not in b or float(op.value) > b[f]:
                b[f] = float(op.value)
        elif op.kind == "set":
            s[op.name] = str(op.value)
        elif op.kind == "last":
            f = f"t:{op.name}"
            if f not in s or ts > float(s[f]):
                s[f] = num(ts)
        elif op.kind == "balance":
            f = f"bal:{op.name}"
            v = float(op.value)
            prev = s.get(f)
            s[f] = num(v)
            if op.flag == 1:
                if prev is not None:
                    delta = v - float(prev)
                elif s.get("aum_src") == "profile":
                    delta = op.amount
                else:
                    delta = v
                _move_aum(s, delta, ts)
        elif op.kind == "flow":
            _move_aum(s, float(op.value), ts)
        elif op.kind == "aum":
            # A profile snapshot older than the last posting that moved AUM does not overwrite it.
            at = s.get("aum_ts")
            if at is None or ts >= float(at):
                s["aum"] = num(float(op.value))
                s["aum_src"] = "profile"
                s["aum_ts"] = num(ts)
        elif op.kind == "track_aum":
            aum = float(s.get("aum", 0.0))
            fx = f"x|aum_peak|d|{day}"
            if fx not in b or aum > b[fx]:
                b[fx] = aum
            if day == current_buckets(now)["d"]:
                b[f"l|aum_close|d|{day}"] = aum

    def _read(self, cust: _Customer, status: str, now: float) -> dict[str, Any]:
        for f in [f for f in cust.buckets if expired(f, now)]:
            del cust.buckets[f]
        windows, closes = aggregate_buckets(cust.buckets, now)
        cutoff = now - self._limits.contact_retention
        for m in [m for m, at in cust.contacts.items() if at < cutoff]:
            del cust.contacts[m]
        contacts: list[Any] = []
        for member, at in sorted(cust.contacts.items(), key=lambda kv: (kv[1], kv[0])):
            contacts += [member, num(at)]
        return {
            "st": status,
            "now": num(now),
            "w": windows,
            "l": closes,
            "s": dict(cust.state),
            "f": dict(cust.fired),
            "c": contacts,
        }

    async def commit(self, effects: Sequence[Effects]) -> None:
        for eff in effects:
            if not eff:
                continue
            cust = self._customers.setdefault(eff.customer_id, _Customer())
            for rule_id, fired in eff.fired.items():
                old = cust.fired.get(rule_id)
                if old is None or fired.ts > float(old.split("|", 1)[0]):
                    cust.fired[rule_id] = f"{num(fired.ts)}|{fired.decision_id}"
            for contact in eff.contacts:
                cust.contacts[contact_member(contact)] = contact.ts

    async def read(self, customer_id: str) -> CustomerState | None:
        cust = self._customers.get(customer_id)
        if cust is None or not cust.state:
            return None
        now = float(cust.state.get("wm", 0.0))
        windows, closes = aggregate_buckets(cust.buckets, now)
        doc = self._read(cust, "applied", now)
        doc["w"], doc["l"] = windows, closes
        return decode_result(customer_id, doc)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None
