"""Building a ``CustomerState`` from a store's raw state; shared by every store."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from engine.types import ApplyStatus, Contact, CustomerState, Fired
from features.buckets import Bucket, Key, aggregate, decode_group, expand_aum, parse_field
from features.definitions import derive_vector, fmt17, profile_of

num = fmt17


def build_state(
    customer_id: str,
    status: ApplyStatus,
    now: float,
    buckets: Mapping[Key, Mapping[int, int]],
    fields: Mapping[str, str],
) -> CustomerState:
    """The state from the Redis hash's buckets and plain fields (the twin builds the same from
    its incrementally kept caches: ``MemoryStateStore._state``)."""
    agg, ago = aggregate(buckets, now)
    fired, contacts = effects_of(fields)
    return CustomerState(
        customer_id=customer_id,
        status=status,
        now=now,
        features=derive_vector(now, agg, fields, ago),
        profile=profile_of(fields),
        fired=fired,
        contacts=contacts,
    )


def effects_of(fields: Mapping[str, str]) -> tuple[dict[str, Fired], tuple[Contact, ...]]:
    """The alert cooldowns (``f:<rule>``) and contacts (``c:<decision>|<action>``) among the
    plain fields, contacts in time order."""
    fired: dict[str, Fired] = {}
    contacts: list[Contact] = []
    for name, value in fields.items():
        if name[1:2] != ":":
            continue
        if name[0] == "f":
            at, _, decision_id = value.partition("|")
            fired[name[2:]] = Fired(float(at), decision_id)
        elif name[0] == "c":
            decision_id, _, action_id = name[2:].partition("|")
            at, _, channel = value.partition("|")
            contacts.append(Contact(float(at), channel, decision_id, action_id))
    if len(contacts) > 1:
        contacts.sort(key=contact_order)
    return fired, tuple(contacts)


def contact_order(contact: Contact) -> tuple[float, str]:
    """The order of a customer's contacts in their state: by time, then by field (as Redis'
    hash would tie them)."""
    return contact.ts, f"{contact.decision_id}|{contact.action_id}|{contact.channel}"


def split_fields(flat: list[Any]) -> tuple[dict[Key, Bucket], dict[str, str]]:
    """Buckets and plain fields from a flat ``[field, value, ...]`` list (digests skipped)."""
    buckets: dict[Key, Bucket] = {}
    fields: dict[str, str] = {}
    it = iter(flat)
    for name, value in zip(it, it, strict=True):
        if isinstance(name, bytes):
            if name[:1] == b"E":
                continue
            name = name.decode()
            value = value.decode()
        first = name[0]
        if first in ("H", "D", "W"):
            key, group = parse_field(name)
            bucket = buckets.get(key)
            if bucket is None:
                bucket = buckets[key] = {}
            decode_group(value, group, bucket)
        elif first != "E":
            fields[name] = value
    for bucket in buckets.values():
        expand_aum(bucket)
    return buckets, fields


def decode_reply(customer_id: str, reply: bytes) -> CustomerState:
    """A state from the apply script's reply: ``<status>|<json [status, now, field, value...]>``."""
    status, _, body = reply.partition(b"|")
    doc = orjson.loads(body)
    buckets, fields = split_fields(doc[2:])
    return build_state(customer_id, status.decode(), float(doc[1]), buckets, fields)  # type: ignore[arg-type]


def contact_field(contact: Contact) -> tuple[str, str]:
    """The hash field and value recording a contact."""
    return f"c:{contact.decision_id}|{contact.action_id}", f"{fmt17(contact.ts)}|{contact.channel}"


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
