"""The event contract: every valid type parses; every kind of bad input gets its reason."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from engine.events import InvalidEvent, InvalidReason, parse_event

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def parse(doc: Any, raw: bytes | None = None, **kw: Any) -> Any:
    data = raw if raw is not None else orjson.dumps(doc)
    return parse_event(
        data, now=NOW, max_bytes=kw.get("max_bytes", 65536), max_future_seconds=86400
    )


def tx(**over: Any) -> dict[str, Any]:
    doc = {
        "event_id": "e1",
        "type": "transaction",
        "customer_id": "c1",
        "account_id": "a1",
        "ts": "2025-12-31T23:00:00+08:00",
        "amount": 12.5,
        "currency": "CNY",
        "direction": "debit",
        "kind": "purchase",
        "channel": "pos",
    }
    doc.update(over)
    return {k: v for k, v in doc.items() if v is not ...}


@pytest.mark.parametrize(
    "doc",
    [
        tx(),
        tx(counterparty_bank="ICBC", balance_after=100.0, memo="kept for the audit"),
        {
            "event_id": "a",
            "type": "app",
            "customer_id": "c",
            "ts": "2025-12-31T10:00:00Z",
            "session_id": "s",
            "name": "page_view",
            "page": "home",
            "properties": {"device": "ios"},
        },
        {
            "event_id": "o",
            "type": "outcome",
            "customer_id": "c",
            "ts": "2025-12-31T10:00:00Z",
            "label": "churned",
        },
        {
            "event_id": "p",
            "type": "profile",
            "customer_id": "c",
            "ts": "2025-12-31T10:00:00Z",
            "consent": {"sms": False},
            "timezone": "Europe/London",
            "aum": 0,
            "opted_out": True,
        },
    ],
)
def test_valid_events_parse(doc: dict[str, Any]) -> None:
    event = parse(doc)
    assert not isinstance(event, InvalidEvent), event
    assert event.event_id == doc["event_id"] and event.type == doc["type"]


def test_extra_fields_are_kept() -> None:
    event = parse(tx(memo="pension"))
    assert not isinstance(event, InvalidEvent)
    assert event.extra == {"memo": "pension"}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", InvalidReason.NOT_JSON),
        (b"\xff\xfe\x00", InvalidReason.NOT_JSON),
        # NUL-led bytes are not UTF-8 JSON (the standard parser alone would guess UTF-16 and
        # read a number, a list or a string: found by the bad-input volume test)
        (b"\x001", InvalidReason.NOT_JSON),
        (b"\x00[\x00]", InvalidReason.NOT_JSON),
        (b'\x00"\x00a\x00"', InvalidReason.NOT_JSON),
        (b'"a string"', InvalidReason.NOT_AN_OBJECT),
        (b"[]", InvalidReason.NOT_AN_OBJECT),
        (orjson.dumps({"type": "wire", "event_id": "x"}), InvalidReason.UNKNOWN_TYPE),
        (orjson.dumps({"event_id": "x", "customer_id": "c"}), InvalidReason.UNKNOWN_TYPE),
        (orjson.dumps(tx(amount=...)), InvalidReason.MISSING_FIELD),
        (orjson.dumps(tx(customer_id=...)), InvalidReason.MISSING_FIELD),
        (orjson.dumps(tx(ts="2025-12-31T23:00:00")), InvalidReason.TIMESTAMP_WITHOUT_OFFSET),
        (orjson.dumps(tx(ts="yesterday")), InvalidReason.INVALID_FIELD),
        (orjson.dumps(tx(ts="2026-01-03T00:00:01Z")), InvalidReason.TIMESTAMP_IN_FUTURE),
        (orjson.dumps(tx(amount=-1)), InvalidReason.INVALID_AMOUNT),
        (orjson.dumps(tx(amount=0)), InvalidReason.INVALID_AMOUNT),
        (orjson.dumps(tx(amount="12")).replace(b'"12"', b"1e999"), InvalidReason.INVALID_AMOUNT),
        (orjson.dumps(tx(amount="12")).replace(b'"12"', b"NaN"), InvalidReason.INVALID_AMOUNT),
        (orjson.dumps(tx(amount="twelve")), InvalidReason.INVALID_AMOUNT),
        (orjson.dumps(tx(direction="sideways")), InvalidReason.INVALID_FIELD),
        (orjson.dumps(tx(kind="bribe")), InvalidReason.INVALID_FIELD),
        (orjson.dumps(tx(event_id="")), InvalidReason.INVALID_FIELD),
        (
            orjson.dumps(
                {
                    "event_id": "p",
                    "type": "profile",
                    "customer_id": "c",
                    "ts": "2025-12-31T10:00:00Z",
                    "timezone": "Mars/Olympus",
                }
            ),
            InvalidReason.INVALID_FIELD,
        ),
        (
            orjson.dumps(
                {
                    "event_id": "p",
                    "type": "profile",
                    "customer_id": "c",
                    "ts": "2025-12-31T10:00:00Z",
                    "consent": {"pigeon": True},
                }
            ),
            InvalidReason.INVALID_FIELD,
        ),
    ],
)
def test_bad_input_gets_a_reason_and_a_message(raw: bytes, reason: InvalidReason) -> None:
    result = parse(None, raw=raw)
    assert isinstance(result, InvalidEvent)
    assert result.reason == reason, result.message
    assert result.message


def test_oversized_payload_is_refused_before_parsing() -> None:
    result = parse(None, raw=orjson.dumps(tx(pad="x" * 1000)), max_bytes=512)
    assert isinstance(result, InvalidEvent) and result.reason == InvalidReason.PAYLOAD_TOO_LARGE


def test_invalid_events_keep_the_ids_they_had() -> None:
    result = parse(tx(amount=-3))
    assert isinstance(result, InvalidEvent)
    assert (result.event_id, result.customer_id) == ("e1", "c1")
    assert "amount" in result.message
