"""Rule tests as data: YAML cases beside the rules, run by ``vigil rules test DIR`` and pytest.

A test file (``churn.test.yaml`` beside ``churn.yaml``) holds ``cases``. Each case gives the
inputs of one decision and what it expects of one rule, or of the whole set::

    version: 1
    cases:
      - name: a basic customer 35% below the peak
        given:
          features: {aum: 130000, aum_peak_30d: 200000, aum_drop_from_peak_30d_pct: 35}
          scores: {churn_risk: 0.2}          # score_<model>; models not given score 0
          cold: [asset_drop]                 # cold_<model> true for these
          event: {type: transaction, kind: transfer_out, amount: 5000}
          profile: {segment: family, opted_out: false, consent: {sms: false}}
          fired: {aum_drop_30pct_from_peak: 2d}   # that rule alerted 2 days before this event
        rule: aum_drop_30pct_from_peak
        expect: fire                         # fire | silent | suppressed
        reason: "AUM 130,000 is 35% below its 30-day peak of 200,000"   # exact, optional
        reason_contains: "35%"               # or a part of it
        suppressed_by: cooldown              # with expect: suppressed
        fires_exactly: [aum_drop_30pct_from_peak]   # every rule that fires, in any order

Features not given take the value they have for a customer with no history, except ``tier``,
which follows ``aum`` unless given. Unknown features, models, event or profile fields and
rules are errors (a typo never makes a case pass). Any rule failing to evaluate fails the case.

>>> from pathlib import Path
>>> report = run_folder(Path("rules/default"), ["churn_risk", "asset_drop"])
>>> report.ok, report.total > 10
(True, True)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from engine.errors import RuleError
from engine.events import CHANNELS
from engine.types import Fired
from features.definitions import RawState, derive, tier_of
from rules.evaluator import RuleOutcome, RuleSet
from rules.loader import case_files, first_error, line_of, load_rules, parse_yaml, read_files
from rules.names import EVENT_FIELDS, event_env, feature_types, profile_env
from rules.schema import parse_duration

# Every case is decided at this event time (2026-01-01T00:00:00Z); ``fired`` is relative to it.
CASE_TS = 1_767_225_600.0
Scalar = float | int | str | bool | None


class Given(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    features: dict[str, float | int | str] = {}
    scores: dict[str, Annotated[float, Field(ge=0.0, le=1.0)]] = {}
    cold: tuple[str, ...] = ()
    event: dict[str, Scalar] = {}
    profile: dict[str, Scalar | dict[str, bool]] = {}
    fired: dict[str, int] = {}

    @field_validator("fired", mode="before")
    @classmethod
    def _durations(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: parse_duration(v) if isinstance(v, str) else v for k, v in value.items()}
        return value


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=200)]
    given: Given = Given()
    rule: str | None = None
    expect: Literal["fire", "silent", "suppressed"] | None = None
    reason: str | None = None
    reason_contains: str | None = None
    suppressed_by: str | None = None
    fires_exactly: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Case:
        if (self.rule is None) != (self.expect is None):
            raise ValueError("'rule' and 'expect' go together")
        if self.fires_exactly is None and self.rule is None:
            raise ValueError("a case needs 'rule' and 'expect', or 'fires_exactly'")
        if (self.reason or self.reason_contains) and self.expect != "fire":
            raise ValueError("'reason' and 'reason_contains' need 'expect: fire'")
        if self.suppressed_by and self.expect != "suppressed":
            raise ValueError("'suppressed_by' needs 'expect: suppressed'")
        return self


class CaseFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    cases: Annotated[tuple[Case, ...], Field(min_length=1, max_length=2000)]


@dataclass(frozen=True, slots=True)
class LoadedCase:
    file: str
    line: int | None
    case: Case


@dataclass(frozen=True, slots=True)
class CaseResult:
    file: str
    line: int | None
    name: str
    ok: bool
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class TestReport:
    """Every case's result, and the rules no case names (``rule`` or ``fires_exactly``)."""

    results: tuple[CaseResult, ...]
    untested: tuple[str, ...] = ()
    version: str = ""
    files: tuple[str, ...] = field(default=())

    __test__ = False  # not a pytest class

    @property
    def total(self) -> int:
        return len(self.results)

    @property
    def failed(self) -> tuple[CaseResult, ...]:
        return tuple(r for r in self.results if not r.ok)

    @property
    def ok(self) -> bool:
        return bool(self.results) and not self.failed


