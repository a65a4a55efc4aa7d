"""The contact policy: compliance checks made before anything is sent. Pure.

``check_contact`` answers, for one channel, None (allowed) or the reason it is not. The checks, in
order (the first that fails is the recorded reason):

1. ``opted_out`` -- the customer opted out of every contact (profile event);
2. ``no_consent_<channel>`` -- no consent for that channel (consent defaults to given);
3. ``recent_complaint`` -- a complaint within ``complaint_suppression_days``;
4. ``quiet_hours`` -- the customer's local time (their own time zone, else the default) is within
   the quiet hours and the channel is one they apply to;
5. ``cap_<channel>_<window>`` -- the per-channel cap over its rolling event-time window;
6. ``cap_total_24h``, ``cap_total_7d`` -- the overall caps over any 24 hours and 7 days;
7. ``capacity_<channel>`` -- the bank's daily capacity of the channel is used up.

Contacts are the customer's earlier decided contacts (``CustomerState.contacts``); those of the
decision being made are not counted (a redelivered event is decided the same way again). A contact
counts when it lies in the window ``(ts - window, +inf)``: a contact already made *after* a late
event still counts against it.

>>> from engine.config import PolicySettings
>>> rules = compile_policy(PolicySettings())
>>> ctx = PolicyContext(ts=1767585600.0, profile={"consent_sms": "0"}, contacts=(),
...                     days_since_last_complaint=9999.0, decision_id="d1")
>>> check_contact("sms", ctx, rules)
'no_consent_sms'
>>> check_contact("push", ctx, rules) is None
True
>>> full = PolicyContext(ts=1767585600.0, profile={}, contacts=(), days_since_last_complaint=9999.0,
...                      decision_id="d1", capacity_used={"rm_call": 500})
>>> check_contact("rm_call", full, rules)
'capacity_rm_call'
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from types import MappingProxyType
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.config import PolicySettings
from engine.events import CHANNELS
from engine.types import Contact

DAY = 86400
WEEK = 7 * DAY
_CAP = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*([smhd])\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": DAY}
_CONSENT_KEY = {c: f"consent_{c}" for c in CHANNELS}


@dataclass(frozen=True, slots=True)
class Cap:
    """At most ``limit`` contacts within ``window`` seconds; ``name`` as in ``"7d"``."""

    limit: int
    window: float
    name: str


def parse_cap(text: str) -> Cap:
    """A cap written ``"<max>/<window>"``.

    >>> parse_cap("2/7d")
    Cap(limit=2, window=604800.0, name='7d')
    >>> parse_cap("1 / 14d").window / 86400
    14.0
    """
    match = _CAP.match(text)
    if not match:
        raise ValueError(f"cap {text!r} is not like '2/7d' (max/window)")
    n, amount, unit = int(match.group(1)), int(match.group(2)), match.group(3)
    return Cap(n, float(amount * _UNIT[unit]), f"{amount}{unit}")


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """``PolicySettings`` made ready to check: caps parsed, time zone resolved, versioned."""

    default_timezone: str
    quiet_start: int
    quiet_end: int
    quiet_channels: frozenset[str]
    channel_caps: Mapping[str, Cap]
    default_cap: Cap
    total_caps: tuple[Cap, ...]
    complaint_days: float
    daily_capacity: Mapping[str, int]
    lead_high: float
    lead_mid: float
    lead_models: tuple[str, ...]
    offline_rm_tiers: frozenset[str]
    version: str

    def cap(self, channel: str) -> Cap:
        return self.channel_caps.get(channel, self.default_cap)


_COMPILED: dict[int, tuple[PolicySettings, CompiledPolicy]] = {}


def compile_policy(settings: PolicySettings) -> CompiledPolicy:
    """Compile once per settings object (cached by identity; settings are frozen)."""
    hit = _COMPILED.get(id(settings))
    if hit is not None and hit[0] is settings:
        return hit[1]
    compiled = CompiledPolicy(
        default_timezone=settings.default_timezone,
        quiet_start=settings.quiet_hours_start,
        quiet_end=settings.quiet_hours_end,
        quiet_channels=frozenset(settings.quiet_hours_channels),
        channel_caps={c: parse_cap(text) for c, text in settings.channel_caps.items()},
        default_cap=Cap(settings.max_per_channel_7d, float(WEEK), "7d"),
        total_caps=(
            Cap(settings.max_contacts_24h, float(DAY), "24h"),
            Cap(settings.max_contacts_7d, float(WEEK), "7d"),
        ),
        complaint_days=float(settings.complaint_suppression_days),
        daily_capacity=dict(settings.daily_capacity),
        lead_high=settings.lead_high_threshold,
        lead_mid=settings.lead_mid_threshold,
        lead_models=settings.lead_score_models,
        offline_rm_tiers=frozenset(settings.offline_rm_tiers),
        version=hashlib.sha256(settings.model_dump_json().encode()).hexdigest()[:12],
    )
    if len(_COMPILED) > 32:
        _COMPILED.clear()
    _COMPILED[id(settings)] = (settings, compiled)
    return compiled


class PolicyContext(NamedTuple):
    """What the policy reads about one decision.

    ``capacity_used``: contacts already reserved today (the bank's day) per channel, counted by
    the store across all workers; it may include this decision's own reservation (a redelivery),
    which is recognised by this decision's contact in ``contacts`` and not counted twice.
    """

    ts: float
    profile: Mapping[str, str]
    contacts: tuple[Contact, ...]
    days_since_last_complaint: float
    decision_id: str
    capacity_used: Mapping[str, int] = MappingProxyType({})


class CapacityReservation(NamedTuple):
    """One unit of a channel's daily capacity taken by a decision. The store adds ``key`` to the
    set of ``(channel, day)`` and counts the set: a redelivered decision is counted once."""

    channel: str
    day: str
    key: str


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def local_hour(ts: float, timezone: str) -> int:
    """The hour of the day at ``ts`` in ``timezone`` (UTC when the zone is unknown).

    Every UTC offset in use is a whole number of quarter hours and changes on a quarter hour,
    so the hour is the same throughout a UTC-aligned quarter hour: it is memoised per quarter.

    >>> local_hour(1767319200.0, "Asia/Shanghai"), local_hour(1767319200.0, "Asia/Kolkata")
    (10, 7)
    """
    return _quarter_hour(int(ts // 900), timezone)


@lru_cache(maxsize=8192)
def _quarter_hour(quarter: int, timezone: str) -> int:
    zone = _zone(timezone) or ZoneInfo("UTC")
    return datetime.fromtimestamp(quarter * 900, tz=zone).hour


def bank_day(ts: float, policy: CompiledPolicy) -> str:
    """The bank's calendar day of an event time, in the default time zone (capacity is daily).

    >>> from engine.config import PolicySettings
    >>> bank_day(1767283200.0, compile_policy(PolicySettings()))  # 2026-01-01T16:00Z
    '2026-01-02'
    """
    return _quarter_day(int(ts // 900), policy.default_timezone)


@lru_cache(maxsize=4096)
def _quarter_day(quarter: int, timezone: str) -> str:
    """The local date of a UTC-aligned quarter hour (days change on quarter hours, too)."""
    zone = _zone(timezone) or ZoneInfo("UTC")
    return datetime.fromtimestamp(quarter * 900, tz=zone).date().isoformat()


def in_quiet_hours(hour: int, start: int, end: int) -> bool:
    """Whether ``hour`` falls in [start, end), wrapping past midnight.

    >>> in_quiet_hours(22, 21, 8), in_quiet_hours(7, 21, 8), in_quiet_hours(12, 21, 8)
    (True, True, False)
    """
    if start == end:
        return False
    if start < end:
        return start <= hour < end
    return hour >= start or hour < end


def customer_timezone(
    profile: Mapping[str, str], policy: CompiledPolicy | PolicySettings
) -> tuple[str, bool]:
    """The customer's time zone, and whether it is the configured default (none on profile).

    >>> from engine.config import PolicySettings
    >>> customer_timezone({"timezone": "Europe/Paris"}, PolicySettings())
    ('Europe/Paris', False)
    >>> customer_timezone({}, PolicySettings())
    ('Asia/Shanghai', True)
    """
    tz = profile.get("timezone")
    if tz and _zone(tz) is not None:
        return tz, False
    return policy.default_timezone, True


def _count_since(times: Iterable[float], since: float) -> int:
    """How many of the times are after ``since``. A plain loop: over the handful of contacts
    a customer has, setting up a generator for ``sum`` costs more than the counting."""
    n = 0
    for t in times:
        if t > since:
            n += 1
    return n


def check_contact(channel: str, ctx: PolicyContext, policy: CompiledPolicy) -> str | None:
    """None when a contact on ``channel`` is allowed now, else the reason it is not."""
    return ContactChecker(ctx, policy).check(channel)


class ContactChecker:
    """``check_contact`` for several channels of one decision: the customer-wide part (opt-out,
    complaint, the overall caps, the local hour) is worked out once, on first use.

    >>> from engine.config import PolicySettings
    >>> ctx = PolicyContext(ts=1767585600.0, profile={}, decision_id="d2",
    ...                     contacts=(Contact(1767585000.0, "push", "d1", "a1"),),
    ...                     days_since_last_complaint=9999.0)
    >>> checker = ContactChecker(ctx, compile_policy(PolicySettings()))
    >>> checker.check("sms"), checker.check("push")
    ('cap_total_24h', 'cap_total_24h')
    """

    __slots__ = ("_by_channel", "_held", "_hour", "_total", "ctx", "policy")

    def __init__(self, ctx: PolicyContext, policy: CompiledPolicy) -> None:
        self.ctx = ctx
        self.policy = policy
        self._by_channel: dict[str, list[float]] | None = None
        self._held: set[str] = set()
        self._total: str | None = None
        self._hour: int | None = None

    def _scan(self) -> dict[str, list[float]]:
        """Earlier contacts' times per channel, and the overall caps' verdict."""
        by_channel: dict[str, list[float]] = {}
        ts, own = self.ctx.ts, self.ctx.decision_id
        times: list[float] = []
        for c in self.ctx.contacts:
            if c.decision_id == own:
                self._held.add(c.channel)
                continue
            times.append(c.ts)
            by_channel.setdefault(c.channel, []).append(c.ts)
        for total in self.policy.total_caps:
            if _count_since(times, ts - total.window) >= total.limit:
                self._total = f"cap_total_{total.name}"
                break
        self._by_channel = by_channel
        return by_channel

    def check(self, channel: str) -> str | None:
        ctx, policy = self.ctx, self.policy
        profile = ctx.profile
        if profile.get("opted_out") == "1":
            return "opted_out"
        if profile.get(_CONSENT_KEY.get(channel) or f"consent_{channel}", "1") != "1":
            return f"no_consent_{channel}"
        if ctx.days_since_last_complaint < policy.complaint_days:
            return "recent_complaint"
        if channel in policy.quiet_channels and policy.quiet_start != policy.quiet_end:
            if self._hour is None:
                self._hour = local_hour(ctx.ts, customer_timezone(profile, policy)[0])
            if in_quiet_hours(self._hour, policy.quiet_start, policy.quiet_end):
                return "quiet_hours"
        by_channel = self._by_channel if self._by_channel is not None else self._scan()
        cap = policy.cap(channel)
        if _count_since(by_channel.get(channel, ()), ctx.ts - cap.window) >= cap.limit:
            return f"cap_{channel}_{cap.name}"
        if self._total is not None:
            return self._total
        limit = policy.daily_capacity.get(channel)
        held = channel in self._held
        if limit is not None and ctx.capacity_used.get(channel, 0) - int(held) >= limit:
            return f"capacity_{channel}"
        return None
