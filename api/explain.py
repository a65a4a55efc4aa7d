"""Plain-language views of what the engine recorded: a decision's explanation and a customer's
contact-policy counters. Pure: audit records and states in, JSON-ready data out.

>>> record = {
...     "event_type": "transaction", "event_id": "e1",
...     "event_time": "2026-01-02T02:00:00.000+00:00", "state_status": "applied",
...     "scores": {"churn_risk": {"score": 0.8123, "version": "v1", "cold": True}},
...     "rules": {"fired": [{"rule_id": "big_outflow", "reason": "large transfer out",
...                          "values": {"amount": 150000.0}}],
...               "suppressed": [{"rule_id": "closure_page", "reason": "cooldown"}], "errors": []},
...     "actions": {"chosen": ["rm_call"], "lead_grade": "high", "candidates": [
...         {"action_id": "rm_call", "channel": "rm_call", "priority": 0.9, "status": "chosen"},
...         {"action_id": "sms_offer", "channel": "sms", "priority": 0.5,
...          "status": "quiet_hours"}]},
... }
>>> for line in explanation(record):
...     print(line)
transaction event e1 at 2026-01-02T02:00:00.000+00:00 (state: applied).
Model churn_risk scored 0.812 (version v1, cold start prior).
Rule big_outflow fired: large transfer out (amount=150000.0).
Rule closure_page matched but was suppressed: cooldown.
Chosen action: rm_call via rm_call (priority 0.9); lead grade high.
Not chosen: sms_offer via sms (quiet_hours).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from engine.config import PolicySettings
from engine.events import iso
from engine.types import Contact

WEEK_SECONDS = 7 * 86400


def _values(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(values.items()))


def explanation(record: Mapping[str, Any]) -> list[str]:
    """One sentence per fact of the decision, in the order the pipeline took them."""
    lines = [
        f"{record.get('event_type', '?')} event {record.get('event_id', '?')} at "
        f"{record.get('event_time', '?')} (state: {record.get('state_status', '?')})."
    ]
    for name, s in sorted((record.get("scores") or {}).items()):
        cold = ", cold start prior" if s.get("cold") else ""
        lines.append(
            f"Model {name} scored {float(s.get('score', 0.0)):.3f} "
            f"(version {s.get('version', '?')}{cold})."
        )
    rules = record.get("rules") or {}
    fired = rules.get("fired") or []
    for hit in fired:
        values = _values(hit.get("values") or {})
        lines.append(
            f"Rule {hit.get('rule_id')} fired: {hit.get('reason')}"
            + (f" ({values})." if values else ".")
        )
    for s in rules.get("suppressed") or []:
        lines.append(f"Rule {s.get('rule_id')} matched but was suppressed: {s.get('reason')}.")
    for e in rules.get("errors") or []:
        lines.append(f"Rule {e.get('rule_id')} could not be evaluated: {e.get('reason')}.")
    if not fired:
        lines.append("No rule fired.")
    actions = record.get("actions") or {}
    candidates = actions.get("candidates") or []
    for c in candidates:
        if c.get("status") == "chosen":
            lines.append(
                f"Chosen action: {c.get('action_id')} via {c.get('channel')} "
                f"(priority {c.get('priority')}); lead grade {actions.get('lead_grade')}."
            )
    for c in candidates:
        if c.get("status") != "chosen":
            lines.append(
                f"Not chosen: {c.get('action_id')} via {c.get('channel')} ({c.get('status')})."
            )
    if fired and not candidates:
        lines.append("No action answers these alerts.")
    return lines


_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def channel_caps(policy: PolicySettings) -> dict[str, tuple[int, int]]:
    """Per-channel caps ``channel -> (max, window seconds)`` from ``policy.channel_caps``
    ("2/7d"), when the policy has them; channels without one use ``max_per_channel_7d``.

    >>> channel_caps(PolicySettings()).get("zzz") is None
    True
    """
    out: dict[str, tuple[int, int]] = {}
    for channel, text in (getattr(policy, "channel_caps", None) or {}).items():
        limit, _, window = str(text).replace(" ", "").partition("/")
        if limit.isdigit() and window[:-1].isdigit() and window[-1:] in _UNIT:
            out[channel] = (int(limit), int(window[:-1]) * _UNIT[window[-1]])
    return out


def contact_counters(
    contacts: Iterable[Contact], now: float, days_since_complaint: float, policy: PolicySettings
) -> dict[str, Any]:
    """Where the customer stands against the contact policy at event time ``now``.

    >>> from engine.config import PolicySettings
    >>> cs = [Contact(1000.0, "sms", "d1", "a"), Contact(2000.0, "sms", "d2", "b"),
    ...       Contact(3000.0, "push", "d3", "c")]
    >>> out = contact_counters(cs, now=3000.0, days_since_complaint=9999.0,
    ...                        policy=PolicySettings())
    >>> out["contacts_7d"], out["remaining_7d"], out["by_channel_7d"], out["channels_at_cap"]
    (3, 0, {'push': 1, 'sms': 2}, ['sms'])
    """
    contacts = tuple(contacts)
    recent = [c for c in contacts if now - WEEK_SECONDS < c.ts <= now]
    by_channel: dict[str, int] = {}
    for c in recent:
        by_channel[c.channel] = by_channel.get(c.channel, 0) + 1
    last = max((c.ts for c in contacts), default=None)
    caps = channel_caps(policy)
    channel_use = {}
    for channel in sorted(set(caps) | set(by_channel)):
        limit, window = caps.get(channel, (policy.max_per_channel_7d, WEEK_SECONDS))
        used = sum(1 for c in contacts if c.channel == channel and now - window < c.ts <= now)
        channel_use[channel] = {"used": used, "max": limit, "window_seconds": window}
    return {
        "as_of": iso(now),
        "contacts_7d": len(recent),
        "max_contacts_7d": policy.max_contacts_7d,
        "remaining_7d": max(policy.max_contacts_7d - len(recent), 0),
        "by_channel_7d": dict(sorted(by_channel.items())),
        "max_per_channel_7d": policy.max_per_channel_7d,
        "channels_at_cap": sorted(ch for ch, u in channel_use.items() if u["used"] >= u["max"]),
        "channel_caps": channel_use,
        "last_contact_at": iso(last) if last is not None else None,
        "days_since_last_complaint": days_since_complaint,
        "complaint_suppressed": days_since_complaint < policy.complaint_suppression_days,
        "quiet_hours": {"start": policy.quiet_hours_start, "end": policy.quiet_hours_end},
    }
