"""Bearer API keys with scopes. Keys live in settings only as SHA-256 hashes.

``VIGIL_API__API_KEYS="ops:read+subscribe:<sha256 hex of the key>,admin:read+admin:<...>"``;
``python -c "import hashlib,sys;print(hashlib.sha256(sys.argv[1].encode()).hexdigest())" KEY``
prints the hash of a key.

>>> keys = parse_api_keys("ops:read+subscribe:" + hash_key("s3cret"))
>>> sorted(authenticate("s3cret", keys).scopes)
['read', 'subscribe']
>>> authenticate("wrong", keys) is None
True
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

SCOPES = frozenset({"read", "subscribe", "admin"})


@dataclass(frozen=True, slots=True)
class ApiKey:
    name: str
    scopes: frozenset[str]
    digest: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_api_keys(text: str) -> tuple[ApiKey, ...]:
    keys = []
    for entry in filter(None, (e.strip() for e in text.split(","))):
        parts = entry.split(":")
        if len(parts) != 3 or len(parts[2]) != 64:
            raise ValueError("each API key entry is name:scope+scope:sha256-hex")
        scopes = frozenset(parts[1].split("+"))
        unknown = scopes - SCOPES
        if unknown:
            raise ValueError(f"API key {parts[0]!r}: unknown scope(s) {sorted(unknown)}")
        keys.append(ApiKey(parts[0], scopes, parts[2].lower()))
    return tuple(keys)


def authenticate(presented: str, keys: tuple[ApiKey, ...]) -> ApiKey | None:
    digest = hash_key(presented)
    found = None
    for key in keys:
        if hmac.compare_digest(digest, key.digest):
            found = key
    return found
