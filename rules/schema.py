"""The rule file format, validated with pydantic (unknown keys are refused).

A rule file is YAML: a schema ``version`` and a ``rules:`` list; see ``rules/default/*.yaml`` for
the shipped set and ``docs/rules.md`` for the format.

>>> spec = RuleSpec.model_validate({
...     "id": "aum_drop", "description": "AUM fell", "alert_type": "asset_drop",
...     "severity": "high", "when": "aum_drop_from_peak_30d_pct >= 30",
...     "reason": "AUM fell {aum_drop_from_peak_30d_pct:.0f}%", "cooldown": "7d",
...     "suppress": ["opted_out"]})
>>> spec.cooldown, spec.scope.tiers, spec.suppress[0].when, spec.enabled
(604800, ('long_tail', 'basic', 'affluent'), 'profile_opted_out', True)
>>> RuleSpec.model_validate({**spec.model_dump(), "whenn": "x"})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for RuleSpec
whenn
  Extra inputs are not permitted ...
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ALERT_TYPES = ("churn_risk", "asset_drop", "engagement_drop", "service_risk")
Severity = Literal["low", "medium", "high", "critical"]
Tier = Literal["long_tail", "basic", "affluent"]
TIERS: tuple[Tier, ...] = ("long_tail", "basic", "affluent")
SCHEMA_VERSION = 1
MAX_COOLDOWN = 365 * 86400
_DURATION = re.compile(r"^(\d{1,9})\s*([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
Ident = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Condition = Annotated[str, Field(min_length=1, max_length=2000)]

# Named suppressions a rule may list by name instead of writing the condition.
BUILTIN_SUPPRESSIONS: dict[str, str] = {
    "opted_out": "profile_opted_out",
    "recent_complaint": "days_since_last_complaint < 14",
}


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
    """Who a rule applies to: AUM tiers, and profile segments (empty: every segment)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tiers: Annotated[tuple[Tier, ...], Field(min_length=1)] = TIERS
    segments: tuple[Annotated[str, Field(min_length=1, max_length=64)], ...] = ()


class Suppression(BaseModel):
    """When ``when`` holds, the rule does not alert; the decision records ``reason``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    when: Condition
    reason: Ident


class RuleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Ident
    description: Annotated[str, Field(min_length=1, max_length=500)]
    alert_type: str
    severity: Severity
    scope: Scope = Scope()
    when: Condition
    priority: Annotated[int, Field(ge=0, le=1000)] = 100
    cooldown: Annotated[int, Field(ge=0, le=MAX_COOLDOWN)] = 7 * 86400
    suppress: tuple[Suppression, ...] = ()
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    enabled: bool = True
    owner: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    tags: tuple[Ident, ...] = ()

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

    @field_validator("suppress", mode="before")
    @classmethod
    def _named(cls, value: object) -> object:
        """A suppression may be a built-in name (``opted_out``) instead of ``{when, reason}``."""
        if not isinstance(value, (list, tuple)):
            return value
        out: list[object] = []
        for item in value:
            if isinstance(item, str):
                if item not in BUILTIN_SUPPRESSIONS:
                    raise ValueError(
                        f"unknown suppression {item!r}; built in: {sorted(BUILTIN_SUPPRESSIONS)}"
                        " (or write {when: ..., reason: ...})"
                    )
                out.append({"when": BUILTIN_SUPPRESSIONS[item], "reason": item})
            else:
                out.append(item)
        return out


class RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    rules: Annotated[tuple[RuleSpec, ...], Field(max_length=1000)]
