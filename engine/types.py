"""Frozen internal values passed between the pipeline's stages. Plain data, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from features.definitions import Features, Op

ApplyStatus = Literal["applied", "duplicate", "late", "too_late"]


@dataclass(frozen=True, slots=True)
class StateUpdate:
    """One event's change to a customer's state, as the feature store receives it."""

    customer_id: str
    event_id: str
    ts: float
    ops: tuple[Op, ...]


@dataclass(frozen=True, slots=True)
class Contact:
    """A contact already made (or decided) with a customer: the contact policy counts these."""

    ts: float
    channel: str
    decision_id: str
    action_id: str


@dataclass(frozen=True, slots=True)
class Fired:
    """The latest alert of one rule for one customer: cooldowns are measured from it."""

    ts: float
    decision_id: str


@dataclass(frozen=True, slots=True)
class CustomerState:
    """A customer's state right after an event was applied (or recognised as a duplicate).

    ``status``: ``applied`` (first time seen), ``duplicate`` (event_id seen before: nothing
    changed), ``late`` (older than the allowed lateness: windows unchanged), ``too_late`` (older
    than the deduplication horizon: ignored for state; recorded on the current state but it
    raises no alert and no action, see ``engine.decide``).
    """

    customer_id: str
    status: ApplyStatus
    now: float
    features: Features
    profile: Mapping[str, str]
    fired: Mapping[str, Fired]
    contacts: tuple[Contact, ...]


@dataclass(frozen=True, slots=True)
class Effects:
    """What a decision changes in the state besides features: alert cooldowns and contacts."""

    customer_id: str
    fired: Mapping[str, Fired] = field(default_factory=dict)
    contacts: tuple[Contact, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.fired or self.contacts)


@dataclass(frozen=True, slots=True)
class ModelScore:
    name: str
    version: str
    score: float
    cold: bool


@dataclass(frozen=True, slots=True)
class AlertOut:
    """An alert raised by a rule; serialised on the ``alerts`` topic."""

    alert_id: str
    decision_id: str
    event_id: str
    customer_id: str
    type: str
    severity: str
    rule_id: str
    ruleset_version: str
    reason: str
    conditions: Mapping[str, Any]
    scores: Mapping[str, float]
    tier: str
    rm_id: str | None
    event_time: str
    decision_time: str


@dataclass(frozen=True, slots=True)
class ActionOut:
    """A chosen next-best action; serialised on the ``actions`` topic, one message each."""

    action_msg_id: str
    idempotency_key: str
    decision_id: str
    event_id: str
    customer_id: str
    action_id: str
    channel: str
    goal: str
    template_id: str
    priority: float
    answers_alerts: tuple[str, ...]
    lead_grade: str
    event_time: str
    decision_time: str
    catalog_version: str
