"""The replay's output sink and its report.

``ReportSink`` implements the ``OutputSink`` port: it streams every decision record to
``decisions.jsonl`` (one compact JSON object per line, in the order decided) and keeps only the
few facts the report needs — counts, alerts, actions, outcomes, each model's highest score per
customer and day — so memory stays flat in the number of events. ``build`` turns them into the
``report.json`` document; ``compare`` sets two reports side by side.
"""

from __future__ import annotations

from array import array
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson

from engine.ports import OutRecord
from replay.evaluation import (
    DEFAULT_LABELS,
    AlertFact,
    OutcomeFact,
    ScoreExample,
    definitions,
    evaluate_alerts,
    evaluate_model,
    lead_histogram,
    outcome_index,
)
from replay.sources import SourceItem

MAX_LISTED_INVALID = 100
MAX_LISTED_DIFFERENCES = 200
_DUMP = orjson.OPT_APPEND_NEWLINE


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_NOT_SUPPRESSED = frozenset({"chosen", "outranked"})


def epoch_of(iso_text: str) -> float:
    """An ISO 8601 time with an offset as seconds since the epoch; Vigil's own UTC format
    (``engine.events.iso``) is read without a datetime.

    >>> epoch_of("1970-01-02T00:00:01.500+00:00"), epoch_of("1970-01-02T08:00:00+08:00")
    (86401.5, 86400.0)
    """
    if len(iso_text) == 29 and iso_text.endswith("+00:00") and iso_text[10] == "T":
        try:
            days = date.fromisoformat(iso_text[:10]).toordinal() - _EPOCH_ORDINAL
            return (
                days * 86400
                + int(iso_text[11:13]) * 3600
                + int(iso_text[14:16]) * 60
                + float(iso_text[17:23])
            )
        except ValueError:
            pass
    return datetime.fromisoformat(iso_text).timestamp()


OUTPUT_FILES: dict[str, str] = {
    "decisions": "decisions.jsonl",
    "alerts": "alerts.jsonl",
    "actions": "actions.jsonl",
    "dlq": "dead_letters.jsonl",
}


