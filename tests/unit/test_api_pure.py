"""The API's pure parts: filters, webhook signatures and backoff, stream tokens, stream ids,
the decision explanation and the contact-policy counters."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api import signing, sse, tokens
from api.explain import contact_counters, explanation
from api.filters import AlertFilter, FilterError
from engine.config import PolicySettings
from engine.types import Contact

ALERT = {"type": "churn_risk", "severity": "high", "tier": "basic", "rm_id": "rm7"}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, True),
        ({"type": ["churn_risk"]}, True),
        ({"type": ["asset_drop"]}, False),
        ({"type": ["asset_drop,churn_risk"]}, True),
        ({"type": ["asset_drop", "churn_risk"]}, True),
        ({"type": ["churn_risk"], "severity": ["low"]}, False),
        ({"tier": ["basic"], "rm_id": ["rm7"]}, True),
        ({"rm_id": ["rm8"]}, False),
        ({"type": [" , "]}, True),  # only blanks: no constraint
    ],
)
def test_filters_or_within_a_field_and_across_fields(query: dict, expected: bool) -> None:
    assert AlertFilter.parse(**query).matches(ALERT) is expected


def test_filter_refuses_oversized_values_with_a_message() -> None:
    with pytest.raises(FilterError, match="type: a value is longer than 128"):
        AlertFilter.parse(type=["x" * 129])
    with pytest.raises(FilterError, match="more than 50 values"):
        AlertFilter.parse(tier=[",".join(str(i) for i in range(51))])


def test_filter_survives_a_round_trip_through_its_dict() -> None:
    f = AlertFilter.parse(type=["b,a"], rm_id=["rm1"])
    assert AlertFilter.from_dict(f.as_dict()) == f


@given(
    secret=st.text(min_size=16, max_size=40), body=st.binary(max_size=200), t=st.integers(0, 2**40)
)
def test_a_signature_verifies_only_for_the_same_secret_body_and_fresh_time(
    secret: str, body: bytes, t: int
) -> None:
    header = signing.sign(secret, t, body)
    assert signing.verify(secret, header, body, now=t + 10)
    assert not signing.verify(secret + "x", header, body, now=t + 10)
    assert not signing.verify(secret, header, body + b"!", now=t + 10)
    assert not signing.verify(secret, header, body, now=t + signing.DEFAULT_TOLERANCE_SECONDS + 1)


def test_the_signed_string_is_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    body = b'{"alert":{"alert_id":"a1"}}'
    expected = hmac.new(b"k" * 16, b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signing.sign("k" * 16, 1700000000, body) == f"t=1700000000,v1={expected}"


@pytest.mark.parametrize("header", ["", "t=abc,v1=00", "v1=00", "t=1", "garbage"])
def test_malformed_signature_headers_do_not_verify(header: str) -> None:
    assert not signing.verify("k" * 16, header, b"{}", now=1.0)


def test_backoff_doubles_up_to_the_cap_and_spread_adds_at_most_a_fifth() -> None:
    delays = [signing.backoff(n, 0.5, 30.0) for n in range(1, 10)]
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0]
    assert max(delays) == 30.0
    assert delays == sorted(delays)
    for n in range(1, 10):
        assert delays[n - 1] <= signing.backoff(n, 0.5, 30.0, 0.99) <= delays[n - 1] * 1.2


def test_stream_tokens_carry_the_key_name_and_expire() -> None:
    secret = b"s" * 32
    token = tokens.issue(secret, "console-user", now=1000.0, ttl=300)
    assert tokens.check(secret, token, now=1299.0) == "console-user"
    assert tokens.check(secret, token, now=1301.0) is None
    forged = token.replace(token[-4:], "AAAA")
    assert tokens.check(secret, forged, now=1000.0) is None
    # The payload cannot be edited without the secret.
    _, _, mac = token.partition(".")
    other = tokens.issue(secret, "admin", now=1000.0, ttl=300).partition(".")[0]
    assert tokens.check(secret, f"{other}.{mac}", now=1000.0) is None


@pytest.mark.parametrize("bad", ["", "abc", "1-2-3", "-1", "1-", "99999999999999999999999-0"])
def test_stream_ids_are_validated(bad: str) -> None:
    assert sse.parse_id(bad) is None


def test_sse_frames_name_id_event_and_data() -> None:
    assert sse.frame(None, "gap", b"{}") == b"event: gap\ndata: {}\n\n"
    assert sse.frame("5-1", "alert", b"{}").startswith(b"id: 5-1\n")


RECORD = {
    "event_type": "app",
    "event_id": "e9",
    "event_time": "2026-01-02T02:05:00.000+00:00",
    "state_status": "applied",
    "scores": {"churn_risk": {"score": 0.5, "version": "v2", "cold": False}},
    "rules": {"fired": [], "suppressed": [], "errors": [{"rule_id": "r1", "reason": "div0"}]},
    "actions": {"chosen": [], "lead_grade": "none", "candidates": []},
}


def test_explanation_says_when_nothing_fired_and_reports_rule_errors() -> None:
    lines = explanation(RECORD)
    assert "No rule fired." in lines
    assert "Rule r1 could not be evaluated: div0." in lines
    assert "Model churn_risk scored 0.500 (version v2)." in lines


def test_explanation_tolerates_a_record_with_missing_parts() -> None:
    assert explanation({})[0].startswith("? event ?")


def test_contact_counters_count_only_the_last_seven_days() -> None:
    week = 7 * 86400
    now = 100 * 86400.0
    contacts = [
        Contact(now - week - 1, "sms", "d0", "a"),  # outside the window
        Contact(now - 3600, "sms", "d1", "a"),
        Contact(now - 60, "push", "d2", "b"),
    ]
    out = contact_counters(contacts, now, 5.0, PolicySettings())
    assert out["contacts_7d"] == 2
    assert out["by_channel_7d"] == {"push": 1, "sms": 1}
    assert out["remaining_7d"] == PolicySettings().max_contacts_7d - 2
    assert out["complaint_suppressed"] is True  # 5 days since a complaint < 30
    assert out["last_contact_at"].startswith("1970-04-10T23:59")
