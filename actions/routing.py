"""Lead routing: the three-layer funnel of the domain brief. Pure.

A decision's *lead score* combines its evidence as independent probabilities (a noisy-OR): each
alert contributes its severity's evidence (low 0.2, medium 0.5, high 0.75, critical 0.9) and each
warm model named in ``lead_score_models`` contributes its score (cold models contribute nothing):

    lead score = 1 - prod(1 - evidence_i)

The grade is ``high`` at or above ``lead_high_threshold``, ``mid`` at or above
``lead_mid_threshold``, else ``low``. Each channel belongs to one layer:

- high -> ``rm_handoff`` (an offline, branch RM; only for tiers in ``offline_rm_tiers``);
- mid  -> ``rm_call``, ``robot_call`` (remote-RM nurturing);
- low  -> ``sms``, ``push``, ``in_app``, ``email`` (the automated incubation pool).

A lead may use its own layer and those below; when nothing in its layer is allowed (no offline RM
for the tier, capacity used up, the policy refuses) it falls to the next layer, and the decision
record says where and why.

>>> lead = grade_lead([("r1", "high")], {}, high=0.75, mid=0.5)
>>> lead.grade, lead.score
('high', 0.75)
>>> lead = grade_lead([("r2", "medium"), ("r3", "low")], {"churn_risk": 0.1}, high=0.75, mid=0.5)
>>> lead.grade, lead.score, dict(lead.evidence)
('mid', 0.64, {'rule:r2': 0.5, 'rule:r3': 0.2, 'model:churn_risk': 0.1})
>>> layers_for("mid")
('mid', 'low')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

LAYERS: tuple[str, ...] = ("high", "mid", "low")
LAYER_OF_CHANNEL: dict[str, str] = {
    "rm_handoff": "high",
    "rm_call": "mid",
    "robot_call": "mid",
    "sms": "low",
    "push": "low",
    "in_app": "low",
    "email": "low",
}
SEVERITY_EVIDENCE: dict[str, float] = {"low": 0.2, "medium": 0.5, "high": 0.75, "critical": 0.9}


class Lead(NamedTuple):
    """A graded lead: its score in [0, 1], its grade and the evidence behind it."""

    score: float
    grade: str
    evidence: tuple[tuple[str, float], ...]


def lead_score(evidence: Iterable[float]) -> float:
    """The noisy-OR of independent evidence in [0, 1].

    >>> lead_score([0.5, 0.5])
    0.75
    >>> lead_score([])
    0.0
    """
    miss = 1.0
    for p in evidence:
        miss *= 1.0 - min(max(p, 0.0), 1.0)
    return round(1.0 - miss, 6)


def grade_of(score: float, *, high: float, mid: float) -> str:
    """The funnel grade of a lead score.

    >>> grade_of(0.8, high=0.75, mid=0.5), grade_of(0.5, high=0.75, mid=0.5)
    ('high', 'mid')
    """
    return "high" if score >= high else "mid" if score >= mid else "low"


def grade_lead(
    alerts: Iterable[tuple[str, str]],
    model_scores: Mapping[str, float],
    *,
    high: float,
    mid: float,
) -> Lead:
    """Grade a lead from its alerts, as (rule id, severity), and the warm scores of the lead
    models; the evidence is kept as ``rule:<id>`` and ``model:<name>``."""
    evidence: list[tuple[str, float]] = []
    for rule, sev in alerts:
        evidence.append(("rule:" + rule, SEVERITY_EVIDENCE[sev]))
    if model_scores:
        for name, v in sorted(model_scores.items()):
            evidence.append(("model:" + name, float(v)))
    miss = 1.0
    for _, p in evidence:
        miss *= 1.0 - (0.0 if p < 0.0 else 1.0 if p > 1.0 else p)
    score = round(1.0 - miss, 6)
    grade = "high" if score >= high else "mid" if score >= mid else "low"
    return _new(Lead, (score, grade, tuple(evidence)))


_new = tuple.__new__
_LAYERS_FOR = {"high": ("high", "mid", "low"), "mid": ("mid", "low"), "low": ("low",)}


def layers_for(grade: str) -> tuple[str, ...]:
    """The layers a lead of this grade may use, its own first."""
    return _LAYERS_FOR[grade]
