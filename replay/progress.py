"""A plain-text progress bar with events per second, on stderr.

On a terminal it redraws one line (``\\r``) at most four times a second; otherwise (a log file,
CI) it prints a full line every ten seconds. No dependency beyond the standard library.

>>> import io
>>> out = io.StringIO()
>>> bar = Progress(total_bytes=100, stream=out, tty=False, clock=iter([0.0, 20.0, 20.0]).__next__)
>>> bar.update(events=5000, position=50)
>>> "50%" in out.getvalue() and "5,000 events" in out.getvalue()
True
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO


def _bar(fraction: float, width: int = 24) -> str:
    filled = round(max(0.0, min(fraction, 1.0)) * width)
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def _clock_text(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    def __init__(
        self,
        total_bytes: int,
        stream: IO[str] | None = None,
        *,
        tty: bool | None = None,
        label: str = "replay",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.total = total_bytes
        self.label = label
        self._clock = clock
        self._started = clock()
        self._last_draw = self._started
        self._interval = 0.25 if self.tty else 10.0
        self._width = 0

    def _line(self, events: int, position: int, now: float) -> str:
        elapsed = max(now - self._started, 1e-9)
        rate = events / elapsed
        parts = [self.label]
        if self.total > 0:
            fraction = min(position / self.total, 1.0)
            parts.append(f"{_bar(fraction)} {fraction:4.0%}")
        parts.append(f"{events:,} events")
        parts.append(f"{rate:,.0f} ev/s")
        parts.append(_clock_text(elapsed))
        return "  ".join(parts)

    def update(self, events: int, position: int) -> None:
        now = self._clock()
        if now - self._last_draw < self._interval:
            return
        self._last_draw = now
        self._draw(self._line(events, position, now))

    def _draw(self, line: str) -> None:
        if self.tty:
            pad = max(self._width - len(line), 0)
            self.stream.write("\r" + line + " " * pad)
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        """A message on its own line (the bar is redrawn at the next update)."""
        if self.tty and self._width:
            self.stream.write("\n")
            self._width = 0
        self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self, events: int) -> None:
        now = self._clock()
        line = self._line(events, self.total, now)
        self._draw(line)
        if self.tty:
            self.stream.write("\n")
            self._width = 0
        self.stream.flush()
