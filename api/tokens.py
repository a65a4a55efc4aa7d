"""Short-lived stream tokens, for browsers: EventSource and WebSocket cannot send headers.

A token is obtained with a real API key (``POST /auth/stream-token``), is valid only on the
alert stream endpoints, for a few minutes, and only for as long as its key exists with the
``read`` scope. It is ``<payload>.<mac>`` in base64url, the payload ``v1|<key name>|<expiry>``
and the mac an HMAC-SHA256 under a random secret every API replica shares (kept in Redis).

>>> secret = b"k" * 32
>>> token = issue(secret, "ops", now=1000.0, ttl=60)
>>> check(secret, token, now=1030.0)
'ops'
>>> check(secret, token, now=1061.0) is None  # expired
True
>>> check(b"x" * 32, token, now=1030.0) is None  # another secret
True
>>> check(secret, "garbage", now=1030.0) is None
True
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue(secret: bytes, key_name: str, now: float, ttl: int) -> str:
    payload = f"v1|{key_name}|{int(now) + int(ttl)}".encode()
    mac = hmac.new(secret, payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(mac)}"


def check(secret: bytes, token: str, now: float) -> str | None:
    """The key name the token was issued to, or None when it is invalid or expired."""
    head, dot, tail = token.partition(".")
    if not dot or len(token) > 1024:
        return None
    try:
        payload, mac = _unb64(head), _unb64(tail)
    except (binascii.Error, ValueError):
        return None
    expected = hmac.new(secret, payload, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, mac):
        return None
    version, _, rest = payload.decode("utf-8", "replace").partition("|")
    name, _, expiry = rest.rpartition("|")
    if version != "v1" or not expiry.isdigit() or int(expiry) < now:
        return None
    return name
