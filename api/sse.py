"""Server-Sent Events framing and stream ids. Pure.

Stream ids are the alert log's ids, ``<milliseconds>-<sequence>`` (a Redis Stream id); clients
resume with the last one they saw.

>>> frame("1-0", "alert", b'{"a":1}')
b'id: 1-0\\nevent: alert\\ndata: {"a":1}\\n\\n'
>>> parse_id("1767225600000-3")
(1767225600000, 3)
>>> parse_id("17") , parse_id("0")
((17, 0), (0, 0))
>>> parse_id("x-1") is None
True
>>> later("2-0", "1-5"), later("1-5", "1-5")
(True, False)
"""

from __future__ import annotations

import re

_ID = re.compile(r"^(\d{1,20})(?:-(\d{1,20}))?$")
MAX_ID = 2**64 - 1


def parse_id(text: str) -> tuple[int, int] | None:
    """``(ms, seq)`` of a stream id, or None when it is not one."""
    m = _ID.match(text.strip())
    if m is None:
        return None
    ms, seq = int(m.group(1)), int(m.group(2) or 0)
    if ms > MAX_ID or seq > MAX_ID:
        return None
    return ms, seq


def format_id(parsed: tuple[int, int]) -> str:
    return f"{parsed[0]}-{parsed[1]}"


def later(a: str, b: str) -> bool:
    """Whether stream id ``a`` comes after ``b`` (both valid)."""
    pa, pb = parse_id(a), parse_id(b)
    assert pa is not None and pb is not None
    return pa > pb


def frame(event_id: str | None, event: str, data: bytes) -> bytes:
    """One SSE message. ``data`` must be a single line (compact JSON is)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\n".encode() + b"data: " + data + b"\n\n"


def retry_frame(milliseconds: int) -> bytes:
    """Tells EventSource how long to wait before reconnecting."""
    return f"retry: {int(milliseconds)}\n\n".encode()
