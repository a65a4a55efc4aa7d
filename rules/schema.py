"""The rule file format, validated with pydantic (unknown keys are refused).

A rule file is YAML with a ``rules:`` list; see ``rules/default/*.yaml`` for the shipped set.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ALERT_TYPES = ("churn_risk", "asset_drop", "engagement_drop", "service_risk")
Severity = Literal["low", "medium", "high", "critical"]
Tier = Literal["long_tail", "basic", "affluent"]
TIERS: tuple[Tier, ...] = ("long_tail", "basic", "affluent")
_DURATION = re.compile(r"^(\d+)\s*([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str | int) -> int:
    """``"7d"``, ``"12h"``, ``"30m"``, ``"45s"`` or plain seconds, as seconds.

    >>> parse_duration("7d"), parse_duration(90)
    (604800, 90)
    """
    if isinstance(text, int):
        return text
    match = _DURATION.match(str(text).strip())
    if not match:
        raise ValueError(f"duration {text!r} is not like '7d', '12h', '30m' or '45s'")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


class Scope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tiers: tuple[Tier, ...] = TIERS
    segments: tuple[str, ...] = ()  # empty: every segment


class Suppression(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    when: Annotated[str, Field(min_length=1, max_length=2000)]
    reason: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class RuleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    description: Annotated[str, Field(min_length=1, max_length=500)]
    alert_type: str
    severity: Severity
    scope: Scope = Scope()
    when: Annotated[str, Field(min_length=1, max_length=2000)]
    priority: Annotated[int, Field(ge=0, le=1000)] = 100
    cooldown: int = 7 * 86400
    suppress: tuple[Suppression, ...] = ()
    reason: Annotated[str, Field(min_length=1, max_length=500)]

    @field_validator("alert_type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in ALERT_TYPES:
            raise ValueError(f"unknown alert type {value!r}; known: {list(ALERT_TYPES)}")
        return value

    @field_validator("cooldown", mode="before")
    @classmethod
    def _duration(cls, value: object) -> int:
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise ValueError("cooldown must be a duration like '7d'")
        return parse_duration(value)


class RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: tuple[RuleSpec, ...]
