"""The names a rule condition may read, with their types (checked when a rule loads).

- every rolling feature (``features.definitions.feature_names()``), e.g. ``aum_peak_30d``;
- ``score_<model>`` for every model in the catalog (a number in [0, 1]), and ``cold_<model>``
  (true while the model has learned too little and answers with its prior);
- ``event_<field>`` for the fields of the event being decided (missing when that kind of event
  has no such field);
- ``profile_<field>`` and ``consent_<channel>`` from the customer's profile.

Values are sanitised to their declared type when the environment is built: a field of the wrong
type (an extra field a producer added, say) reads as missing, never as something else.

>>> names = known_names(["churn_risk"])
>>> names["score_churn_risk"], names["cold_churn_risk"], names["tier"], names["event_page"]
('number', 'bool', 'string', 'string')
>>> event_env({"type": "app", "page": "account_closure", "amount": "lots"})["event_amount"] is None
True
>>> profile_env({"opted_out": "1", "consent_sms": "0"})["consent_sms"]
False
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from engine.events import CHANNELS
from features.definitions import RawState, derive, feature_names

EVENT_FIELDS: dict[str, str] = {
    "event_type": "string",
    "event_kind": "string",
    "event_direction": "string",
    "event_amount": "number",
    "event_currency": "string",
    "event_balance_after": "number",
    "event_counterparty_bank": "string",
    "event_channel": "string",
    "event_name": "string",
    "event_page": "string",
    "event_label": "string",
    "event_aum": "number",
    "event_segment": "string",
    "event_ts": "number",
}
PROFILE_FIELDS: dict[str, str] = {
    "profile_segment": "string",
    "profile_timezone": "string",
    "profile_rm_id": "string",
    "profile_opted_out": "bool",
    **{f"consent_{c}": "bool" for c in CHANNELS},
}
# (env name, event field, is a number) in EVENT_FIELDS' order
_EVENT_FIELD_KEYS: tuple[tuple[str, str, bool], ...] = tuple(
    (name, name[6:], kind == "number") for name, kind in EVENT_FIELDS.items()
)
_CONSENT_KEYS: tuple[str, ...] = tuple(f"consent_{c}" for c in CHANNELS)


STRING_FEATURES = frozenset({"tier"})


def feature_types() -> dict[str, str]:
    """Every rolling feature (``feature_names()``) and its type, from a customer's features."""
    try:
        sample: Mapping[str, Any] = derive(RawState(now=0.0, windows={}, state={}))
    except Exception:  # the catalog's own checks report a broken catalog; names still load
        sample = {}
    return {
        name: "string" if isinstance(sample.get(name), str) or name in STRING_FEATURES else "number"
        for name in feature_names()
    }


def known_names(model_names: Iterable[str]) -> dict[str, str]:
    """Every readable name and its type: ``number``, ``string`` or ``bool``."""
    names = feature_types()
    for model in model_names:
        names[f"score_{model}"] = "number"
        names[f"cold_{model}"] = "bool"
    return {**names, **EVENT_FIELDS, **PROFILE_FIELDS}


def event_env(event: Mapping[str, Any], ts: float | None = None) -> dict[str, Any]:
    """``event_<field>`` values of an event given as a mapping of its fields, typed or missing;
    ``ts``, when given, is the event time (instead of the mapping's ``ts``)."""
    env: dict[str, Any] = {}
    get = event.get
    for name, field, number in _EVENT_FIELD_KEYS:
        value = ts if ts is not None and field == "ts" else get(field)
        if number:
            ok = (
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and math.isfinite(value)
            )
            env[name] = float(value) if ok else None  # type: ignore[arg-type]
        else:
            env[name] = value if isinstance(value, str) else None
    return env


def profile_env(profile: Mapping[str, str]) -> dict[str, Any]:
    """``profile_*`` and ``consent_*`` values; consent defaults to True, opted_out to False."""
    env: dict[str, Any] = {
        "profile_segment": profile.get("segment"),
        "profile_timezone": profile.get("timezone"),
        "profile_rm_id": profile.get("rm_id"),
        "profile_opted_out": profile.get("opted_out") == "1",
    }
    for key in _CONSENT_KEYS:
        env[key] = profile.get(key, "1") == "1"
    return env
