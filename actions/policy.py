"""The contact policy: compliance checks made before anything is sent. Pure.

Checks, in order (the first that fails is the recorded reason): opted out, no consent for the
channel, a complaint within the suppression period, quiet hours in the customer's time zone
(calls and SMS only), the per-channel cap and the overall cap over the last 7 days.

>>> from engine.config import PolicySettings
>>> ctx = PolicyContext(ts=1767585600.0, profile={"consent_sms": "0"}, contacts=(),
...                     days_since_last_complaint=9999.0, decision_id="d1")
>>> check_contact("sms", ctx, PolicySettings())
'no_consent_sms'
>>> check_contact("push", ctx, PolicySettings()) is None
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.config import PolicySettings
from engine.types import Contact

QUIET_HOURS_CHANNELS = frozenset({"sms", "robot_call", "rm_call"})
WEEK = 7 * 86400


@dataclass(frozen=True, slots=True)
class PolicyContext:
    ts: float
    profile: Mapping[str, str]
    contacts: tuple[Contact, ...]
    days_since_last_complaint: float
    decision_id: str


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def local_hour(ts: float, timezone: str) -> int:
    zone = _zone(timezone) or ZoneInfo("UTC")
    return datetime.fromtimestamp(ts, tz=zone).hour


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


def customer_timezone(profile: Mapping[str, str], settings: PolicySettings) -> tuple[str, bool]:
    """The customer's time zone, and whether it is the configured default (none on profile)."""
    tz = profile.get("timezone")
    if tz and _zone(tz) is not None:
        return tz, False
    return settings.default_timezone, True


def check_contact(channel: str, ctx: PolicyContext, settings: PolicySettings) -> str | None:
    """None when the contact is allowed, else the reason it is not."""
    profile = ctx.profile
    if profile.get("opted_out") == "1":
        return "opted_out"
    if profile.get(f"consent_{channel}", "1") != "1":
        return f"no_consent_{channel}"
    if ctx.days_since_last_complaint < settings.complaint_suppression_days:
        return "recent_complaint"
    if channel in QUIET_HOURS_CHANNELS:
        tz, _ = customer_timezone(profile, settings)
        if in_quiet_hours(
            local_hour(ctx.ts, tz), settings.quiet_hours_start, settings.quiet_hours_end
        ):
            return "quiet_hours"
    recent = [
        c
        for c in ctx.contacts
        if c.decision_id != ctx.decision_id and ctx.ts - WEEK < c.ts <= ctx.ts
    ]
    if sum(1 for c in recent if c.channel == channel) >= settings.max_per_channel_7d:
        return f"cap_{channel}_7d"
    if len(recent) >= settings.max_contacts_7d:
        return "cap_total_7d"
    return None