def load_cases(
    file: str, content: bytes, ruleset: RuleSet, model_names: Iterable[str]
) -> list[LoadedCase]:
    """The cases of one test file, checked against the rule set, or ``RuleError``."""
    doc, root = parse_yaml(file, content)
    if doc is None:
        raise RuleError(file, None, "is empty: expected 'version: 1' and a 'cases:' list")
    try:
        parsed = CaseFile.model_validate(doc)
    except ValidationError as exc:
        first = first_error(exc)
        loc = tuple(first["loc"])
        reason = first["msg"].removeprefix("Value error, ")
        field_loc = loc
        if first["type"] == "extra_forbidden":
            reason = f"unknown field {str(loc[-1])!r}"
            field_loc = loc[:-1]
        name = _case_name(doc, loc)
        if name is not None:  # inside a case: name it, and the field within it
            field_loc = field_loc[2:]
        where = ".".join(str(p) for p in field_loc)
        text = f"{where}: {reason}" if where else reason
        if name is not None:
            text = f"case {name!r}: {text}"
        raise RuleError(file, None, text, line_of(root, loc)) from None
    models = tuple(model_names)
    known_features = feature_types()
    out = []
    for index, case in enumerate(parsed.cases):
        at = ("cases", index)
        problem = _check_case(case, ruleset, models, known_features)
        if problem is not None:
            part, reason = problem
            text = f"case {case.name!r}: {reason}"
            raise RuleError(file, None, text, line_of(root, at + part))
        out.append(LoadedCase(file, line_of(root, at), case))
    return out


def _case_name(doc: Any, loc: Sequence[Any]) -> str | None:
    try:
        return str(doc["cases"][loc[1]]["name"])
    except (TypeError, KeyError, IndexError):
        return None


def _check_case(
    case: Case, ruleset: RuleSet, models: Sequence[str], features: Mapping[str, str]
) -> tuple[tuple[str, ...], str] | None:
    ids = {r.id for r in ruleset.rules}
    for rule_id in (*([case.rule] if case.rule else []), *(case.fires_exactly or ())):
        if rule_id not in ids:
            return ("rule",), f"unknown rule {rule_id!r}"
    g = case.given
    for name, value in g.features.items():
        kind = features.get(name)
        if kind is None:
            return ("given", "features", name), f"unknown feature {name!r}"
        if (kind == "string") != isinstance(value, str):
            return ("given", "features", name), f"feature {name!r} is a {kind}, got {value!r}"
    for model in (*g.scores, *g.cold):
        if model not in models:
            return ("given", "scores"), f"unknown model {model!r}; known: {list(models)}"
    event_keys = {n[6:] for n in EVENT_FIELDS}
    for key in g.event:
        if key not in event_keys:
            known = ", ".join(sorted(event_keys))
            return ("given", "event", key), f"unknown event field {key!r}; known: {known}"
    for key, field_value in g.profile.items():
        if key == "consent":
            if not isinstance(field_value, dict) or set(field_value) - set(CHANNELS):
                return ("given", "profile", key), f"consent maps channels {list(CHANNELS)} to bools"
        elif key == "opted_out":
            if not isinstance(field_value, bool):
                return ("given", "profile", key), "opted_out is true or false"
        elif key not in ("segment", "timezone", "rm_id"):
            return ("given", "profile", key), f"unknown profile field {key!r}"
    for rule_id in g.fired:
        if rule_id not in ids:
            return ("given", "fired", rule_id), f"unknown rule {rule_id!r}"
    return None


