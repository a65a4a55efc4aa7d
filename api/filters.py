"""Which alerts a stream client or a webhook subscription wants. Pure.

A filter holds, per field, the set of accepted values; an empty set accepts anything. Fields
combine with AND, values of one field with OR.

>>> f = AlertFilter.parse(type=["churn_risk,asset_drop"], severity=["high"])
>>> f.matches({"type": "churn_risk", "severity": "high", "tier": "basic", "rm_id": None})
True
>>> f.matches({"type": "churn_risk", "severity": "low", "tier": "basic", "rm_id": None})
False
>>> AlertFilter.parse(rm_id=["rm7"]).matches({"rm_id": None})
False
>>> AlertFilter().matches({"type": "anything"})
True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

FILTER_FIELDS = ("type", "severity", "tier", "rm_id")
MAX_VALUES = 50
MAX_VALUE_LENGTH = 128


class FilterError(ValueError):
    """A filter value that cannot be used; the message says which and why."""


def _values(name: str, raw: Iterable[str] | None) -> frozenset[str]:
    out: set[str] = set()
    for item in raw or ():
        for value in item.split(","):
            value = value.strip()
            if not value:
                continue
            if len(value) > MAX_VALUE_LENGTH:
                raise FilterError(f"{name}: a value is longer than {MAX_VALUE_LENGTH} characters")
            out.add(value)
    if len(out) > MAX_VALUES:
        raise FilterError(f"{name}: more than {MAX_VALUES} values")
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class AlertFilter:
    type: frozenset[str] = frozenset()
    severity: frozenset[str] = frozenset()
    tier: frozenset[str] = frozenset()
    rm_id: frozenset[str] = frozenset()

    @classmethod
    def parse(
        cls,
        type: Iterable[str] | None = None,
        severity: Iterable[str] | None = None,
        tier: Iterable[str] | None = None,
        rm_id: Iterable[str] | None = None,
    ) -> AlertFilter:
        """From query values; each may be repeated or comma separated. Raises FilterError."""
        return cls(
            _values("type", type),
            _values("severity", severity),
            _values("tier", tier),
            _values("rm_id", rm_id),
        )

    @classmethod
    def from_dict(cls, doc: Mapping[str, Iterable[str] | None]) -> AlertFilter:
        """
        >>> AlertFilter.from_dict({"tier": ["basic"]}).as_dict()["tier"]
        ['basic']
        """
        return cls.parse(**{name: doc.get(name) for name in FILTER_FIELDS})

    def matches(self, alert: Mapping[str, Any]) -> bool:
        for name in FILTER_FIELDS:
            allowed: frozenset[str] = getattr(self, name)
            if allowed:
                value = alert.get(name)
                if value is None or str(value) not in allowed:
                    return False
        return True

    def as_dict(self) -> dict[str, list[str]]:
        return {name: sorted(getattr(self, name)) for name in FILTER_FIELDS}
