"""The action catalog (YAML): what Vigil may do about an alert, with which message, for whom.

Validated at load, all or nothing: an unknown channel, goal, tier or alert type, a template that
is not declared (or not written for the action's channel), an ``eligible_when`` condition that is
not in the rule language, a duplicate id or a malformed experiment is refused with a
``CatalogError`` naming the file and the entry. The catalog's ``version`` is the hash of the
file's bytes and is written into every decision. The format is in docs/actions.md.

>>> catalog = load_catalog(DEFAULT_CATALOG)
>>> [a.id for a in catalog.answering("engagement_drop")]
['push_wealth_content', 'in_app_reactivation', 'email_investor_digest']
>>> catalog.template_of("sms_rate_offer").channels
('sms',)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from engine.errors import CatalogError
from engine.events import CHANNELS
from rules.expressions import Expression, ExpressionError, compile_expression
from rules.names import known_names
from rules.schema import ALERT_TYPES, TIERS

DEFAULT_CATALOG = Path(__file__).resolve().parent / "catalog.yaml"
GOALS = ("retain", "grow_assets", "re_engage", "service")
_ID = r"^[a-z][a-z0-9_]{0,63}$"


def _known_channels(values: Iterable[str]) -> None:
    unknown = [c for c in values if c not in CHANNELS]
    if unknown:
        raise ValueError(f"unknown channel(s) {unknown}; known: {list(CHANNELS)}")


class TemplateSpec(BaseModel):
    """A message template a downstream sender renders; ``channels`` it is written for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=_ID)]
    channels: tuple[str, ...]
    text: Annotated[str, Field(min_length=1, max_length=2000)]

    @field_validator("channels")
    @classmethod
    def _channels(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("a template names at least one channel")
        _known_channels(v)
        return v


class ActionSpec(BaseModel):
    """One catalog action. ``channels`` are in order of preference; ``propensity`` is the prior
    used while the ``offer_response`` model is cold; ``weight`` is the business weight."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=_ID)]
    description: Annotated[str, Field(min_length=1)]
    goal: str
    channels: tuple[str, ...]
    answers: tuple[str, ...]
    tiers: tuple[str, ...] = TIERS
    segments: tuple[str, ...] = ()  # empty: every segment
    eligible_when: Annotated[str, Field(min_length=1, max_length=2000)] | None = None
    value: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    cost: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    weight: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0
    propensity: Annotated[float, Field(ge=0, le=1)]
    template_id: Annotated[str, Field(min_length=1)]

    @field_validator("goal")
    @classmethod
    def _goal(cls, v: str) -> str:
        if v not in GOALS:
            raise ValueError(f"unknown goal {v!r}; known: {list(GOALS)}")
        return v

    @field_validator("channels")
    @classmethod
    def _channels(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("an action names at least one channel")
        _known_channels(v)
        if len(set(v)) != len(v):
            raise ValueError(f"channel listed twice in {list(v)}")
        return v

    @field_validator("answers")
    @classmethod
    def _answers(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [a for a in v if a not in ALERT_TYPES]
        if unknown or not v:
            raise ValueError(f"unknown alert type(s) {unknown}; known: {list(ALERT_TYPES)}")
        return v

    @field_validator("tiers")
    @classmethod
    def _tiers(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [t for t in v if t not in TIERS]
        if unknown:
            raise ValueError(f"unknown tier(s) {unknown}; known: {list(TIERS)}")
        return v


class VariantSpec(BaseModel):
    """An experiment arm: ``control`` sends nothing; ``actions`` (if given) limits the
    candidates to those ids; otherwise the arm is the normal arbitration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=_ID)]
    weight: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    control: bool = False
    actions: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _control_sends_nothing(self) -> VariantSpec:
        if self.control and self.actions is not None:
            raise ValueError("a control variant sends nothing: it takes no 'actions'")
        return self