class ReportSink:
    """``OutputSink`` of a replay: every output record to a JSONL file per role (what the worker
    would have written to each topic), and the few facts the report needs into aggregates."""

    def __init__(self, *, line_numbers: bool = True) -> None:
        self.files: dict[str, IO[bytes]] = {}
        self._out: IO[bytes] | None = None
        self._line_numbers = line_numbers
        self.decided = 0
        self.first_time: str | None = None
        self.last_time: str | None = None
        self.customers: set[str] = set()
        self.event_types: Counter[str] = Counter()
        self.state_status: Counter[str] = Counter()
        self.rule_suppressions: Counter[str] = Counter()
        self.action_suppressions: Counter[str] = Counter()
        self.rule_errors: Counter[str] = Counter()
        self.invalid_by_reason: Counter[str] = Counter()
        self.invalid_listed: list[dict[str, Any]] = []
        self.invalid_total = 0
        # (alert_id, customer_id, event_time, type, rule_id, event_id, severity)
        self.alerts: list[tuple[str, str, str, str, str, str, str]] = []
        # (action_msg_id, customer_id, event_time, action_id, channel, event_id, lead_grade)
        self.actions: list[tuple[str, str, str, str, str, str, str]] = []
        self.outcomes: list[tuple[str, str, str]] = []  # (customer_id, event_time, label)
        # Each model's highest score per customer and UTC day, compactly: model -> customer ->
        # array of (day number, score, epoch of that score) triples, in the order first seen.
        self.best_scores: dict[str, dict[str, array[float]]] = defaultdict(dict)
        self._day_numbers: dict[str, int] = {}
        self.cold: Counter[str] = Counter()
        self.scored: Counter[str] = Counter()
        self.model_versions: dict[str, Any] = {}
        self.ruleset_versions: set[str] = set()

    def attach(self, files: Mapping[str, IO[bytes]]) -> None:
        """Write each role's records to its file from now on (``decisions`` at least)."""
        self.files = dict(files)
        self._out = self.files.get("decisions")

    def detach(self) -> None:
        self.files = {}
        self._out = None

    async def emit(self, records: Sequence[OutRecord]) -> None:
        files = self.files
        for rec in records:
            role = rec.role
            if role == "decisions":
                self._decision(rec.value)
                continue
            out = files.get(role)
            if out is not None:
                out.write(orjson.dumps(rec.value, option=_DUMP))
            if role == "alerts":
                v = rec.value
                self.alerts.append(
                    (
                        v["alert_id"],
                        v["customer_id"],
                        v["event_time"],
                        v["type"],
                        v["rule_id"],
                        v["event_id"],
                        v["severity"],
                    )
                )
            elif role == "actions":
                v = rec.value
                self.actions.append(
                    (
                        v["action_msg_id"],
                        v["customer_id"],
                        v["event_time"],
                        v["action_id"],
                        v["channel"],
                        v["event_id"],
                        str(v.get("lead_grade", "")),
                    )
                )
            elif role == "dlq":
                self._dead_letter(rec.value)

    def _decision(self, v: dict[str, Any]) -> None:
        if self._out is not None:
            self._out.write(orjson.dumps(v, option=_DUMP))
        self.decided += 1
        et: str = v["event_time"]
        if self.first_time is None or et < self.first_time:
            self.first_time = et
        if self.last_time is None or et > self.last_time:
            self.last_time = et
        cid: str = v["customer_id"]
        self.customers.add(cid)
        etype = v["event_type"]
        self.event_types[etype] += 1
        self.state_status[v.get("state_status", "applied")] += 1
        rules = v.get("rules") or {}
        if rules.get("suppressed"):
            for sup in rules["suppressed"]:
                self.rule_suppressions[sup.get("reason", "unknown")] += 1
        if rules.get("errors"):
            for err in rules["errors"]:
                self.rule_errors[err.get("rule_id", "unknown")] += 1
        candidates = (v.get("actions") or {}).get("candidates")
        if candidates:
            for c in candidates:
                status = c.get("status")
                if status not in _NOT_SUPPRESSED:
                    self.action_suppressions[str(status)] += 1
        if etype == "outcome":
            self.outcomes.append((cid, et, str((v.get("input") or {}).get("label"))))
        scores = v.get("scores")
        if not scores:
            return
        day = self._day_numbers.get(et[:10])
        if day is None:
            day = self._day_numbers[et[:10]] = date.fromisoformat(et[:10]).toordinal()
        for name, s in scores.items():
            score = float(s["score"])
            per_customer = self.best_scores[name]
            triples = per_customer.get(cid)
            if triples is None:
                triples = per_customer[cid] = array("d")
            i = len(triples) - 3
            while i >= 0 and triples[i] != day:  # usually the last day: events come in order
                i -= 3
            if i < 0:
                triples.extend((day, score, epoch_of(et)))
            elif score > triples[i + 1]:
                triples[i + 1] = score
                triples[i + 2] = epoch_of(et)
            self.scored[name] += 1
            if s.get("cold"):
                self.cold[name] += 1
            self.model_versions[name] = s.get("version")  # the latest (snapshots change it)

    def score_examples(self, name: str) -> list[ScoreExample]:
        """A model's examples: the highest score per customer and UTC day."""
        out = []
        for cid in sorted(self.best_scores.get(name, {})):
            t = self.best_scores[name][cid]
            for i in range(0, len(t), 3):
                day = date.fromordinal(int(t[i])).isoformat()
                out.append(ScoreExample(cid, day, t[i + 2], t[i + 1]))
        return out

    def _dead_letter(self, v: dict[str, Any]) -> None:
        reason = v["reason"]
        src = v["source"]
        self._invalid(reason, v["message"], src["topic"], src["partition"], src["offset"], v)

    def reject(self, item: SourceItem) -> None:
        """A record the source could not turn into an event (never reached the pipeline)."""
        reason, message = item.rejected or ("unreadable", "unreadable record")
        self._invalid(reason, message, item.source, item.partition, item.offset, None)

    def _invalid(
        self,
        reason: str,
        message: str,
        source: str,
        partition: int,
        offset: int,
        dlq: dict[str, Any] | None,
    ) -> None:
        self.invalid_total += 1
        self.invalid_by_reason[reason] += 1
        if len(self.invalid_listed) < MAX_LISTED_INVALID:
            entry: dict[str, Any] = {"source": source}
            if self._line_numbers:
                entry["line"] = offset
            else:
                entry["partition"] = partition
                entry["offset"] = offset
            entry["reason"] = reason
            entry["message"] = message
            if dlq is not None and dlq.get("event_id"):
                entry["event_id"] = dlq["event_id"]
            self.invalid_listed.append(entry)

    # --- the report ---------------------------------------------------------------------

    def alert_facts(self) -> list[AlertFact]:
        return [AlertFact(a[0], a[1], epoch_of(a[2]), a[3], a[4]) for a in self.alerts]

    def outcome_facts(self) -> list[OutcomeFact]:
        return [OutcomeFact(c, epoch_of(t), label) for c, t, label in self.outcomes]

    def build(
        self,
        *,
        horizon_days: float,
        labels: Mapping[str, str] = DEFAULT_LABELS,
        rule_types: Mapping[str, str] | None = None,
        learned: Mapping[str, int] | None = None,
        learner: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The report of this run (without the run's own figures: events, wall time, inputs)."""
        horizon = horizon_days * 86400.0
        start = epoch_of(self.first_time) if self.first_time else 0.0
        end = epoch_of(self.last_time) if self.last_time else 0.0
        days = _days(self.first_time, self.last_time)
        outcomes = self.outcome_facts()
        evaluation = evaluate_alerts(
            self.alert_facts(),
            outcomes,
            horizon=horizon,
            data_start=start,
            data_end=end,
            labels=labels,
            rule_types=rule_types,
        )
        lead = {
            t: lead_histogram(m.get("lead_hours") or [])
            for t, m in evaluation["by_type"].items()
            if m.get("label")
        }
        index = outcome_index(outcomes)
        models: dict[str, Any] = {}
        for name in sorted(self.best_scores):
            examples = self.score_examples(name)
            label = labels.get(name)
            result = evaluate_model(
                examples,
                index.get(label) if label else None,
                horizon=horizon,
                data_end=end,
            )
            scored = self.scored[name]
            models[name] = {
                "label": label,
                **result,
                "version": self.model_versions.get(name),
                "scored": scored,
                "cold_share": round(self.cold[name] / scored, 6) if scored else None,
                "learned_examples": (learned or {}).get(name, 0),
            }
            if learner and name in learner:
                # the learner's own progressive validation (prediction at snapshot time)
                models[name]["learner_health"] = learner[name]
        alerts_by_type = Counter(a[3] for a in self.alerts)
        per_day: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(days, 0))
        for a in self.alerts:
            per_day[a[3]][a[2][:10]] = per_day[a[3]].get(a[2][:10], 0) + 1
        actions_per_day: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(days, 0))
        for x in self.actions:
            actions_per_day[x[4]][x[2][:10]] = actions_per_day[x[4]].get(x[2][:10], 0) + 1
        suppressed = self.rule_suppressions + self.action_suppressions
        return {
            "decided": self.decided,
            "data": {
                "first_event_time": self.first_time,
                "last_event_time": self.last_time,
                "days": len(days),
                "customers": len(self.customers),
                "event_types": _sorted(self.event_types),
                "state_status": _sorted(self.state_status),
            },
            "alerts": {
                "total": len(self.alerts),
                "by_type": _sorted(alerts_by_type),
                "by_rule": _sorted(Counter(a[4] for a in self.alerts)),
                "by_severity": _sorted(Counter(a[6] for a in self.alerts)),
                "customers": len({a[1] for a in self.alerts}),
                "per_day": {
                    "days": days,
                    "by_type": {t: list(per_day[t].values()) for t in sorted(alerts_by_type)},
                },
            },
            "actions": {
                "total": len(self.actions),
                "by_channel": _sorted(Counter(x[4] for x in self.actions)),
                "by_action": _sorted(Counter(x[3] for x in self.actions)),
                "by_lead_grade": _sorted(Counter(x[6] for x in self.actions)),
                "customers": len({x[1] for x in self.actions}),
                "per_day": {
                    "days": days,
                    "by_channel": {
                        c: list(actions_per_day[c].values()) for c in sorted(actions_per_day)
                    },
                },
            },
            "suppressed": {
                "total": sum(suppressed.values()),
                "by_reason": _sorted(suppressed),
                "rules": _sorted(self.rule_suppressions),
                "actions": _sorted(self.action_suppressions),
            },
            "rule_errors": _sorted(self.rule_errors),
            "invalid": {
                "total": self.invalid_total,
                "by_reason": _sorted(self.invalid_by_reason),
                "listed": len(self.invalid_listed),
                "first": self.invalid_listed,
            },
            "horizon_days": horizon_days,
            "evaluation": {
                t: {k: v for k, v in m.items() if k != "lead_hours"}
                for t, m in evaluation["by_type"].items()
            },
            "evaluation_by_rule": {
                r: {k: v for k, v in m.items() if k != "lead_hours"}
                for r, m in evaluation["by_rule"].items()
            },
            "lead_time_distribution": lead,
            "lead_hours": {
                t: m.get("lead_hours") or []
                for t, m in evaluation["by_type"].items()
                if m.get("label")
            },
            "models": models,
            "definitions": definitions(labels, horizon_days),
        }


