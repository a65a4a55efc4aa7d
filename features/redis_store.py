"""The Redis state store: one EVALSHA per event, all events of a batch in one pipeline.

Redis does the least it can: deduplicate, update and roll up the customer's hash and return it;
window aggregates and features are computed here, by the same code as the twin's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from actions.policy import CapacityReservation
from engine.errors import InfrastructureError
from engine.ports import CAPACITY_TTL_SECONDS, CapacityKey, StoreLimits
from engine.types import CustomerState, Effects, StateUpdate
from features.buckets import AGGS, COLUMN_GROUPS, encode_bucket
from features.definitions import (
    AUM_COLS,
    DAY_KEEP,
    DEDUP_SLOT,
    DIGEST_BYTES,
    HOUR_KEEP,
    LAST_TIMES,
    LONGEST_DAYS,
    SESSION_COL,
    SESSIONS_KEPT,
    event_digest,
    fmt17,
    plan_ops,
)
from features.keys import CustomerKeys
from features.state import build_state, contact_field, decode_reply, split_fields

_AUM_KIND = {"balance": "b", "flow": "f", "aum": "a"}
# Digests per ``E`` field: a listpack value stays at most 64 bytes.
DIGESTS_PER_FIELD = 64 // DIGEST_BYTES


def _script(name: str) -> str:
    return resources.files("features").joinpath(name).read_text(encoding="utf-8")


def render_apply_script(limits: StoreLimits) -> str:
    """apply_event.lua with the catalog's layout and the store limits filled in."""
    values = {
        "AGGS": "".join(AGGS),
        "GROUPS": "{" + ",".join(f"{{{a + 1},{b}}}" for a, b in COLUMN_GROUPS) + "}",
        "NLAST": str(len(LAST_TIMES)),
        "SESSION_COL": str(SESSION_COL + 1),
        "SESSIONS_KEPT": str(SESSIONS_KEPT),
        "AUM_MAX": str(AUM_COLS[0] + 1),
        "AUM_MIN": str(AUM_COLS[1] + 1),
        "AUM_CLOSE": str(AUM_COLS[2] + 1),
        "DIGEST_BYTES": str(DIGEST_BYTES),
        "DIGESTS_PER_FIELD": str(DIGESTS_PER_FIELD),
        "HOUR_KEEP": str(HOUR_KEEP),
        "DAY_KEEP": str(DAY_KEEP),
        "LONGEST": str(LONGEST_DAYS),
        "HORIZON": fmt17(limits.dedup_horizon),
        "DEDUP_SLOT": str(DEDUP_SLOT),
        "LATENESS": fmt17(limits.allowed_lateness),
        "RETENTION": fmt17(limits.result_retention),
        "RETENTION_EX": str(max(1, math.ceil(limits.result_retention) + 60)),
        "TTL": str(int(limits.ttl)),
        "CONTACT_KEEP": fmt17(limits.contact_retention),
    }
    src = _script("apply_event.lua")
    for name, value in values.items():
        src = src.replace(f"__{name}__", value)
    return src


def script_args(up: StateUpdate, wall: str, digest: bytes) -> list[bytes | str]:
    """The ARGV of apply_event.lua for one event (see the script's header)."""
    plan = plan_ops(up.ops)
    args: list[bytes | str] = [
        digest,
        fmt17(up.ts),
        wall,
        "1" if up.ops else "0",
        encode_bucket(plan.delta),
        ",".join(str(s + 1) for s in plan.lasts),
        plan.session,
    ]
    op = plan.aum
    if op is None:
        args += ["", "", "", "", ""]
    else:
        args += [_AUM_KIND[op.kind], op.name, str(int(op.value)), str(op.flag), str(op.amount)]
    for name, value in plan.sets:
        args += [name, value]
    return args


