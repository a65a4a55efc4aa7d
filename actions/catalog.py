"""The action catalog (YAML), validated at load: an unknown channel or alert type, a missing
template or a duplicate id is refused with a message naming the entry."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.errors import CatalogError
from engine.events import CHANNELS
from rules.schema import ALERT_TYPES, TIERS


class ActionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    description: Annotated[str, Field(min_length=1)]
    goal: str
    channel: str
    answers: tuple[str, ...]
    tiers: tuple[str, ...] = TIERS
    value: Annotated[float, Field(ge=0)]
    cost: Annotated[float, Field(ge=0)] = 0.0
    propensity: Annotated[float, Field(ge=0, le=1)]
    template_id: Annotated[str, Field(min_length=1)]

    @field_validator("goal")
    @classmethod
    def _goal(cls, v: str) -> str:
        if v not in ("retain", "grow_assets", "re_engage", "service"):
            raise ValueError(f"unknown goal {v!r}")
        return v

    @field_validator("channel")
    @classmethod
    def _channel(cls, v: str) -> str:
        if v not in CHANNELS:
            raise ValueError(f"unknown channel {v!r}; known: {list(CHANNELS)}")
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


class _CatalogFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = 1
    actions: tuple[ActionSpec, ...]


class ActionCatalog(BaseModel):
    model_config = ConfigDict(frozen=True)

    actions: tuple[ActionSpec, ...]
    version: str


def load_catalog(path: Path) -> ActionCatalog:
    try:
        content = path.read_bytes()
        doc = yaml.safe_load(content)
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read the action catalog: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: not valid YAML: {exc}") from None
    try:
        parsed = _CatalogFile.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = first["loc"]
        entry = ""
        if len(loc) > 1 and loc[0] == "actions" and isinstance(loc[1], int):
            try:
                entry = f" action {doc['actions'][loc[1]].get('id', loc[1])!r}"
            except (TypeError, KeyError, IndexError, AttributeError):
                entry = f" action #{loc[1]}"
        field = ".".join(str(p) for p in loc[2:]) or ".".join(str(p) for p in loc)
        raise CatalogError(f"{path}:{entry} {field}: {first['msg']}") from None
    ids = [a.id for a in parsed.actions]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise CatalogError(f"{path}: duplicate action id(s) {dupes}")
    return ActionCatalog(actions=parsed.actions, version=hashlib.sha256(content).hexdigest()[:12])
