"""The event contract: what core banking and the mobile app publish to Vigil.

Field names are public: producers outside this project write them. One pydantic model per event
type, discriminated by ``type``; extra fields are kept (``model_extra``) for the audit record and
otherwise ignored. ``parse_event`` is the only way raw bytes become an event: it returns the event,
or an ``InvalidEvent`` with a machine-readable reason code and a message for a person.

>>> ev = parse_event(b'{"event_id":"e1","type":"app","customer_id":"c1",'
...                  b'"ts":"2026-01-05T09:30:00+08:00","session_id":"s1","name":"login"}',
...                  now=1767600000.0, max_bytes=65536, max_future_seconds=86400)
>>> ev.type, ev.customer_id, ev.epoch
('app', 'c1', 1767576600.0)
>>> bad = parse_event(b'{"type":"app"}', now=0.0, max_bytes=65536, max_future_seconds=86400)
>>> bad.reason.value
'missing_field'
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
)

Id = Annotated[str, Field(min_length=1, max_length=128)]


class _EventBase(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, str_strip_whitespace=True)

    event_id: Id
    customer_id: Id
    ts: AwareDatetime

    @cached_property
    def epoch(self) -> float:
        """Event time in seconds since the Unix epoch (UTC); computed once (read several times
        per event on the hot path)."""
        return self.ts.timestamp()

    @property
    def extra(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


TransactionKind = Literal[
    "salary",
    "transfer_in",
    "transfer_out",
    "purchase",
    "withdrawal",
    "deposit",
    "wealth_buy",
    "wealth_redeem",
    "fee",
    "interest",
    "other",
]


class TransactionEvent(_EventBase):
    """A posting on a customer's account, from core banking."""

    type: Literal["transaction"]
    account_id: Id
    amount: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    currency: Annotated[str, Field(min_length=3, max_length=3)]
    direction: Literal["debit", "credit"]
    kind: TransactionKind
    channel: Annotated[str, Field(min_length=1, max_length=64)]
    counterparty_bank: Annotated[str, Field(max_length=128)] | None = None
    balance_after: Annotated[float, Field(allow_inf_nan=False)] | None = None


class AppEvent(_EventBase):
    """A step of a customer's journey in the mobile app."""

    type: Literal["app"]
    session_id: Id
    name: Annotated[str, Field(min_length=1, max_length=64)]
    page: Annotated[str, Field(max_length=256)] | None = None
    properties: dict[str, Any] | None = None


class OutcomeEvent(_EventBase):
    """What became of a customer or a contact: the (late) ground truth."""

    type: Literal["outcome"]
    label: Annotated[str, Field(min_length=1, max_length=64)]
    decision_id: Annotated[str, Field(max_length=128)] | None = None


CHANNELS: tuple[str, ...] = (
    "sms",
    "push",
    "in_app",
    "email",
    "robot_call",
    "rm_call",
    "rm_handoff",
)


class ProfileEvent(_EventBase):
    """A change of a customer's profile or consent; every field but the envelope is optional."""

    type: Literal["profile"]
    segment: Annotated[str, Field(max_length=64)] | None = None
    aum: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    consent: dict[str, bool] | None = None
    timezone: Annotated[str, Field(max_length=64)] | None = None
    rm_id: Annotated[str, Field(max_length=64)] | None = None
    opted_out: bool | None = None

    @field_validator("consent")
    @classmethod
    def _known_channels(cls, value: dict[str, bool] | None) -> dict[str, bool] | None:
        if value is not None:
            unknown = sorted(set(value) - set(CHANNELS))
            if unknown:
                raise ValueError(f"unknown consent channel(s) {unknown}; known: {list(CHANNELS)}")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        if value is not None:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value


Event = Annotated[
    TransactionEvent | AppEvent | OutcomeEvent | ProfileEvent, Field(discriminator="type")
]
EVENT_TYPES: tuple[str, ...] = ("transaction", "app", "outcome", "profile")
_EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


