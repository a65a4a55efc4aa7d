"""Injected time. Decisions use event time; only I/O timing and freshness checks read a clock."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch."""
        ...


class WallClock:
    """The real clock, for live workers."""

    def now(self) -> float:
        return time.time()


class FixedClock:
    """A clock that says what it is told, for tests and replay.

    >>> clock = FixedClock(100.0)
    >>> clock.advance(5); clock.now()
    105.0
    """

    def __init__(self, at: float) -> None:
        self._at = at

    def now(self) -> float:
        return self._at

    def set(self, at: float) -> None:
        self._at = at

    def advance(self, seconds: float) -> None:
        self._at += seconds
