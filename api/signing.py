"""Webhook signatures and retry delays. Pure.

Every webhook request carries ``Vigil-Signature: t=<unix seconds>,v1=<hex>`` where ``<hex>`` is
``HMAC-SHA256(secret, "<t>." + raw request body)``. A receiver recomputes it over the exact bytes
it received, compares in constant time, and refuses a ``t`` older than its tolerance (replays).

>>> header = sign("s3cret-s3cret-16", 1767225600, b'{"a":1}')
>>> header
't=1767225600,v1=82096bd2602fd4feb8acb4ad7c25c3a150c2a6aa493bb17cb28278a0d6f1b104'
>>> verify("s3cret-s3cret-16", header, b'{"a":1}', now=1767225700)
True
>>> verify("s3cret-s3cret-16", header, b'{"a":2}', now=1767225700)  # body changed
False
>>> verify("s3cret-s3cret-16", header, b'{"a":1}', now=1767226000)  # too old: a replay
False
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "Vigil-Signature"
DELIVERY_HEADER = "Vigil-Delivery"
ATTEMPT_HEADER = "Vigil-Attempt"
DEFAULT_TOLERANCE_SECONDS = 300


def signed_string(timestamp: int, body: bytes) -> bytes:
    """The exact bytes that are signed: the decimal timestamp, a dot, the raw body."""
    return str(int(timestamp)).encode() + b"." + body


def signature(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), signed_string(timestamp, body), hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Vigil-Signature`` header value."""
    return f"t={int(timestamp)},v1={signature(secret, timestamp, body)}"


def parse_header(header: str) -> tuple[int, list[str]] | None:
    """``(t, [v1 signatures])`` or None when the header is malformed.

    >>> parse_header("t=12,v1=ab,v1=cd")
    (12, ['ab', 'cd'])
    >>> parse_header("v1=ab") is None
    True
    """
    t: int | None = None
    sigs: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            t = int(value)
        elif name == "v1" and value:
            sigs.append(value)
    if t is None or not sigs:
        return None
    return t, sigs


def verify(
    secret: str,
    header: str,
    body: bytes,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """True when one v1 signature matches and ``t`` is within ``tolerance`` of ``now``."""
    parsed = parse_header(header)
    if parsed is None:
        return False
    t, sigs = parsed
    if abs(now - t) > tolerance:
        return False
    expected = signature(secret, t, body)
    return any(hmac.compare_digest(expected, s) for s in sigs)


def backoff(attempt: int, base: float, cap: float, spread: float = 0.0) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): exponential, capped.

    ``spread`` in [0, 1) adds up to 20% so retries of many deliveries do not move in step
    (callers derive it from the delivery id, so it is deterministic).

    >>> [backoff(n, 1.0, 10.0) for n in range(1, 6)]
    [1.0, 2.0, 4.0, 8.0, 10.0]
    >>> backoff(2, 1.0, 10.0, spread=0.5)
    2.2
    """
    delay = min(cap, base * 2 ** max(attempt - 1, 0))
    return float(round(delay * (1.0 + 0.2 * min(max(spread, 0.0), 0.999999)), 6))


def spread_of(text: str) -> float:
    """A stable number in [0, 1) from a string.

    >>> spread_of("d1") == spread_of("d1") and 0 <= spread_of("d1") < 1
    True
    """
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big") / 2**32
