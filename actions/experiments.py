"""Randomised experiments over decisions: assignment, exposure and uplift. Pure.

**Assignment.** A customer's variant in an experiment is fixed by a hash of the experiment id and
the customer id (SHA-256, so every process, every restart and replay agree), mapped to [0, 1)
and cut by the variants' weights in their catalog order. Changing the weights moves customers;
renaming the experiment reshuffles everyone.

**Exposure.** An experiment *applies* to a decision when it is running at the event time and one
of the decision's alerts has an alert type in the experiment's scope. The customer's variant then
shapes arbitration: a control group sends nothing, a variant with ``actions`` may only use those,
others arbitrate normally. Experiments may overlap (each is randomised on its own, so each one's
uplift stays unbiased): a control in any of them holds the action back and ``actions`` lists
intersect. A customer is *exposed* from the first decision an experiment applied to.

**Outcomes.** An outcome event's decision is recorded with the experiments the customer was
exposed to before it (from the alerts in their state), so uplift is

    rate(label | variant) - rate(label | control),  rate = outcomes of exposed customers / exposed

counted live by the pipeline (``experiment_counts``) and over decision records by replay
(``summarize``) with the same definitions.

>>> from actions.catalog import ExperimentSpec, VariantSpec
>>> exp = ExperimentSpec(id="e1", description="d", variants=(
...     VariantSpec(id="control", weight=1, control=True), VariantSpec(id="offer", weight=1)))
>>> assign(exp, "c1").id == assign(exp, "c1").id
True
>>> 0.0 <= bucket("e1", "c1") < 1.0
True
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from itertools import accumulate
from typing import Any, NamedTuple

from actions.catalog import ActionCatalog, ExperimentSpec, VariantSpec
from engine.types import Fired


def bucket(experiment_id: str, customer_id: str) -> float:
    """A stable number in [0, 1) for a customer in an experiment (SHA-256, not ``hash()``)."""
    digest = hashlib.sha256(f"{experiment_id}\x1f{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign(exp: ExperimentSpec, customer_id: str) -> VariantSpec:
    """The customer's variant: the bucket cut by the variants' weights, in catalog order."""
    return _pick(exp, tuple(accumulate(v.weight for v in exp.variants)), customer_id)


def _pick(exp: ExperimentSpec, cumulative: tuple[float, ...], customer_id: str) -> VariantSpec:
    point = bucket(exp.id, customer_id) * cumulative[-1]
    for variant, upto in zip(exp.variants, cumulative, strict=True):
        if point < upto:
            return variant
    return exp.variants[-1]


def running(exp: ExperimentSpec, ts: float) -> bool:
    return exp.start_ts <= ts < exp.end_ts


class Arm(NamedTuple):
    """An experiment that applies to a decision, the customer's variant, and whether this is the
    customer's first exposure to it."""

    experiment: ExperimentSpec
    variant: VariantSpec
    first_exposure: bool


class ExperimentView(NamedTuple):
    """What a decision knows about experiments; ``record()`` is its audit form."""

    assignments: tuple[tuple[str, str], ...]
    applied: tuple[Arm, ...]
    exposed: tuple[tuple[str, str], ...]

    @property
    def control(self) -> str | None:
        """The experiment whose control group holds this decision's action back, if any."""
        for arm in self.applied:
            if arm.variant.control:
                return arm.experiment.id
        return None

    @property
    def allowed(self) -> frozenset[str] | None:
        """The actions the applied variants allow (their intersection); None: no limit."""
        out: frozenset[str] | None = None
        for arm in self.applied:
            if arm.variant.actions is not None:
                ids = frozenset(arm.variant.actions)
                out = ids if out is None else out & ids
        return out

    def record(self) -> dict[str, Any]:
        return {
            "assignments": dict(self.assignments),
            "applied": [
                {
                    "id": a.experiment.id,
                    "variant": a.variant.id,
                    "control": a.variant.control,
                    "first_exposure": a.first_exposure,
                }
                for a in self.applied
            ],
            "exposed": dict(self.exposed),
        }


NO_EXPERIMENTS = ExperimentView((), (), ())