class RedisStateStore:
    """``StateStore`` on Redis (standalone or Cluster: every customer key is hash-tagged)."""

    def __init__(self, client: aioredis.Redis, limits: StoreLimits, prefix: str = "vigil") -> None:
        self._redis = client
        self._limits = limits
        self._prefix = prefix
        self._apply_src = render_apply_script(limits)
        self._commit_src = _script("commit_effects.lua")
        self._apply_sha: str | None = None
        self._commit_sha: str | None = None
        self.round_trips = 0

    @classmethod
    def from_url(
        cls, url: str, limits: StoreLimits, prefix: str = "vigil", password: str | None = None
    ) -> RedisStateStore:
        client = aioredis.Redis.from_url(url, password=password, decode_responses=False)
        return cls(client, limits, prefix)

    async def _load(self) -> None:
        self._apply_sha = await self._redis.script_load(self._apply_src)
        self._commit_sha = await self._redis.script_load(self._commit_src)

    def _queue_apply(
        self,
        pipe: Any,
        updates: Sequence[StateUpdate],
        wall: float,
        capacity: Sequence[CapacityKey],
    ) -> None:
        """Queue one apply script per event, then one SCARD per capacity key."""
        sha, prefix, wall_text = self._apply_sha, self._prefix, fmt17(wall)
        for up in updates:
            keys = CustomerKeys(prefix, up.customer_id)
            digest = event_digest(up.event_id)
            args = script_args(up, wall_text, digest)
            pipe.evalsha(sha, 2, keys.state, keys.result(digest), *args)
        for key in capacity:
            pipe.scard(self._capacity_key(key))

    async def apply_raw(self, updates: Sequence[StateUpdate], wall: float) -> list[bytes]:
        """The scripts' raw replies (one round trip); ``apply`` decodes them."""
        if not updates:
            return []
        return await self._run(lambda pipe: self._queue_apply(pipe, updates, wall, ()))

    async def apply(self, updates: Sequence[StateUpdate], wall: float) -> list[CustomerState]:
        replies = await self.apply_raw(updates, wall)
        return [decode_reply(up.customer_id, r) for up, r in zip(updates, replies, strict=True)]

    def _capacity_key(self, key: CapacityKey) -> str:
        channel, day = key
        return f"{self._prefix}:cap:{{{channel}}}:{day}"

    async def apply_with_capacity(
        self, updates: Sequence[StateUpdate], wall: float, capacity: Sequence[CapacityKey]
    ) -> tuple[list[CustomerState], dict[CapacityKey, int]]:
        if not capacity:
            return await self.apply(updates, wall), {}
        replies = await self._run(lambda pipe: self._queue_apply(pipe, updates, wall, capacity))
        states = [decode_reply(up.customer_id, r) for up, r in zip(updates, replies, strict=False)]
        counts = dict(zip(capacity, (int(n) for n in replies[len(updates) :]), strict=True))
        return states, counts

    async def commit(
        self, effects: Sequence[Effects], reservations: Sequence[CapacityReservation] = ()
    ) -> None:
        todo = [e for e in effects if e]
        if not todo and not reservations:
            return

        def queue(pipe: Any) -> None:
            for r in reservations:
                key = self._capacity_key((r.channel, r.day))
                pipe.sadd(key, r.key)
                pipe.expire(key, CAPACITY_TTL_SECONDS)
            for eff in todo:
                key = CustomerKeys(self._prefix, eff.customer_id).state
                args: list[str] = [str(self._limits.ttl), str(len(eff.fired))]
                for rule_id, fired in sorted(eff.fired.items()):
                    args += [rule_id, fmt17(fired.ts), fired.decision_id]
                for contact in eff.contacts:
                    args += contact_field(contact)
                pipe.evalsha(self._commit_sha, 1, key, *args)

        await self._run(queue)

    async def _run(self, queue: Callable[[Any], None]) -> list[Any]:
        """Run one pipeline (one round trip); load the scripts first if Redis lost them."""
        for attempt in (1, 2):
            try:
                if self._apply_sha is None:
                    await self._load()
                pipe = self._redis.pipeline(transaction=False)
                queue(pipe)
                self.round_trips += 1
                replies = await pipe.execute(raise_on_error=True)
                return list(replies)
            except NoScriptError:
                # Redis restarted or flushed its script cache: load again, once.
                self._apply_sha = None
                if attempt == 2:
                    raise InfrastructureError("Redis refused the Vigil scripts twice") from None
            except (RedisError, OSError) as exc:
                raise InfrastructureError(f"Redis failed: {type(exc).__name__}: {exc}") from exc
        raise InfrastructureError("unreachable")  # pragma: no cover

    async def read(self, customer_id: str) -> CustomerState | None:
        """The customer's state as of their watermark; read-only (one HGETALL)."""
        key = CustomerKeys(self._prefix, customer_id).state
        try:
            flat = await self._redis.hgetall(key)
        except (RedisError, OSError) as exc:
            raise InfrastructureError(f"Redis failed: {type(exc).__name__}: {exc}") from exc
        pairs = [x for k, v in flat.items() for x in (k, v)]
        buckets, fields = split_fields(pairs)
        if "wm" not in fields:
            return None
        return build_state(customer_id, "applied", float(fields["wm"]), buckets, fields)

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        await self._redis.aclose()