def compare(champion: ReportSink, challenger: ReportSink) -> dict[str, Any]:
    """Alerts and actions only one of two runs raised (by their deterministic ids)."""

    def diff(
        mine: list[tuple[str, ...]], theirs: list[tuple[str, ...]], fields: tuple[str, ...]
    ) -> tuple[list[dict[str, str]], int, dict[str, int]]:
        other = {x[0] for x in theirs}
        only = [x for x in mine if x[0] not in other]
        by_key = Counter(x[4] for x in only)
        listed = [dict(zip(fields, x, strict=True)) for x in only[:MAX_LISTED_DIFFERENCES]]
        return listed, len(only), _sorted(by_key)

    alert_fields = ("alert_id", "customer_id", "event_time", "type", "rule_id", "event_id")
    action_fields = ("action_msg_id", "customer_id", "event_time", "action_id", "channel")
    a_champ, n_a_champ, r_a_champ = diff(
        [x[:6] for x in champion.alerts], [x[:6] for x in challenger.alerts], alert_fields
    )
    a_chall, n_a_chall, r_a_chall = diff(
        [x[:6] for x in challenger.alerts], [x[:6] for x in champion.alerts], alert_fields
    )
    x_champ, n_x_champ, c_x_champ = diff(
        [x[:5] for x in champion.actions], [x[:5] for x in challenger.actions], action_fields
    )
    x_chall, n_x_chall, c_x_chall = diff(
        [x[:5] for x in challenger.actions], [x[:5] for x in champion.actions], action_fields
    )
    return {
        "identity": (
            "Alerts are matched by alert_id (customer, event and rule), actions by action_msg_id "
            "(customer, event and action): the same rule firing on the same event is the same "
            "alert in both runs."
        ),
        "alerts_both": len(champion.alerts) - n_a_champ,
        "alerts_only_champion": {"total": n_a_champ, "by_rule": r_a_champ, "first": a_champ},
        "alerts_only_challenger": {"total": n_a_chall, "by_rule": r_a_chall, "first": a_chall},
        "actions_both": len(champion.actions) - n_x_champ,
        "actions_only_champion": {"total": n_x_champ, "by_channel": c_x_champ, "first": x_champ},
        "actions_only_challenger": {
            "total": n_x_chall,
            "by_channel": c_x_chall,
            "first": x_chall,
        },
    }


def _sorted(counter: Mapping[str, int]) -> dict[str, int]:
    return {k: counter[k] for k in sorted(counter)}


def _days(first: str | None, last: str | None) -> list[str]:
    """Every UTC day from the first to the last event time, as ``YYYY-MM-DD``."""
    if not first or not last:
        return []
    a, b = date.fromisoformat(first[:10]), date.fromisoformat(last[:10])
    return [(a + timedelta(days=i)).isoformat() for i in range((b - a).days + 1)]


def write_json(path: Path, doc: Mapping[str, Any]) -> None:
    path.write_bytes(
        orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS) + b"\n"
    )


def utc_now_iso() -> str:
    return datetime.now(tz=UTC).isoformat(timespec="seconds")
