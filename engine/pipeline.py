"""The DecisionPipeline: the only place the stage order is written.

    validate -> features -> score -> rules -> next-best action -> effects -> emit (+ audit)

One batch at a time. The live Faust agent, the API's what-if and replay build the same pipeline
and differ only in the adapters they pass in (state store, sink, clock).

Failure policy: invalid input becomes a dead-letter record and the batch goes on; an
infrastructure error (Redis, Kafka) propagates to the driver, which retries the whole batch
without acknowledging it. A retried batch changes nothing twice: events are deduplicated by
event_id, a redelivered event is decided again from the state stored at its first application,
and every output carries a deterministic id.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from actions.catalog import ActionCatalog
from actions.policy import CapacityReservation, bank_day
from engine.clock import Clock
from engine.config import Settings
from engine.dead_letter import InputRecord, dead_letter
from engine.decide import (
    Decision,
    DecisionContext,
    action_message,
    alert_message,
    decide,
    merge_effects,
    with_batch_effects,
)
from engine.events import AnyEvent, InvalidEvent, parse_event
from engine.ports import OutputSink, OutRecord, PipelineMetrics, StateStore
from engine.types import Effects, StateUpdate
from features.definitions import ops_for_dict
from online_models.catalog import CATALOG
from online_models.scorer import ModelScorer
from rules.evaluator import RuleSet


@dataclass
class BatchResult:
    decisions: list[Decision] = field(default_factory=list)
    dead_letters: int = 0
    duplicates: int = 0


class DecisionPipeline:
    def __init__(
        self,
        *,
        store: StateStore,
        sink: OutputSink,
        scorer: ModelScorer,
        rules: Callable[[], RuleSet],
        catalog: ActionCatalog,
        settings: Settings,
        clock: Clock,
        metrics: PipelineMetrics,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.sink = sink
        self.scorer = scorer
        self._rules = rules
        self.catalog = catalog
        self.settings = settings
        self.clock = clock
        self._ctx_cache: tuple[RuleSet, DecisionContext] | None = None

    def context(self) -> DecisionContext:
        """The decision context for the current rule set (rebuilt when the rules reload)."""
        ruleset = self._rules()
        if self._ctx_cache is None or self._ctx_cache[0] is not ruleset:
            used: set[str] = set()
            for rule in ruleset.rules:
                used |= rule.when.names
            for spec in CATALOG:
                used |= set(spec.inputs)
            used |= {"aum", "tier", "aum_peak_30d"}
            ctx = DecisionContext(
                scorer=self.scorer,
                rules=ruleset,
                catalog=self.catalog,
                policy=self.settings.policy,
                audit_features=tuple(
                    sorted(
                        n
                        for n in used
                        if not n.startswith(("score_", "cold_", "event_", "profile_", "consent_"))
                    )
                ),
            )
            self._ctx_cache = (ruleset, ctx)
        return self._ctx_cache[1]

    async def process(self, records: Sequence[InputRecord]) -> BatchResult:
        """Decide a batch; returns only when every output is durable."""
        started = time.perf_counter()
        now = self.clock.now()
        w = self.settings.worker
        out: list[OutRecord] = []
        result = BatchResult()
        valid: list[tuple[InputRecord, AnyEvent]] = []
        for rec in records:
            parsed = parse_event(
                rec.value,
                now=now,
                max_bytes=w.max_event_bytes,
                max_future_seconds=w.max_future_seconds,
            )
            if isinstance(parsed, InvalidEvent):
                msg = dead_letter(rec, parsed, now)
                out.append(
                    OutRecord("dlq", parsed.customer_id or f"{rec.topic}:{rec.partition}", msg)
                )
                self.metrics.dead_letter(parsed.reason.value)
                result.dead_letters += 1
            else:
                valid.append((rec, parsed))
        t_validate = time.perf_counter()
        updates = [
            StateUpdate(ev.customer_id, ev.event_id, ev.epoch, ops_for_dict(ev.__dict__))
            for _, ev in valid
        ]
        ctx = self.context()
        policy = ctx.compiled_policy
        # Bank-wide daily capacity: read with the features, one round trip for the batch.
        capacity_keys = sorted(
            {
                (channel, bank_day(ev.epoch, policy))
                for _, ev in valid
                for channel in policy.daily_capacity
            }
        )
        states, capacity = await self.store.apply_with_capacity(updates, now, capacity_keys)
        t_state = time.perf_counter()

        batch_effects: dict[str, Effects] = {}
        reservations: dict[str, CapacityReservation] = {}
        # The models do not change within a batch: score it at once (the same numbers).
        batch_scores = self.scorer.score_many([s.features for s in states])
        for (rec, event), state, scores in zip(valid, states, batch_scores, strict=True):
            state = with_batch_effects(state, batch_effects.get(event.customer_id))
            day = bank_day(event.epoch, policy) if policy.daily_capacity else ""
            used = {
                channel: capacity.get((channel, day), 0)
                + sum(1 for r in reservations.values() if r.channel == channel and r.day == day)
                for channel in policy.daily_capacity
            }
            decision = decide(event, state, ctx, decided_at=now, capacity_used=used, scores=scores)
            for r in decision.reservations:
                reservations[r.key] = r
            result.decisions.append(decision)
            if decision.effects:
                batch_effects[event.customer_id] = merge_effects(
                    batch_effects.get(event.customer_id), decision.effects
                )
            waited = None if rec.timestamp is None else now - rec.timestamp
            self.metrics.decided(event.type, state.status, decision, waited)
            key = event.customer_id
            out.extend(OutRecord("alerts", key, alert_message(a)) for a in decision.alerts)
            out.extend(OutRecord("actions", key, action_message(a)) for a in decision.actions)
            out.append(OutRecord("decisions", key, decision.record))
            if state.status == "duplicate":
                result.duplicates += 1
        t_decide = time.perf_counter()
        await self.store.commit(list(batch_effects.values()), list(reservations.values()))
        t_commit = time.perf_counter()
        await self.sink.emit(out)
        t_emit = time.perf_counter()
        self.metrics.batch(
            len(records),
            (
                ("validate", t_validate - started),
                ("state", t_state - t_validate),
                ("decide", t_decide - t_state),
                ("commit", t_commit - t_decide),
                ("emit", t_emit - t_commit),
            ),
        )
        return result