def view(
    catalog: ActionCatalog,
    customer_id: str,
    ts: float,
    hit_types: Iterable[str],
    fired: Mapping[str, Fired],
    rule_types: Mapping[str, str],
    decision_id: str,
) -> ExperimentView:
    """The experiments of one decision: assignments, those that apply, exposure.

    ``hit_types``: the alert types of the decision's alerts. ``fired`` and ``rule_types``: the
    customer's earlier alerts (rule id -> latest) and each rule's alert type, from which earlier
    exposure is known without extra state.
    """
    live = [x for x in catalog.experiment_index if x.start <= ts < x.end]
    if not live:
        return NO_EXPERIMENTS
    types = set(hit_types)
    applied: list[Arm] = []
    assignments: list[tuple[str, str]] = []
    exposed: list[tuple[str, str]] = []
    for x in live:
        variant = _pick(x.spec, x.cumulative, customer_id)
        assignment = (x.spec.id, variant.id)
        assignments.append(assignment)
        earlier = False
        if fired:
            for rule_id, f in fired.items():
                if (
                    f.decision_id != decision_id
                    and rule_types.get(rule_id) in x.alert_types
                    and x.start <= f.ts <= ts
                ):
                    earlier = True
                    break
        if not types.isdisjoint(x.alert_types):
            applied.append(_new(Arm, (x.spec, variant, not earlier)))
            exposed.append(assignment)
        elif earlier:
            exposed.append(assignment)
    return _new(ExperimentView, (tuple(assignments), tuple(applied), tuple(exposed)))


_new = tuple.__new__


def experiment_counts(
    record: Mapping[str, Any],
) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    """What the live metrics count for one decision record: (experiment, variant) of each first
    exposure, and (experiment, variant, label) of an outcome of an exposed customer.

    >>> rec = {"event_type": "outcome", "input": {"label": "churned"},
    ...        "experiment": {"applied": [], "exposed": {"e1": "control"}}}
    >>> experiment_counts(rec)
    ([], [('e1', 'control', 'churned')])
    """
    exp = record.get("experiment") or {}
    exposures = [
        (a["id"], a["variant"]) for a in exp.get("applied") or () if a.get("first_exposure")
    ]
    outcomes: list[tuple[str, str, str]] = []
    if record.get("event_type") == "outcome":
        label = str((record.get("input") or {}).get("label", ""))
        outcomes = [(e, v, label) for e, v in sorted((exp.get("exposed") or {}).items())]
    return exposures, outcomes


def summarize(
    records: Iterable[Mapping[str, Any]], controls: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Uplift per experiment from decision records (replay's report uses this).

    Per experiment and variant: ``exposed`` customers, ``outcomes`` (label -> outcome events of
    exposed customers), ``rates`` (outcomes / exposed) and ``uplift`` (rate minus the control's).
    ``controls`` names each experiment's control variant (default: read from the records).

    >>> recs = [
    ...   {"event_type": "app", "experiment": {"applied": [{"id": "e", "variant": "control",
    ...    "control": True, "first_exposure": True}], "exposed": {"e": "control"}}},
    ...   {"event_type": "app", "experiment": {"applied": [{"id": "e", "variant": "offer",
    ...    "control": False, "first_exposure": True}], "exposed": {"e": "offer"}}},
    ...   {"event_type": "outcome", "input": {"label": "churned"},
    ...    "experiment": {"applied": [], "exposed": {"e": "control"}}},
    ... ]
    >>> summarize(recs)["e"]["variants"]["offer"]["uplift"]
    {'churned': -1.0}
    """
    exposed: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    outcomes: dict[str, dict[str, dict[str, int]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(int))
    )
    control_of: dict[str, str] = dict(controls or {})
    for record in records:
        for arm in (record.get("experiment") or {}).get("applied") or ():
            if arm.get("control"):
                control_of.setdefault(arm["id"], arm["variant"])
        firsts, outs = experiment_counts(record)
        for e, v in firsts:
            exposed[e][v] += 1
        for e, v, label in outs:
            outcomes[e][v][label] += 1
    report: dict[str, Any] = {}
    for e in sorted(set(exposed) | set(outcomes)):
        labels = sorted({lab for v in outcomes[e].values() for lab in v})
        variants = sorted(set(exposed[e]) | set(outcomes[e]))
        rates = {
            v: {
                lab: outcomes[e][v][lab] / exposed[e][v] if exposed[e][v] else 0.0 for lab in labels
            }
            for v in variants
        }
        control = control_of.get(e)
        report[e] = {
            "control": control,
            "variants": {
                v: {
                    "exposed": exposed[e][v],
                    "outcomes": {lab: outcomes[e][v][lab] for lab in labels},
                    "rates": rates[v],
                    "uplift": (
                        {lab: rates[v][lab] - rates[control][lab] for lab in labels}
                        if control in rates and v != control
                        else None
                    ),
                }
                for v in variants
            },
        }
    return report
