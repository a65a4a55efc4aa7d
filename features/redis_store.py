"""The Redis state store: one EVALSHA per event, all events of a batch in one pipeline."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources

import orjson
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from engine.errors import InfrastructureError
from engine.ports import StoreLimits
from engine.types import CustomerState, Effects, StateUpdate
from features.buckets import aggregate_buckets
from features.definitions import AUM_CLOSE_DAYS, RETENTION_BUCKETS, WINDOWS
from features.keys import CustomerKeys
from features.state import contact_member, decode_result, num

_WINDOWS_ARG = ",".join(f"{w.name}:{w.resolution}:{w.buckets}" for w in WINDOWS)
_RETENTION_ARG = ",".join(f"{res}:{n}" for res, n in RETENTION_BUCKETS.items())


def _script(name: str) -> str:
    return resources.files("features").joinpath(name).read_text(encoding="utf-8")


class RedisStateStore:
    """``StateStore`` on Redis (standalone or Cluster: every customer key is hash-tagged)."""

    def __init__(self, client: aioredis.Redis, limits: StoreLimits, prefix: str = "vigil") -> None:
        self._redis = client
        self._limits = limits
        self._prefix = prefix
        self._apply_src = _script("apply_event.lua")
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

    async def apply(self, updates: Sequence[StateUpdate], wall: float) -> list[CustomerState]:
        if not updates:
            return []
        lim = self._limits
        fixed = (
            num(wall),
            num(lim.dedup_horizon),
            num(lim.allowed_lateness),
            num(lim.result_retention),
            str(lim.ttl),
            num(lim.contact_retention),
            _WINDOWS_ARG,
            _RETENTION_ARG,
            str(AUM_CLOSE_DAYS),
        )

        def queue(pipe: aioredis.client.Pipeline) -> None:
            for up in updates:
                args: list[str] = [up.event_id, num(up.ts), *fixed]
                for op in up.ops:
                    args.extend(op.as_args())
                keys = CustomerKeys(self._prefix, up.customer_id).all()
                pipe.evalsha(self._apply_sha, len(keys), *keys, *args)  # type: ignore[arg-type]

        replies = await self._run(queue)
        out = []
        for up, (status, payload) in zip(updates, replies, strict=True):
            doc = orjson.loads(payload)
            out.append(decode_result(up.customer_id, doc, status.decode()))
        return out

    async def commit(self, effects: Sequence[Effects]) -> None:
        todo = [e for e in effects if e]
        if not todo:
            return

        def queue(pipe: aioredis.client.Pipeline) -> None:
            for eff in todo:
                keys = CustomerKeys(self._prefix, eff.customer_id)
                args: list[str] = [str(self._limits.ttl), str(len(eff.fired))]
                for rule_id, fired in sorted(eff.fired.items()):
                    args += [rule_id, num(fired.ts), fired.decision_id]
                for contact in eff.contacts:
                    args += [contact_member(contact), num(contact.ts)]
                pipe.evalsha(self._commit_sha, 2, keys.fired, keys.contacts, *args)  # type: ignore[arg-type]

        await self._run(queue)

    async def _run(self, queue: object) -> list:  # type: ignore[type-arg]
        """Run one pipeline (one round trip); load the scripts first if Redis lost them."""
        assert callable(queue)
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
        keys = CustomerKeys(self._prefix, customer_id)
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.hgetall(keys.buckets)
            pipe.hgetall(keys.state)
            pipe.hgetall(keys.fired)
            pipe.zrange(keys.contacts, 0, -1, withscores=True)
            buckets, state, fired, contacts = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise InfrastructureError(f"Redis failed: {type(exc).__name__}: {exc}") from exc
        if not state:
            return None
        str_state = {k.decode(): v.decode() for k, v in state.items()}
        now = float(str_state.get("wm", 0.0))
        windows, closes = aggregate_buckets({k.decode(): float(v) for k, v in buckets.items()}, now)
        doc = {
            "st": "applied",
            "now": now,
            "w": windows,
            "l": closes,
            "s": str_state,
            "f": {k.decode(): v.decode() for k, v in fired.items()},
            "c": [x for m, score in contacts for x in (m.decode(), score)],
        }
        return decode_result(customer_id, doc)

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        await self._redis.aclose()
