"""The names a rule condition may read, with their types (checked when a rule loads).

- every rolling feature (``features.definitions.feature_names()``);
- ``score_<model>`` for every model in the catalog, and ``cold_<model>``;
- ``event_<field>`` for the fields of the event being decided;
- ``profile_<field>`` and ``consent_<channel>`` from the customer's profile.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from engine.events import CHANNELS
from features.definitions import RawState, derive

EVENT_FIELDS: dict[str, str] = {
    "event_type": "string",
    "event_kind": "string",
    "event_direction": "string",
    "event_amount": "number",
    "event_counterparty_bank": "string",
    "event_channel": "string",
    "event_name": "string",
    "event_page": "string",
    "event_label": "string",
    "event_ts": "number",
}
PROFILE_FIELDS: dict[str, str] = {
    "profile_segment": "string",
    "profile_timezone": "string",
    "profile_rm_id": "string",
    "profile_opted_out": "bool",
    **{f"consent_{c}": "bool" for c in CHANNELS},
}


def known_names(model_names: Iterable[str]) -> dict[str, str]:
    """Every readable name and its type: ``number``, ``string`` or ``bool``."""
    sample = derive(RawState(now=0.0, windows={}, state={}))
    names = {k: ("string" if isinstance(v, str) else "number") for k, v in sample.items()}
    for model in model_names:
        names[f"score_{model}"] = "number"
        names[f"cold_{model}"] = "bool"
    return {**names, **EVENT_FIELDS, **PROFILE_FIELDS}


def event_env(event: Mapping[str, Any]) -> dict[str, Any]:
    """``event_<field>`` values of an event given as a mapping of its fields."""
    return {name: event.get(name[6:]) for name in EVENT_FIELDS}


def profile_env(profile: Mapping[str, str]) -> dict[str, Any]:
    """``profile_*`` and ``consent_*`` values; consent defaults to True, opted_out to False."""
    env: dict[str, Any] = {
        "profile_segment": profile.get("segment"),
        "profile_timezone": profile.get("timezone"),
        "profile_rm_id": profile.get("rm_id"),
        "profile_opted_out": profile.get("opted_out") == "1",
    }
    for channel in CHANNELS:
        env[f"consent_{channel}"] = profile.get(f"consent_{channel}", "1") == "1"
    return env
