"""The in-memory twin of the Redis state store, for replay and unit tests.

Same semantics as ``apply_event.lua`` step for step (tests/contract runs one suite on both, and a
property-based test feeds both random streams with duplicates and disorder). It keeps the same
plain fields as strings (formatted as the Lua script formats them) and the time buckets parsed,
so it needs no encoding on the hot path. Single process; stored results expire by the ``wall``
time passed to ``apply``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from actions.policy import CapacityReservation
from engine.ports import CapacityKey, StoreLimits
from engine.types import CustomerState, Effects, StateUpdate
from features.buckets import (
    Bucket,
    Key,
    add_to_aggregate,
    aggregate,
    day_of,
    hour_of,
    merge,
    place,
    refresh_hour_windows,
    settle,
)
from features.definitions import (
    AUM_COLS,
    DEDUP_SLOT,
    LAST_TIMES,
    SESSION_COL,
    SESSIONS_KEPT,
    b36,
    decode_vector,
    encode_vector,
    event_digest,
    fmt17,
    merge_consent,
    money_text,
    plan_ops,
    text_cents,
)
from features.state import build_state, contact_field

_N_LAST = len(LAST_TIMES)


@dataclass
class _Customer:
    fields: dict[str, str] = field(default_factory=dict)
    buckets: dict[Key, Bucket] = field(default_factory=dict)
    seen: set[tuple[int, bytes]] = field(default_factory=set)
    results: dict[bytes, tuple[float, CustomerState]] = field(default_factory=dict)
    results_cap: int = 16
    # Derived cache (not state): window aggregates valid for hour ``agg_hour`` of day ``agg_day``.
    agg: list[int | None] | None = None
    ago: dict[int, int] = field(default_factory=dict)
    agg_hour: int = -1
    agg_day: int = -1


class MemoryStateStore:
    """``StateStore`` in a dict. Not shared between processes."""

    def __init__(self, limits: StoreLimits) -> None:
        self._limits = limits
        self._customers: dict[str, _Customer] = {}
        self._capacity: dict[CapacityKey, set[str]] = {}
        self.round_trips = 0

    async def apply_with_capacity(
        self, updates: Sequence[StateUpdate], wall: float, capacity: Sequence[CapacityKey]
    ) -> tuple[list[CustomerState], dict[CapacityKey, int]]:
        states = await self.apply(updates, wall)
        return states, {key: len(self._capacity.get(key, ())) for key in capacity}

    async def apply(self, updates: Sequence[StateUpdate], wall: float) -> list[CustomerState]:
        if updates:
            self.round_trips += 1
        return [self.apply_one(up, wall) for up in updates]

    def apply_one(self, up: StateUpdate, wall: float) -> CustomerState:
        """Synchronous apply of one event (replay calls this directly)."""
        lim = self._limits
        cust = self._customers.get(up.customer_id)
        if cust is None:
            cust = self._customers[up.customer_id] = _Customer()
        f = cust.fields
        wm_text = f.get("wm")
        wm = float(wm_text) if wm_text is not None else None
        ts = up.ts
        has_ops = bool(up.ops)
        # An event without state changes (an outcome) is read as of the watermark.
        now = ts if wm is None else (max(wm, ts) if has_ops else wm)
        if ts < now - lim.dedup_horizon:
            return self._state(up.customer_id, cust, "too_late", now)
        digest = event_digest(up.event_id)
        seen_key = (math.floor(ts / DEDUP_SLOT), digest)
        if seen_key in cust.seen:
            stored = cust.results.get(digest)
            if stored is not None and wall - stored[0] <= lim.result_retention:
                # Features of the first application; cooldowns and contacts as they are now.
                current = self._state(up.customer_id, cust, "duplicate", now)
                return replace(
                    stored[1], status="duplicate", fired=current.fired, contacts=current.contacts
                )
            return self._state(up.customer_id, cust, "duplicate", now)
        status = "late" if ts < now - lim.allowed_lateness else "applied"
        cust.seen.add(seen_key)
        if has_ops:
            ch, cd = hour_of(now), day_of(now)
            if wm is None or hour_of(wm) != ch:
                self._settle(cust, now, ch, cd)
            _aggregates(cust, now)
            self._execute(cust, up, ts, ch, cd)
            if wm is None or ts > wm:
                f["wm"] = fmt17(ts)
        state = self._state(up.customer_id, cust, status, now)
        if lim.result_retention > 0:
            results = cust.results
            results[digest] = (wall, state)
            if len(results) > cust.results_cap:
                for d in [d for d, (at, _) in results.items() if wall - at > lim.result_retention]:
                    del results[d]
                cust.results_cap = max(16, 2 * len(results))
        return state

    def _settle(self, cust: _Customer, now: float, ch: int, cd: int) -> None:
        settle(cust.buckets, ch, cd)
        edge = now - self._limits.dedup_horizon
        if cust.seen:
            cust.seen = {k for k in cust.seen if (k[0] + 1) * DEDUP_SLOT > edge}
        keep_after = now - self._limits.contact_retention
        f = cust.fields
        old = [k for k, v in f.items() if k[:2] == "c:" and float(v.split("|", 1)[0]) < keep_after]
        for k in old:
            del f[k]

    @staticmethod
    def _execute(cust: _Customer, up: StateUpdate, ts: float, ch: int, cd: int) -> None:
        plan = plan_ops(up.ops)
        f = cust.fields
        for name, value in plan.sets:
            f[name] = merge_consent(f.get("pc"), value) if name == "pc" else value
        delta = plan.delta
        if plan.session:
            tokens = f["ss"].split(",") if "ss" in f else []
            if plan.session not in tokens:
                delta = dict(delta)
                delta[SESSION_COL] = delta.get(SESSION_COL, 0) + 1
                f["ss"] = ",".join([plan.session, *tokens[: SESSIONS_KEPT - 1]])
        if delta:
            target = place(ts, ch, cd)
            if target is not None:
                _merge_into(cust.buckets, target, delta)
                if cust.agg is not None:
                    add_to_aggregate(cust.agg, target, delta, ch, cd)
        if plan.lasts:
            times = decode_vector(f.get("t", ""), _N_LAST)
            at = math.floor(ts)
            for slot in plan.lasts:
                old_at = times[slot]
                if old_at is None or at > old_at:
                    times[slot] = at
            f["t"] = encode_vector(times)
        op = plan.aum
        if op is not None:
            text = f.get("aum")
            aum = text_cents(text) if text is not None else 0
            at_text = f.get("at")
            at_ts = float(at_text) if at_text is not None else None
            new_at = at_ts
            from_profile = False
            move: int | None = None
            if op.kind == "balance":
                old = f.get(op.name)
                v = int(op.value)
                f[op.name] = b36(v)
                if op.flag == 1:
                    if old is not None:
                        move = v - int(old, 36)
                    elif f.get("as") == "p":
                        move = op.amount
                    else:
                        move = v
            elif op.kind == "flow":
                move = int(op.value)
            elif at_ts is None or ts >= at_ts:
                # A profile snapshot older than the last posting that moved AUM is ignored.
                aum = int(op.value)
                new_at = ts
                from_profile = True
            if move is not None:
                aum = max(aum + move, 0)
                if new_at is None or ts > new_at:
                    new_at = ts
            f["aum"] = money_text(aum)
            if new_at is not None:
                f["at"] = fmt17(new_at)
            if from_profile:
                f["as"] = "p"
            seen = dict.fromkeys(AUM_COLS, aum)
            _merge_into(cust.buckets, ("D", cd), seen)
            if cust.agg is not None:
                add_to_aggregate(cust.agg, ("D", cd), seen, ch, cd)

    def _state(self, cid: str, cust: _Customer, status: str, now: float) -> CustomerState:
        agg, ago = _aggregates(cust, now)
        return build_state(cid, status, now, cust.buckets, cust.fields, (agg, ago))  # type: ignore[arg-type]

    async def commit(
        self, effects: Sequence[Effects], reservations: Sequence[CapacityReservation] = ()
    ) -> None:
        for r in reservations:
            self._capacity.setdefault((r.channel, r.day), set()).add(r.key)
        for eff in effects:
            if not eff:
                continue
            cust = self._customers.setdefault(eff.customer_id, _Customer())
            f = cust.fields
            for rule_id, fired in sorted(eff.fired.items()):
                old = f.get(f"f:{rule_id}")
                if old is None or fired.ts > float(old.split("|", 1)[0]):
                    f[f"f:{rule_id}"] = f"{fmt17(fired.ts)}|{fired.decision_id}"
            for contact in eff.contacts:
                name, value = contact_field(contact)
                f[name] = value

    async def read(self, customer_id: str) -> CustomerState | None:
        cust = self._customers.get(customer_id)
        if cust is None or "wm" not in cust.fields:
            return None
        return self._state(customer_id, cust, "applied", float(cust.fields["wm"]))

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None


def _aggregates(cust: _Customer, now: float) -> tuple[list[int | None], dict[int, int]]:
    """The customer's window aggregates at ``now``, kept up to date incrementally: recomputed
    when the day moves, hour windows only when the hour moves (rolling up keeps every number in
    the same windows, so it needs no recomputation)."""
    ch, cd = hour_of(now), day_of(now)
    if cust.agg is None or cust.agg_day != cd:
        cust.agg, cust.ago = aggregate(cust.buckets, now)
        cust.agg_day, cust.agg_hour = cd, ch
    elif cust.agg_hour != ch:
        refresh_hour_windows(cust.agg, cust.buckets, ch)
        cust.agg_hour = ch
    return cust.agg, cust.ago


def _merge_into(buckets: dict[Key, Bucket], key: Key, delta: dict[int, int]) -> None:
    dst = buckets.get(key)
    if dst is None:
        buckets[key] = dict(delta)
    else:
        merge(dst, delta)