class ExperimentSpec(BaseModel):
    """A randomised experiment over the decisions whose primary alert is of ``alert_types``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=_ID)]
    description: Annotated[str, Field(min_length=1)]
    alert_types: tuple[str, ...] = ALERT_TYPES
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    variants: tuple[VariantSpec, ...]

    @field_validator("alert_types")
    @classmethod
    def _alert_types(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [a for a in v if a not in ALERT_TYPES]
        if unknown or not v:
            raise ValueError(f"unknown alert type(s) {unknown}; known: {list(ALERT_TYPES)}")
        return v

    @model_validator(mode="after")
    def _arms(self) -> ExperimentSpec:
        ids = [v.id for v in self.variants]
        if len(ids) < 2 or len(set(ids)) != len(ids):
            raise ValueError(f"variants need at least two distinct ids, got {ids}")
        controls = [v.id for v in self.variants if v.control]
        if len(controls) != 1:
            raise ValueError(f"exactly one variant is the control group, got {controls}")
        if self.start and self.end and self.end <= self.start:
            raise ValueError("end is not after start")
        return self

    @property
    def start_ts(self) -> float:
        return self.start.timestamp() if self.start else float("-inf")

    @property
    def end_ts(self) -> float:
        return self.end.timestamp() if self.end else float("inf")


class _CatalogFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = 1
    templates: tuple[TemplateSpec, ...] = ()
    actions: tuple[ActionSpec, ...]
    experiments: tuple[ExperimentSpec, ...] = ()


class RunningExperiment(NamedTuple):
    """An experiment with its event-time window, scope and cumulative variant weights."""

    spec: ExperimentSpec
    start: float
    end: float
    alert_types: frozenset[str]
    cumulative: tuple[float, ...]


@dataclass(frozen=True)
class ActionCatalog:
    """The loaded catalog: actions, their templates and compiled eligibility, experiments."""

    actions: tuple[ActionSpec, ...]
    version: str
    templates: Mapping[str, TemplateSpec] = field(default_factory=dict)
    experiments: tuple[ExperimentSpec, ...] = ()
    conditions: Mapping[str, Expression] = field(default_factory=dict)
    source: str = ""
    _by_alert: Mapping[str, tuple[ActionSpec, ...]] = field(init=False, repr=False, compare=False)
    # Memoised ranking plans of ``actions.nba`` (a pure function of the catalog and its key).
    plans: dict[Any, Any] = field(init=False, repr=False, compare=False)
    # Whether any action is limited to segments (else the segment never changes a ranking).
    uses_segments: bool = field(init=False, repr=False, compare=False)
    # Per experiment, what assignment needs, precomputed: see ``RunningExperiment``.
    experiment_index: tuple[RunningExperiment, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = {t: tuple(a for a in self.actions if t in a.answers) for t in ALERT_TYPES}
        object.__setattr__(self, "_by_alert", index)
        object.__setattr__(self, "plans", {})
        object.__setattr__(self, "uses_segments", any(a.segments for a in self.actions))
        running = tuple(
            RunningExperiment(
                e,
                e.start_ts,
                e.end_ts,
                frozenset(e.alert_types),
                tuple(accumulate(v.weight for v in e.variants)),
            )
            for e in self.experiments
        )
        object.__setattr__(self, "experiment_index", running)

    def answering(self, alert_type: str) -> tuple[ActionSpec, ...]:
        """The actions that answer an alert type, in catalog order."""
        return self._by_alert.get(alert_type, ())

    def template_of(self, action_id: str) -> TemplateSpec:
        spec = next(a for a in self.actions if a.id == action_id)
        return self.templates[spec.template_id]

    def by_id(self) -> dict[str, ActionSpec]:
        return {a.id: a for a in self.actions}


def load_catalog(path: Path, model_names: Iterable[str] | None = None) -> ActionCatalog:
    """Read and validate a catalog file. ``model_names`` are the models whose ``score_<name>``
    an ``eligible_when`` condition may read (default: the model registry)."""
    try:
        content = path.read_bytes()
        doc = yaml.safe_load(content)
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read the action catalog: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: not valid YAML: {exc}") from None
    return parse_catalog(
        doc, source=str(path), version=hashlib.sha256(content).hexdigest()[:12], models=model_names
    )


def parse_catalog(
    doc: Any, *, source: str, version: str, models: Iterable[str] | None = None
) -> ActionCatalog:
    """Validate a parsed catalog document (see ``load_catalog``)."""
    try:
        parsed = _CatalogFile.model_validate(doc)
    except ValidationError as exc:
        raise CatalogError(f"{source}:{_explain(exc, doc)}") from None
    _unique(source, "template", [t.id for t in parsed.templates])
    _unique(source, "action", [a.id for a in parsed.actions])
    _unique(source, "experiment", [e.id for e in parsed.experiments])
    templates = {t.id: t for t in parsed.templates}
    for action in parsed.actions:
        template = templates.get(action.template_id)
        if template is None:
            raise CatalogError(
                f"{source}: action {action.id!r}: template {action.template_id!r} is not declared"
                f" in templates (declared: {sorted(templates)})"
            )
        missing = [c for c in action.channels if c not in template.channels]
        if missing:
            raise CatalogError(
                f"{source}: action {action.id!r}: template {template.id!r} is not written for"
                f" channel(s) {missing}"
            )
    conditions = _compile_conditions(source, parsed.actions, models)
    ids = {a.id for a in parsed.actions}
    for exp in parsed.experiments:
        for variant in exp.variants:
            unknown = sorted(set(variant.actions or ()) - ids)
            if unknown:
                raise CatalogError(
                    f"{source}: experiment {exp.id!r} variant {variant.id!r}: unknown action(s)"
                    f" {unknown}"
                )
    return ActionCatalog(
        actions=parsed.actions,
        version=version,
        templates=templates,
        experiments=parsed.experiments,
        conditions=conditions,
        source=source,
    )


def _compile_conditions(
    source: str, actions: Iterable[ActionSpec], models: Iterable[str] | None
) -> dict[str, Expression]:
    if models is None:
        from online_models.catalog import model_names

        models = model_names()
    names = known_names(models)
    out: dict[str, Expression] = {}
    for action in actions:
        if action.eligible_when is None:
            continue
        try:
            out[action.id] = compile_expression(action.eligible_when, names)
        except ExpressionError as exc:
            raise CatalogError(f"{source}: action {action.id!r} eligible_when: {exc}") from None
    return out


def _unique(source: str, kind: str, ids: list[str]) -> None:
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise CatalogError(f"{source}: duplicate {kind} id(s) {dupes}")


def _explain(exc: ValidationError, doc: Any) -> str:
    """The first validation error, naming the entry (``action 'x'``) and the field."""
    first = exc.errors(include_url=False)[0]
    loc = first["loc"]
    entry = ""
    rest = loc
    if (
        len(loc) > 1
        and loc[0] in ("actions", "templates", "experiments")
        and isinstance(loc[1], int)
    ):
        kind = str(loc[0])[:-1]
        try:
            entry = f" {kind} {doc[loc[0]][loc[1]].get('id', loc[1])!r}"
        except (TypeError, KeyError, IndexError, AttributeError):
            entry = f" {kind} #{loc[1]}"
        rest = loc[2:]
    where = ".".join(str(p) for p in rest) or "(file)"
    return f"{entry} {where}: {first['msg']}"
