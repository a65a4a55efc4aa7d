"""Evaluating a rule set against one decision's inputs. Pure: plain data in, plain data out.

>>> from rules.loader import load_rules
>>> from pathlib import Path
>>> ruleset = load_rules(Path("rules/default"), ["churn_risk", "asset_drop"])
>>> env = {"aum_drop_from_peak_30d_pct": 35.0, "aum_peak_30d": 200000.0, "aum": 130000.0,
...        "tier": "basic"}
>>> outcome = ruleset.evaluate(env, tier="basic", segment=None, fired={}, ts=0.0, decision_id="d1")
>>> [hit.rule_id for hit in outcome.hits]
['aum_drop_30pct_from_peak']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.types import Fired
from rules.expressions import Expression, ExpressionError
from rules.schema import RuleSpec
from rules.templates import Template


@dataclass(frozen=True, slots=True)
class Suppressor:
    when: Expression
    reason: str


@dataclass(frozen=True, slots=True)
class CompiledRule:
    spec: RuleSpec
    when: Expression
    suppressors: tuple[Suppressor, ...]
    reason: Template

    @property
    def id(self) -> str:
        return self.spec.id


@dataclass(frozen=True, slots=True)
class RuleHit:
    """A rule whose condition held and that was not suppressed: it raises an alert."""

    rule_id: str
    alert_type: str
    severity: str
    priority: int
    reason: str
    values: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RuleSuppressed:
    rule_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    hits: tuple[RuleHit, ...] = ()
    suppressed: tuple[RuleSuppressed, ...] = ()
    errors: tuple[RuleSuppressed, ...] = ()


@dataclass(frozen=True)
class RuleSet:
    """Rules ordered by priority (highest first), then id; ``version`` is the content hash."""

    rules: tuple[CompiledRule, ...]
    version: str
    source: str = ""
    _ordered: tuple[CompiledRule, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.rules, key=lambda r: (-r.spec.priority, r.id)))
        object.__setattr__(self, "_ordered", ordered)

    def evaluate(
        self,
        env: Mapping[str, Any],
        *,
        tier: str,
        segment: str | None,
        fired: Mapping[str, Fired],
        ts: float,
        decision_id: str,
    ) -> RuleOutcome:
        hits: list[RuleHit] = []
        suppressed: list[RuleSuppressed] = []
        errors: list[RuleSuppressed] = []
        for rule in self._ordered:
            spec = rule.spec
            if tier not in spec.scope.tiers:
                continue
            if spec.scope.segments and segment not in spec.scope.segments:
                continue
            try:
                if not rule.when.evaluate(env):
                    continue
                why = next((s.reason for s in rule.suppressors if s.when.evaluate(env)), None)
            except (ExpressionError, TypeError, ValueError) as exc:
                errors.append(RuleSuppressed(rule.id, f"evaluation_error: {exc}"))
                continue
            last = fired.get(rule.id)
            if (
                why is None
                and last is not None
                and last.decision_id != decision_id
                and abs(ts - last.ts) < spec.cooldown
            ):
                why = "cooldown"
            if why is not None:
                suppressed.append(RuleSuppressed(rule.id, why))
                continue
            values = {name: env.get(name) for name in sorted(rule.when.names)}
            hits.append(
                RuleHit(
                    rule_id=rule.id,
                    alert_type=spec.alert_type,
                    severity=spec.severity,
                    priority=spec.priority,
                    reason=rule.reason.render(env),
                    values=values,
                )
            )
        return RuleOutcome(tuple(hits), tuple(suppressed), tuple(errors))
