"""The in-memory twin of the Redis state store, for replay and unit tests.

Same semantics as ``apply_event.lua`` step for step (tests/contract runs one suite on both, and a
property-based test feeds both random streams with duplicates and disorder). Where the script
keeps text in a hash, the twin keeps the parsed values (watermark, AUM in cents, balances,
remembered times, sessions, cooldowns, contacts; profile fields as the same strings) and the time
buckets parsed, with the window aggregates and the windowed features kept up to date
incrementally, so the hot path neither encodes nor decodes. Single process; stored results
expire by the ``wall`` time passed to ``apply``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from actions.policy import CapacityReservation
from engine.ports import CapacityKey, StoreLimits
from engine.types import Contact, CustomerState, Effects, Fired, StateUpdate
from features.buckets import (
    Bucket,
    Key,
    add_to_aggregate,
    aggregate,
    day_of,
    due_hour,
    hour_of,
    merge,
    next_due_hour,
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
    event_digest,
    finish_vector,
    merge_consent,
    money_text,
    plan_ops,
    profile_of,
    text_cents,
    update_windowed_values,
    windowed_values,
)
from features.state import contact_order

_N_LAST = len(LAST_TIMES)
_SLOTS_PER_DAY = max(1, 86400 // DEDUP_SLOT)


@dataclass
class _Customer:
    # State (what the Redis hash holds, parsed).
    wm: float | None = None  # the newest event time seen (the customer's "now")
    aum: int | None = None  # AUM now, cents, as the script reads its ``aum`` field back
    aum_units: float = 0.0  # AUM now as features show it (the field's text, parsed)
    aum_at: float | None = None  # event time of the last change of AUM
    aum_from_profile: bool = False  # AUM was once set by a profile snapshot
    balances: dict[str, int] = field(default_factory=dict)  # balance field -> cents
    times: list[int | None] = field(default_factory=lambda: [None] * _N_LAST)
    sessions: list[str] = field(default_factory=list)  # most recent first
    fields: dict[str, str] = field(default_factory=dict)  # profile ("p:...") and consent ("pc")
    fired: dict[str, Fired] = field(default_factory=dict)  # cooldowns by rule
    contacts: dict[tuple[str, str], Contact] = field(default_factory=dict)  # by (decision, action)
    buckets: dict[Key, Bucket] = field(default_factory=dict)
    seen: dict[int, set[bytes]] = field(default_factory=dict)  # dedup slot -> event digests
    results: dict[bytes, tuple[float, CustomerState]] = field(default_factory=dict)
    results_cap: int = 16
    # Derived caches (not state). Window aggregates valid for hour ``agg_hour`` of day
    # ``agg_day``, and the windowed features in step with them (``win``); the profile, cooldowns
    # and contacts as handed out (None: to be built again after a change).
    agg: list[int | None] | None = None
    ago: dict[int, int] = field(default_factory=dict)
    win: dict[str, float | str] = field(default_factory=dict)
    agg_hour: int = -1
    agg_day: int = -1
    profile: dict[str, str] | None = None
    effects: tuple[dict[str, Fired], tuple[Contact, ...]] | None = None
    # The dedup slot before which ``seen`` was last pruned; the first hour at which a bucket
    # is due to roll up or expire (``buckets.due_hour``).
    seen_edge: int = -(10**9)
    settle_due: int = -1
    rolled: bool = False  # buckets were rolled up since the aggregates were last brought up


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
        wm = cust.wm
        ts = up.ts
        has_ops = bool(up.ops)
        # An event without state changes (an outcome) is read as of the watermark.
        now = ts if wm is None else (max(wm, ts) if has_ops else wm)
        if ts < now - lim.dedup_horizon:
            return self._state(up.customer_id, cust, "too_late", now)
        digest = event_digest(up.event_id)
        slot = math.floor(ts / DEDUP_SLOT)
        seen_in_slot = cust.seen.get(slot)
        if seen_in_slot is not None and digest in seen_in_slot:
            stored = cust.results.get(digest)
            if stored is not None and wall - stored[0] <= lim.result_retention:
                # Features of the first application; cooldowns and contacts as they are now.
                current = self._state(up.customer_id, cust, "duplicate", now)
                return replace(
                    stored[1], status="duplicate", fired=current.fired, contacts=current.contacts
                )
            return self._state(up.customer_id, cust, "duplicate", now)
        status = "late" if ts < now - lim.allowed_lateness else "applied"
        if seen_in_slot is None:
            cust.seen[slot] = {digest}
        else:
            seen_in_slot.add(digest)
        if has_ops:
            ch, cd = hour_of(now), day_of(now)
            if wm is None or hour_of(wm) != ch:
                self._settle(cust, now, ch, cd)
            _aggregates(cust, now)
            self._execute(cust, up, ts, ch, cd)
            if wm is None or ts > wm:
                cust.wm = ts
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
        if ch >= cust.settle_due:
            settle(cust.buckets, ch, cd)
            cust.settle_due = next_due_hour(cust.buckets)
            cust.rolled = True
        # Digests of slots wholly past the horizon can never match again (an event that old is
        # too late before it is looked up): prune them once a day of such slots has passed.
        edge = now - self._limits.dedup_horizon
        first_kept = math.floor(edge / DEDUP_SLOT)
        if cust.seen and first_kept >= cust.seen_edge + _SLOTS_PER_DAY:
            for old_slot in [s for s in cust.seen if s < first_kept]:
                del cust.seen[old_slot]
            cust.seen_edge = first_kept
        if cust.contacts:
            keep_after = now - self._limits.contact_retention
            old = [k for k, c in cust.contacts.items() if c.ts < keep_after]
            for k in old:
                del cust.contacts[k]
            if old:
                cust.effects = None

    @staticmethod
    def _execute(cust: _Customer, up: StateUpdate, ts: float, ch: int, cd: int) -> None:
        plan = plan_ops(up.ops)
        if plan.sets:
            f = cust.fields
            for name, value in plan.sets:
                f[name] = merge_consent(f.get("pc"), value) if name == "pc" else value
            cust.profile = None
        delta = plan.delta
        session = plan.session
        if session and session not in cust.sessions:
            delta = dict(delta)
            delta[SESSION_COL] = delta.get(SESSION_COL, 0) + 1
            cust.sessions = [session, *cust.sessions[: SESSIONS_KEPT - 1]]
        if delta:
            target = place(ts, ch, cd)
            if target is not None:
                _merge_into(cust, target, delta)
                if cust.agg is not None:
                    add_to_aggregate(cust.agg, target, delta, ch, cd, cust.win)
        if plan.lasts:
            times = cust.times
            at = math.floor(ts)
            for slot in plan.lasts:
                old_at = times[slot]
                if old_at is None or at > old_at:
                    times[slot] = at
        op = plan.aum
        if op is not None:
            aum = cust.aum or 0
            new_at = cust.aum_at
            from_profile = False
            move: int | None = None
            if op.kind == "balance":
                old = cust.balances.get(op.name)
                v = int(op.value)
                cust.balances[op.name] = v
                if op.flag == 1:
                    if old is not None:
                        move = v - old
                    elif cust.aum_from_profile:
                        move = op.amount
                    else:
                        move = v
            elif op.kind == "flow":
                move = int(op.value)
            elif new_at is None or ts >= new_at:
                # A profile snapshot older than the last posting that moved AUM is ignored.
                aum = int(op.value)
                new_at = ts
                from_profile = True
            if move is not None:
                aum = max(aum + move, 0)
                if new_at is None or ts > new_at:
                    new_at = ts
            # The script keeps AUM as text (%.15g of the units) and reads it back rounded to
            # the cent: beyond 15 significant digits that is not ``aum``, so keep what it keeps.
            text = money_text(aum)
            cust.aum, cust.aum_units = text_cents(text), float(text)
            cust.aum_at = new_at
            if from_profile:
                cust.aum_from_profile = True
            seen = dict.fromkeys(AUM_COLS, aum)
            _merge_into(cust, ("D", cd), seen)
            if cust.agg is not None:
                add_to_aggregate(cust.agg, ("D", cd), seen, ch, cd, cust.win)

    def _state(self, cid: str, cust: _Customer, status: str, now: float) -> CustomerState:
        """What ``features.state.build_state`` builds from the Redis hash, from the caches."""
        agg, ago = _aggregates(cust, now)
        if cust.profile is None:
            cust.profile = profile_of(cust.fields)
        if cust.effects is None:
            contacts = sorted(cust.contacts.values(), key=contact_order)
            cust.effects = dict(cust.fired), tuple(contacts)
        fired, contacts_now = cust.effects
        return CustomerState(
            customer_id=cid,
            status=status,  # type: ignore[arg-type]
            now=now,
            features=finish_vector(cust.win, now, agg, cust.aum_units, cust.times, ago),
            profile=cust.profile,
            fired=fired,
            contacts=contacts_now,
        )

    async def commit(
        self, effects: Sequence[Effects], reservations: Sequence[CapacityReservation] = ()
    ) -> None:
        for r in reservations:
            self._capacity.setdefault((r.channel, r.day), set()).add(r.key)
        for eff in effects:
            if not eff:
                continue
            cust = self._customers.setdefault(eff.customer_id, _Customer())
            cust.effects = None
            for rule_id, fired in sorted(eff.fired.items()):
                old = cust.fired.get(rule_id)
                if old is None or fired.ts > old.ts:
                    cust.fired[rule_id] = Fired(fired.ts, fired.decision_id)
            for contact in eff.contacts:
                cust.contacts[(contact.decision_id, contact.action_id)] = Contact(
                    contact.ts, contact.channel, contact.decision_id, contact.action_id
                )

    async def read(self, customer_id: str) -> CustomerState | None:
        cust = self._customers.get(customer_id)
        if cust is None or cust.wm is None:
            return None
        return self._state(customer_id, cust, "applied", cust.wm)

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
        cust.win = windowed_values(cust.agg)
        cust.agg_day, cust.agg_hour = cd, ch
    elif cust.agg_hour != ch:
        # Forward in time, only the hour windows a bucket left; after a roll-up, or read at an
        # earlier hour than the last (a redelivered event with a later time moves the reading
        # hour past the watermark, the next read is at the watermark), all of them.
        prev = None if cust.rolled or ch < cust.agg_hour else cust.agg_hour
        changed = refresh_hour_windows(cust.agg, cust.buckets, ch, prev)
        update_windowed_values(cust.win, cust.agg, changed)
        cust.agg_hour = ch
    cust.rolled = False
    return cust.agg, cust.ago


def _merge_into(cust: _Customer, key: Key, delta: dict[int, int]) -> None:
    dst = cust.buckets.get(key)
    if dst is None:
        cust.buckets[key] = dict(delta)
        cust.settle_due = min(cust.settle_due, due_hour(key))
    else:
        merge(dst, delta)
