"""The contact policy: consent, complaints, quiet hours in the customer's zone, rolling caps per
channel and overall, the bank's daily capacity; every refusal names its reason."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from actions.policy import (
    ContactChecker,
    PolicyContext,
    bank_day,
    check_contact,
    compile_policy,
    customer_timezone,
    local_hour,
    parse_cap,
)
from engine.config import PolicySettings
from engine.types import Contact

DAY = 86400.0
# 2026-01-05T14:00:00Z: 22:00 in Shanghai, 14:00 in London, 09:00 in New York.
T = 1767621600.0
# 2026-01-05T02:00:00Z: 10:00 in Shanghai.
MORNING = 1767578400.0


def ctx(
    ts: float = MORNING,
    profile: Mapping[str, str] | None = None,
    contacts: tuple[Contact, ...] = (),
    complaint_days: float = 9999.0,
    capacity: Mapping[str, int] | None = None,
    decision_id: str = "d-now",
) -> PolicyContext:
    return PolicyContext(
        ts=ts,
        profile=profile or {},
        contacts=contacts,
        days_since_last_complaint=complaint_days,
        decision_id=decision_id,
        capacity_used=capacity or {},
    )


def check(channel: str, c: PolicyContext, **settings: Any) -> str | None:
    return check_contact(channel, c, compile_policy(PolicySettings(**settings)))


def contact(days_ago: float, channel: str, decision: str = "d-old", at: float = MORNING) -> Contact:
    return Contact(at - days_ago * DAY, channel, decision, "some_action")


def test_opt_out_and_consent_are_per_channel() -> None:
    assert check("sms", ctx(profile={"opted_out": "1"})) == "opted_out"
    no_sms = ctx(profile={"consent_sms": "0", "consent_push": "1"})
    assert check("sms", no_sms) == "no_consent_sms"
    assert check("push", no_sms) is None
    assert check("email", no_sms) is None  # consent defaults to given


def test_a_recent_complaint_suppresses_every_channel_for_the_configured_days() -> None:
    for channel in ("push", "rm_call"):
        assert check(channel, ctx(complaint_days=10)) == "recent_complaint"
    assert check("push", ctx(complaint_days=31)) is None
    assert check("push", ctx(complaint_days=10), complaint_suppression_days=7) is None


def test_quiet_hours_follow_the_customers_own_time_zone() -> None:
    assert check("sms", ctx(ts=T, profile={"timezone": "Asia/Shanghai"})) == "quiet_hours"
    assert check("sms", ctx(ts=T, profile={"timezone": "Europe/London"})) is None
    assert check("rm_call", ctx(ts=T, profile={"timezone": "America/New_York"})) is None
    # no time zone on the profile: the configured default (Shanghai, 22:00) applies
    assert check("sms", ctx(ts=T)) == "quiet_hours"
    assert check("sms", ctx(ts=T), default_timezone="Europe/London") is None
    assert customer_timezone({}, PolicySettings()) == ("Asia/Shanghai", True)
    assert customer_timezone({"timezone": "Nowhere/Land"}, PolicySettings())[1] is True


def test_quiet_hours_apply_to_the_configured_channels_and_hours() -> None:
    night = ctx(ts=T)
    assert check("push", night) is None  # not a quiet-hours channel by default
    assert check("robot_call", night) == "quiet_hours"
    assert check("push", night, quiet_hours_channels=("push",)) == "quiet_hours"
    assert check("sms", night, quiet_hours_channels=()) is None
    assert check("sms", night, quiet_hours_start=23, quiet_hours_end=7) is None
    assert check("sms", night, quiet_hours_start=0, quiet_hours_end=0) is None  # off


def test_local_hour_is_exact_across_offsets_and_dst() -> None:
    assert local_hour(T, "Asia/Kolkata") == 19  # +05:30
    assert local_hour(T, "Asia/Kathmandu") == 19  # +05:45
    # 2026-03-29T00:59:59Z is 00:59 in London, 01:00:00Z is 02:00 (BST starts)
    assert local_hour(1774745999.0, "Europe/London") == 0
    assert local_hour(1774746000.0, "Europe/London") == 2


def test_per_channel_caps_use_their_own_rolling_windows() -> None:
    two_sms = (contact(1, "sms"), contact(6.9, "sms"))
    assert check("sms", ctx(contacts=two_sms), max_contacts_7d=10) == "cap_sms_7d"
    old = (contact(1, "sms"), contact(7.1, "sms"))
    assert check("sms", ctx(contacts=old), max_contacts_7d=10) is None
    # one call in 14 days
    assert check("rm_call", ctx(contacts=(contact(13, "rm_call"),))) == "cap_rm_call_14d"
    assert check("rm_call", ctx(contacts=(contact(15, "rm_call"),))) is None
    # configurable, and a channel without an entry gets max_per_channel_7d
    caps = {"sms": "1/3d"}
    assert check("sms", ctx(contacts=(contact(2, "sms"),)), channel_caps=caps) == "cap_sms_3d"
    assert check("sms", ctx(contacts=(contact(4, "sms"),)), channel_caps=caps) is None
    pushes = (contact(2, "push"), contact(3, "push"))
    assert check("push", ctx(contacts=pushes), max_contacts_7d=9) == "cap_push_7d"
    assert check("push", ctx(contacts=pushes), max_contacts_7d=9, max_per_channel_7d=3) is None


def test_overall_caps_count_every_channel() -> None:
    assert check("email", ctx(contacts=(contact(0.5, "push"),))) == "cap_total_24h"
    assert check("email", ctx(contacts=(contact(1.5, "push"),))) is None
    three = (contact(2, "push"), contact(4, "sms"), contact(6, "in_app"))
    assert check("email", ctx(contacts=three)) == "cap_total_7d"
    assert check("email", ctx(contacts=three), max_contacts_7d=4) is None


def test_the_decisions_own_contact_is_not_counted_again() -> None:
    own = (contact(0, "sms", decision="d-now"),)
    assert check("sms", ctx(contacts=own)) is None
    assert check("sms", ctx(contacts=(contact(0, "sms", decision="d-other"),))) == "cap_total_24h"


def test_a_contact_made_after_a_late_event_still_counts() -> None:
    later = (Contact(MORNING + 3600, "push", "d-later", "x"),)
    assert check("email", ctx(contacts=later)) == "cap_total_24h"


def test_daily_capacity_is_the_banks_and_a_redelivery_does_not_count_itself() -> None:
    settings = {"daily_capacity": {"rm_call": 10}}
    assert check("rm_call", ctx(capacity={"rm_call": 9}), **settings) is None
    assert check("rm_call", ctx(capacity={"rm_call": 10}), **settings) == "capacity_rm_call"
    assert check("sms", ctx(capacity={"rm_call": 10}), **settings) is None  # no capacity on sms
    # this decision's own reservation is already in the count: it keeps its place
    redelivered = ctx(capacity={"rm_call": 10}, contacts=(contact(0, "rm_call", "d-now"),))
    assert check("rm_call", redelivered, **settings) is None


def test_the_first_failing_check_is_the_reason() -> None:
    everything = ctx(
        ts=T,
        profile={"consent_sms": "0"},
        contacts=(contact(0.1, "sms"), contact(0.2, "sms")),
        complaint_days=1,
    )
    assert check("sms", everything) == "no_consent_sms"
    assert check("rm_call", everything) == "recent_complaint"


def test_the_checker_shares_work_but_answers_like_check_contact() -> None:
    policy = compile_policy(PolicySettings())
    contacts = (contact(2, "push"), contact(3, "sms"), contact(0.2, "in_app", "d-now"))
    c = ctx(ts=T, profile={"consent_email": "0"}, contacts=contacts)
    checker = ContactChecker(c, policy)
    for channel in ("sms", "push", "in_app", "email", "robot_call", "rm_call", "rm_handoff"):
        assert checker.check(channel) == check_contact(channel, c, policy), channel


def test_caps_parse_and_the_banks_day_is_in_the_default_zone() -> None:
    assert parse_cap("2/7d").window == 7 * DAY
    assert parse_cap("3 / 12h").limit == 3
    with pytest.raises(ValueError, match="not like"):
        parse_cap("2 per week")
    policy = compile_policy(PolicySettings())
    assert bank_day(T, policy) == "2026-01-05"  # 22:00 in Shanghai
    assert bank_day(T + 3 * 3600, policy) == "2026-01-06"  # 01:00 next day in Shanghai
    london = compile_policy(PolicySettings(default_timezone="Europe/London"))
    assert bank_day(T + 3 * 3600, london) == "2026-01-05"


def test_the_compiled_policy_is_versioned_by_its_settings() -> None:
    a = compile_policy(PolicySettings())
    assert compile_policy(PolicySettings()).version == a.version
    assert compile_policy(PolicySettings(max_contacts_7d=5)).version != a.version
