"""Evaluating a rule set against one decision's inputs. Pure: plain data in, plain data out.

Rules run in priority order (highest first, then id). A rule applies when the customer's tier
and segment are in its scope and it is enabled; it *hits* when its condition holds, no
suppression holds and it is out of cooldown (at most one alert per customer per rule per
cooldown, measured in event time from the last alert, ``fired``). A condition that fails to
evaluate is recorded as an error of that rule; it never stops the other rules.

>>> from rules.loader import load_rules
>>> from pathlib import Path
>>> ruleset = load_rules(Path("rules/default"), ["churn_risk", "asset_drop"])
>>> env = {"aum_drop_from_peak_30d_pct": 35.0, "aum_peak_30d": 200000.0, "aum": 130000.0,
...        "tier": "basic"}
>>> outcome = ruleset.evaluate(env, tier="basic", segment=None, fired={}, ts=0.0, decision_id="d1")
>>> [hit.rule_id for hit in outcome.hits]
['aum_drop_30pct_from_peak']
>>> outcome.hits[0].reason
'AUM 130,000 is 35% below its 30-day peak of 200,000'
>>> outcome.hits[0].held[0]
('aum_drop_from_peak_30d_pct >= 30', {'aum_drop_from_peak_30d_pct': 35.0})
>>> later = ruleset.evaluate(env, tier="basic", segment=None, ts=3600.0, decision_id="d2",
...     fired={"aum_drop_30pct_from_peak": Fired(0.0, "d1")})
>>> later.hits, later.suppressed
((), (RuleSuppressed(rule_id='aum_drop_30pct_from_peak', reason='cooldown'),))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.types import Fired
from rules.expressions import Expression, Fn
from rules.schema import TIERS, RuleSpec
from rules.templates import Template

MAX_CACHED_SCOPES = 1024


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
    file: str = ""
    line: int | None = None

    @property
    def id(self) -> str:
        return self.spec.id


def _candidate(
    rule: CompiledRule,
) -> tuple[str | None, Callable[[Any], Any] | None, Fn | None, CompiledRule]:
    guard = rule.when.guard
    if guard is None:
        return None, None, rule.when.rest, rule
    return guard[0], guard[1], rule.when.rest, rule


@dataclass(frozen=True, slots=True)
class RuleHit:
    """A rule whose condition held and that was not suppressed: it raises an alert.

    ``values`` holds every name the condition reads; ``held`` the top-level clauses of the
    condition that held, each with the values of its names.
    """

    rule_id: str
    alert_type: str
    severity: str
    priority: int
    reason: str
    values: Mapping[str, Any]
    condition: str = ""
    held: tuple[tuple[str, Mapping[str, Any]], ...] = ()


@dataclass(frozen=True, slots=True)
class RuleSuppressed:
    rule_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    hits: tuple[RuleHit, ...] = ()
    suppressed: tuple[RuleSuppressed, ...] = ()
    errors: tuple[RuleSuppressed, ...] = ()


_NOTHING = RuleOutcome()
# (guard name or None, guard test, the rest of the condition or None, the rule)
_Candidates = tuple[tuple[str | None, Callable[[Any], Any] | None, Fn | None, CompiledRule], ...]


@dataclass(frozen=True)
class RuleSet:
    """Rules ordered by priority (highest first), then id; ``version`` is the content hash.

    ``rules`` holds every loaded rule, disabled ones included (they are validated, listed and
    versioned, but never evaluated).
    """

    rules: tuple[CompiledRule, ...]
    version: str
    source: str = ""
    _ordered: tuple[CompiledRule, ...] = field(init=False, repr=False, compare=False)
    _by_tier: dict[str, _Candidates] = field(init=False, repr=False, compare=False)
    _by_scope: dict[tuple[str, str | None], _Candidates] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.rules, key=lambda r: (-r.spec.priority, r.id)))
        object.__setattr__(self, "_ordered", ordered)
        by_tier = {
            tier: tuple(
                _candidate(r) for r in ordered if r.spec.enabled and tier in r.spec.scope.tiers
            )
            for tier in TIERS
        }
        object.__setattr__(self, "_by_tier", by_tier)
        object.__setattr__(self, "_by_scope", {})

    @property
    def ordered(self) -> tuple[CompiledRule, ...]:
        return self._ordered

    def get(self, rule_id: str) -> CompiledRule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    def candidates(self, tier: str, segment: str | None) -> _Candidates:
        """The enabled rules in scope for a tier and segment, in evaluation order (cached)."""
        key = (tier, segment)
        found = self._by_scope.get(key)
        if found is not None:
            return found
        found = tuple(
            c
            for c in self._by_tier.get(tier, ())
            if not c[3].spec.scope.segments or segment in c[3].spec.scope.segments
        )
        if len(self._by_scope) < MAX_CACHED_SCOPES:
            self._by_scope[key] = found
        return found

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
        held: list[CompiledRule] | None = None
        errors: list[RuleSuppressed] | None = None
        # The hot loop (see bench/bench_rules.py): most rules fail their guard, a cheap
        # `name <op> constant` test run without a Python frame; the rest only when it passes.
        for name, test, rest, rule in self.candidates(tier, segment):
            if name is not None:
                try:
                    if not test(env[name]):  # type: ignore[misc]
                        continue
                except (KeyError, TypeError):  # missing: the comparison is false
                    continue
            if rest is not None:
                try:
                    if not rest(env):
                        continue
                except Exception as exc:  # a rule never breaks the decision: record, go on
                    errors = errors or []
                    errors.append(RuleSuppressed(rule.id, f"evaluation_error: {exc}"[:300]))
                    continue
            held = held or []
            held.append(rule)
        if held is None and errors is None:
            return _NOTHING
        return self._outcome(held or [], errors or [], env, fired, ts, decision_id)

    @staticmethod
    def _outcome(
        held: list[CompiledRule],
        errors: list[RuleSuppressed],
        env: Mapping[str, Any],
        fired: Mapping[str, Fired],
        ts: float,
        decision_id: str,
    ) -> RuleOutcome:
        """The rare path: suppressions, cooldowns and the explanation of each hit."""
        hits: list[RuleHit] = []
        suppressed: list[RuleSuppressed] = []
        for rule in held:
            spec = rule.spec
            try:
                why = next((s.reason for s in rule.suppressors if s.when.fn(env)), None)
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
                hit = RuleHit(
                    rule_id=rule.id,
                    alert_type=spec.alert_type,
                    severity=spec.severity,
                    priority=spec.priority,
                    reason=rule.reason.render(env),
                    values={name: env.get(name) for name in sorted(rule.when.names)},
                    condition=rule.when.source,
                    held=tuple(rule.when.held(env)),
                )
            except Exception as exc:
                errors.append(RuleSuppressed(rule.id, f"evaluation_error: {exc}"[:300]))
                continue
            hits.append(hit)
        return RuleOutcome(tuple(hits), tuple(suppressed), tuple(errors))