def case_env(
    given: Given, model_names: Iterable[str]
) -> tuple[dict[str, Any], str, str | None, dict[str, Fired]]:
    """(env, tier, segment, fired) for a case, built as ``engine.decide`` builds them."""
    features: dict[str, Any] = dict(derive(RawState(now=CASE_TS, windows={}, state={})))
    features.update(
        {k: float(v) if not isinstance(v, str) else v for k, v in given.features.items()}
    )
    if "tier" not in given.features:
        features["tier"] = tier_of(float(features.get("aum", 0.0)))
    env = features
    for model in model_names:
        env[f"score_{model}"] = float(given.scores.get(model, 0.0))
        env[f"cold_{model}"] = model in given.cold
    env.update(event_env({"ts": CASE_TS, **given.event}))
    profile: dict[str, str] = {}
    for key, value in given.profile.items():
        if key == "consent" and isinstance(value, dict):
            profile.update({f"consent_{c}": "1" if ok else "0" for c, ok in value.items()})
        elif key == "opted_out":
            profile["opted_out"] = "1" if value else "0"
        elif value is not None:
            profile[key] = str(value)
    env.update(profile_env(profile))
    fired = {rule_id: Fired(CASE_TS - ago, "earlier") for rule_id, ago in given.fired.items()}
    return env, str(env["tier"]), profile.get("segment"), fired


def run_case(ruleset: RuleSet, loaded: LoadedCase, model_names: Iterable[str]) -> CaseResult:
    case = loaded.case
    env, tier, segment, fired = case_env(case.given, model_names)
    outcome = ruleset.evaluate(
        env, tier=tier, segment=segment, fired=fired, ts=CASE_TS, decision_id="case"
    )
    problems = _problems(case, outcome)
    return CaseResult(loaded.file, loaded.line, case.name, not problems, tuple(problems))


def _problems(case: Case, outcome: RuleOutcome) -> list[str]:
    problems = [f"rule {e.rule_id!r} failed to evaluate: {e.reason}" for e in outcome.errors]
    hits = {h.rule_id: h for h in outcome.hits}
    suppressed = {s.rule_id: s.reason for s in outcome.suppressed}
    fired_text = sorted(hits) or "nothing"
    if case.rule is not None:
        hit = hits.get(case.rule)
        if case.expect == "fire":
            if hit is None:
                why = f" (suppressed: {suppressed[case.rule]})" if case.rule in suppressed else ""
                problems.append(f"expected {case.rule} to fire; it did not{why}")
            else:
                if case.reason is not None and hit.reason != case.reason:
                    problems.append(f"reason is {hit.reason!r}; expected {case.reason!r}")
                if case.reason_contains is not None and case.reason_contains not in hit.reason:
                    problems.append(f"reason {hit.reason!r} lacks {case.reason_contains!r}")
        elif case.expect == "silent":
            if hit is not None:
                problems.append(f"expected {case.rule} to stay silent; it fired: {hit.reason!r}")
            elif case.rule in suppressed:
                problems.append(
                    f"expected {case.rule} to stay silent (condition false); it held and was "
                    f"suppressed ({suppressed[case.rule]})"
                )
        elif case.rule not in suppressed:
            state = "fired" if hit is not None else "did not hold"
            problems.append(f"expected {case.rule} to be suppressed; it {state}")
        elif case.suppressed_by and suppressed[case.rule] != case.suppressed_by:
            problems.append(
                f"{case.rule} was suppressed by {suppressed[case.rule]!r}, "
                f"expected {case.suppressed_by!r}"
            )
    if case.fires_exactly is not None and sorted(hits) != sorted(case.fires_exactly):
        problems.append(f"fired {fired_text}; expected exactly {sorted(case.fires_exactly)}")
    return problems


def run_folder(folder: Path, model_names: Iterable[str]) -> TestReport:
    """Load the rules and every ``*.test.yaml`` of ``folder`` and run the cases.

    Raises ``RuleError`` when the rules or a test file do not load.
    """
    models = tuple(model_names)
    ruleset = load_rules(folder, models)
    files = case_files(folder)
    loaded: list[LoadedCase] = []
    for path, (_, content) in zip(files, read_files(files), strict=True):
        loaded.extend(load_cases(str(path), content, ruleset, models))
    results = tuple(run_case(ruleset, c, models) for c in loaded)
    named = {c.case.rule for c in loaded} | {r for c in loaded for r in c.case.fires_exactly or ()}
    untested = tuple(r.id for r in ruleset.ordered if r.id not in named)
    return TestReport(results, untested, ruleset.version, tuple(str(p) for p in files))