class InvalidReason(StrEnum):
    """Why a record went to the dead-letter topic. Values are stable: alerting keys on them."""

    PAYLOAD_TOO_LARGE = "payload_too_large"
    NOT_JSON = "not_json"
    NOT_AN_OBJECT = "not_an_object"
    UNKNOWN_TYPE = "unknown_type"
    MISSING_FIELD = "missing_field"
    INVALID_FIELD = "invalid_field"
    TIMESTAMP_WITHOUT_OFFSET = "timestamp_without_offset"
    TIMESTAMP_IN_FUTURE = "timestamp_in_future"
    INVALID_AMOUNT = "invalid_amount"


@dataclass(frozen=True, slots=True)
class InvalidEvent:
    """An input record that is not a valid event, and why."""

    reason: InvalidReason
    message: str
    event_id: str | None = None
    customer_id: str | None = None


def parse_event(
    raw: bytes, *, now: float, max_bytes: int, max_future_seconds: float
) -> TransactionEvent | AppEvent | OutcomeEvent | ProfileEvent | InvalidEvent:
    """Decode and validate one record; never raises for bad input."""
    if len(raw) > max_bytes:
        return InvalidEvent(
            InvalidReason.PAYLOAD_TOO_LARGE,
            f"payload is {len(raw)} bytes; the limit is {max_bytes}",
        )
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # orjson refuses numbers out of double range and NaN/Infinity literals, which many
        # producers write; the standard parser reads them so the field check can name them.
        # Decoded as UTF-8 first: given bytes, json.loads guesses UTF-16/32 from NUL bytes and
        # would read b"\x001" as the number 1.
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError):
            return InvalidEvent(InvalidReason.NOT_JSON, f"not valid JSON: {exc}")
    if not isinstance(doc, dict):
        return InvalidEvent(
            InvalidReason.NOT_AN_OBJECT, f"expected a JSON object, got {type(doc).__name__}"
        )
    event_id = doc.get("event_id") if isinstance(doc.get("event_id"), str) else None
    customer_id = doc.get("customer_id") if isinstance(doc.get("customer_id"), str) else None
    kind = doc.get("type")
    if kind not in EVENT_TYPES:
        return InvalidEvent(
            InvalidReason.UNKNOWN_TYPE,
            f"unknown event type {kind!r}; expected one of {list(EVENT_TYPES)}",
            event_id,
            customer_id,
        )
    try:
        event = _EVENT_ADAPTER.validate_python(doc)
    except ValidationError as exc:
        reason, message = _explain(exc)
        return InvalidEvent(reason, message, event_id, customer_id)
    if event.epoch > now + max_future_seconds:
        return InvalidEvent(
            InvalidReason.TIMESTAMP_IN_FUTURE,
            f"ts {event.ts.isoformat()} is more than {max_future_seconds:.0f}s ahead of now",
            event_id,
            customer_id,
        )
    return event


def _explain(exc: ValidationError) -> tuple[InvalidReason, str]:
    """The first validation error as a reason code and a message naming the field."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = [str(p) for p in first["loc"]]
    # The discriminated union puts the type tag first in the location: drop it.
    if loc and loc[0] in EVENT_TYPES:
        loc = loc[1:]
    field = ".".join(loc) or "(event)"
    kind = first["type"]
    if kind == "missing":
        reason = InvalidReason.MISSING_FIELD
    elif kind == "timezone_aware":
        reason = InvalidReason.TIMESTAMP_WITHOUT_OFFSET
    elif field == "amount":
        reason = InvalidReason.INVALID_AMOUNT
    else:
        reason = InvalidReason.INVALID_FIELD
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return reason, f"{field}: {first['msg']}{more}"


def event_to_dict(
    event: TransactionEvent | AppEvent | OutcomeEvent | ProfileEvent,
) -> dict[str, Any]:
    """The event as plain JSON-ready data, extra fields included (for the audit record)."""
    return event.model_dump(mode="json", exclude_none=True)


def iso(epoch: float) -> str:
    """An epoch as ISO 8601 in UTC with milliseconds, the format of every timestamp Vigil writes."""
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="milliseconds")


AnyEvent = TransactionEvent | AppEvent | OutcomeEvent | ProfileEvent
