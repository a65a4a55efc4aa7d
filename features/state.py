"""Decoding a store's apply result into a ``CustomerState``; shared by every store."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.types import ApplyStatus, Contact, CustomerState, Fired
from features.definitions import RawState, derive, profile_of


def decode_result(
    customer_id: str, doc: Mapping[str, Any], status: ApplyStatus | None = None
) -> CustomerState:
    """Build the state from the store's raw document (``st, now, w, s, l, f, c``).

    ``status`` overrides the document's own (a redelivery returns the first result, stamped
    ``applied``, with the status ``duplicate``).
    """
    windows = doc.get("w") or {}
    closes = doc.get("l") or {}
    state = doc.get("s") or {}
    raw = RawState(
        now=float(doc["now"]),
        windows={k: float(v) for k, v in windows.items()},
        state=dict(state),
        closes={int(k): float(v) for k, v in closes.items()},
    )
    fired = {}
    for rule_id, stamp in (doc.get("f") or {}).items():
        at, _, decision_id = str(stamp).partition("|")
        fired[rule_id] = Fired(float(at), decision_id)
    flat = doc.get("c") or []
    contacts = []
    for i in range(0, len(flat), 2):
        decision_id, action_id, channel = str(flat[i]).split("|", 2)
        contacts.append(Contact(float(flat[i + 1]), channel, decision_id, action_id))
    return CustomerState(
        customer_id=customer_id,
        status=status or doc["st"],
        now=raw.now,
        features=derive(raw),
        profile=profile_of(raw),
        fired=fired,
        contacts=tuple(contacts),
    )


def contact_member(contact: Contact) -> str:
    return f"{contact.decision_id}|{contact.action_id}|{contact.channel}"


def num(x: float) -> str:
    """A float as the Lua scripts write it (``%.17g``): both stores keep identical strings."""
    return format(x, ".17g")


def state_as_dict(state: CustomerState) -> dict[str, Any]:
    """A customer's state as JSON-ready data (for `vigil customer` and the API)."""
    return {
        "customer_id": state.customer_id,
        "as_of": state.now,
        "features": dict(state.features),
        "profile": dict(state.profile),
        "fired": {k: {"ts": v.ts, "decision_id": v.decision_id} for k, v in state.fired.items()},
        "contacts": [
            {
                "ts": c.ts,
                "channel": c.channel,
                "decision_id": c.decision_id,
                "action_id": c.action_id,
            }
            for c in state.contacts
        ],
    }
