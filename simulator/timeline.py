"""The simulated calendar: bank days, their dates, and each customer's clock offset.

A *bank day* is the 24 hours ``[start + d * 86400, start + (d + 1) * 86400)``. Every event the
simulator makes for day ``d`` lies inside that window, so sorting each day's events and emitting
the days in order gives a globally ordered stream. A customer abroad lives by local hours: an
activity at 20:00 London time is placed at the bank second of day that is 20:00 in London.

>>> tl = Timeline(datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=8))), days=2)
>>> tl.day_starts[1] - tl.day_starts[0], tl.dates[1]
(86400, (2026, 1, 2))
>>> tl.delta("Europe/London", 0) // 3600
-8
>>> bank_second(20 * 3600, tl.delta("Europe/London", 0)) // 3600   # 20:00 London = 04:00 +08
4
>>> tl.fmt(tl.start_epoch, tl.bank_tz), tl.fmt(tl.start_epoch, zone("Europe/London"))
('2026-01-01T00:00:00+08:00', '2025-12-31T16:00:00+00:00')
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Final
from zoneinfo import ZoneInfo

DAY: Final = 86_400
HOUR: Final = 3_600
DEFAULT_START: Final = datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=8)))


@lru_cache(maxsize=64)
def zone(name: str) -> tzinfo:
    """An IANA time zone by name (cached)."""
    return ZoneInfo(name)


def bank_second(local_second: int, delta: int) -> int:
    """The second of the bank day at which a customer's local ``local_second`` falls."""
    return (local_second - delta) % DAY


class Timeline:
    """Day boundaries, calendar dates and time-zone offsets of one simulation run."""

    __slots__ = (
        "_deltas",
        "bank_tz",
        "dates",
        "day_starts",
        "days",
        "end_epoch",
        "start",
        "start_epoch",
    )

    def __init__(self, start: datetime, days: int) -> None:
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError(f"start must carry a UTC offset, got {start.isoformat()}")
        if days < 0:
            raise ValueError(f"days must be >= 0, got {days}")
        self.start = start
        self.bank_tz: tzinfo = start.tzinfo
        self.days = days
        self.start_epoch = math.ceil(start.timestamp())
        self.end_epoch = self.start_epoch + days * DAY
        self.day_starts = [self.start_epoch + d * DAY for d in range(days)]
        self.dates: list[tuple[int, int, int]] = []
        for epoch in self.day_starts:
            local = datetime.fromtimestamp(epoch, self.bank_tz)
            self.dates.append((local.year, local.month, local.day))
        self._deltas: dict[str, list[int]] = {}

    def delta(self, tz_name: str, day: int) -> int:
        """Seconds the customer's zone is ahead of the bank's at midday of bank day ``day``."""
        deltas = self._deltas.get(tz_name)
        if deltas is None:
            local = zone(tz_name)
            deltas = []
            for epoch in self.day_starts:
                mid = datetime.fromtimestamp(epoch + DAY // 2, self.bank_tz)
                local_off = mid.astimezone(local).utcoffset() or timedelta()
                bank_off = mid.utcoffset() or timedelta()
                deltas.append(int((local_off - bank_off).total_seconds()))
            self._deltas[tz_name] = deltas
        return deltas[day]

    def day_of(self, epoch: int) -> int:
        """The bank day an epoch falls in (may be outside ``range(days)``)."""
        return (epoch - self.start_epoch) // DAY

    def at(self, epoch: int) -> datetime:
        """An epoch as an aware datetime on the bank's clock."""
        return datetime.fromtimestamp(epoch, self.bank_tz)

    @staticmethod
    def fmt(epoch: int, tz: tzinfo) -> str:
        """ISO 8601 with the zone's UTC offset, to the second."""
        return datetime.fromtimestamp(epoch, tz).isoformat()
