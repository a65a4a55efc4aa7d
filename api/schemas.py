"""The API's request and response models, named by direction (``...In`` / ``...Out``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr

FilterValue = Annotated[str, Field(min_length=1, max_length=128)]
FilterValues = Annotated[list[FilterValue], Field(default_factory=list, max_length=50)]


class ErrorOut(BaseModel):
    """Every error: ``detail`` says what is wrong (a list of field errors for 422)."""

    detail: str | list[Any] | dict[str, Any]


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for the error codes a route can answer."""
    text = {
        400: "Bad request (the message says what is wrong)",
        401: "Missing, unknown or expired credentials",
        403: "The API key lacks the scope this route needs",
        404: "Not found",
        422: "Invalid parameters or body (each wrong field is listed)",
        503: "Redis or Kafka is unavailable",
    }
    return {code: {"model": ErrorOut, "description": text[code]} for code in codes}


class AlertOut(BaseModel):
    """An alert as the worker wrote it on the alerts topic."""

    model_config = ConfigDict(extra="allow")

    alert_id: str
    decision_id: str
    event_id: str
    customer_id: str
    type: str
    severity: str
    rule_id: str
    ruleset_version: str
    reason: str
    conditions: dict[str, Any] = Field(default_factory=dict)
    scores: dict[str, float | None] = Field(default_factory=dict)
    tier: str
    rm_id: str | None = None
    event_time: str
    decision_time: str


class AlertEventOut(BaseModel):
    """An alert with its position in the alert stream (the SSE ``id``)."""

    id: str = Field(description="Alert stream id; resume after it with last_event_id")
    alert: AlertOut


class AlertPageOut(BaseModel):
    alerts: list[AlertEventOut]
    position: str = Field(description="Pass as `after` to read on from here")
    oldest_retained: str | None
    newest: str | None


class FiltersIn(BaseModel):
    """Alert filters: within a field any listed value matches; fields combine with AND. An
    empty list accepts everything."""

    model_config = ConfigDict(extra="forbid")

    type: FilterValues
    severity: FilterValues
    tier: FilterValues
    rm_id: FilterValues


class FiltersOut(BaseModel):
    type: list[str]
    severity: list[str]
    tier: list[str]
    rm_id: list[str]


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: HttpUrl = Field(description="http(s) URL that receives a POST per matching alert")
    filters: FiltersIn = Field(default_factory=lambda: FiltersIn.model_validate({}))
    secret: SecretStr = Field(
        min_length=16,
        max_length=256,
        description="Signs every delivery (HMAC-SHA256); never shown again",
    )
    description: str | None = Field(default=None, max_length=200)


class DeliveryOut(BaseModel):
    delivery_id: str
    alert_id: str | None
    event_id: str = Field(description="The alert's stream id")
    attempt: int
    result: Literal["delivered", "failed", "dead_lettered"]
    status_code: int | None
    error: str | None
    at: str
    duration_seconds: float


class DeadLetterOut(BaseModel):
    delivery_id: str
    alert_id: str | None
    event_id: str
    attempts: int
    last_error: str | None
    last_status_code: int | None
    dead_lettered_at: str
    alert: dict[str, Any] | None


class DeliveryStatsOut(BaseModel):
    delivered: int
    failed_attempts: int
    dead_lettered: int
    last_success_at: str | None
    last_failure_at: str | None
    last_error: str | None


class SubscriptionOut(BaseModel):
    id: str
    url: str
    owner: str = Field(description="Name of the API key that created it")
    description: str | None
    filters: FiltersOut
    created_at: str
    status: Literal["active", "failing"] = Field(
        description="failing: the last attempt failed (retries go on)"
    )
    stats: DeliveryStatsOut
    recent_deliveries: list[DeliveryOut]
    dead_letters: list[DeadLetterOut]


class SubscriptionListOut(BaseModel):
    subscriptions: list[SubscriptionOut]


class ScoreOut(BaseModel):
    score: float | None
    version: str | None = None
    cold: bool | None = None


class ContactOut(BaseModel):
    at: str
    channel: str
    decision_id: str
    action_id: str


class CooldownOut(BaseModel):
    last_fired_at: str
    decision_id: str


class ChannelCapOut(BaseModel):
    used: int
    max: int
    window_seconds: int


class ContactPolicyOut(BaseModel):
    as_of: str
    contacts_7d: int
    max_contacts_7d: int
    remaining_7d: int
    by_channel_7d: dict[str, int]
    max_per_channel_7d: int
    channels_at_cap: list[str]
    channel_caps: dict[str, ChannelCapOut] = Field(
        description="Per channel: contacts within the channel's cap window, and the cap"
    )
    last_contact_at: str | None
    days_since_last_complaint: float | None
    complaint_suppressed: bool
    quiet_hours: dict[str, int]


class DecisionSummaryOut(BaseModel):
    decision_id: str
    event_id: str
    event_type: str
    event_time: str
    decision_time: str
    alerts: list[str]
    actions: list[str]


class CustomerOut(BaseModel):
    """The customer 360 view: state now, scores of the latest decision, recent history."""

    customer_id: str
    as_of: str = Field(description="Event time of the customer's latest event")
    tier: str | None
    features: dict[str, Any]
    profile: dict[str, str]
    scores: dict[str, ScoreOut]
    scores_decision_id: str | None = Field(description="The decision the scores come from")
    cooldowns: dict[str, CooldownOut]
    contacts: list[ContactOut]
    contact_policy: ContactPolicyOut
    recent_alerts: list[AlertOut]
    recent_decisions: list[DecisionSummaryOut]


class DecisionOut(BaseModel):
    decision_id: str
    customer_id: str
    event_id: str
    event_type: str
    event_time: str
    decision_time: str
    explanation: list[str] = Field(description="The decision in plain sentences")
    alerts: list[AlertOut]
    record: dict[str, Any] = Field(description="The full audit record the worker wrote")


class RuleSetOut(BaseModel):
    version: str
    source: str
    last_reload_error: str | None
    rules: list[dict[str, Any]]


class RuleValidationOut(BaseModel):
    valid: bool
    rules: int
    version: str


class RuleReloadOut(BaseModel):
    reloaded: bool
    version: str
    error: str | None


class LiveOut(BaseModel):
    status: Literal["ok"]


class ReadyOut(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, bool]
    details: dict[str, Any]
    ruleset_version: str
    models: list[str]


class StreamTokenOut(BaseModel):
    token: str
    expires_at: str
    expires_in: int = Field(description="Seconds")
