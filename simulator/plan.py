"""Who the synthetic bank's customers are, and what will happen to them: the ground truth.

Each customer's plan is drawn from its own ``random.Random`` seeded by (seed, customer index), so a
customer's plan does not depend on how many customers are simulated, and the same seed always
gives the same plans (fate times do depend on ``days`` and ``start``: fates start inside the
window, after a warm-up of up to 14 days). The fates (churn journey, sudden asset drop, a scare
that ends retained) are decided here, before any event is made; ``simulate`` acts them out.

>>> plans = plan_customers(2000, days=60, seed=7)
>>> plans[0].customer_id, plans[0].account_id
('c000001', 'a000001-1')
>>> sorted({p.tier for p in plans})
['affluent', 'basic', 'long_tail']
>>> all(tier_of(p.aum) == p.tier for p in plans)
True
>>> churner = next(p for p in plans if p.churn_start is not None)
>>> 7 <= (churner.churned_at - churner.churn_start).days <= 21
True
>>> plan_customers(3, days=60, seed=7) == plans[:3]
True
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final, Literal, TypeVar

from engine.events import CHANNELS
from simulator.timeline import DAY, DEFAULT_START, HOUR, Timeline, bank_second

Tier = Literal["long_tail", "basic", "affluent"]
Segment = Literal["young_professional", "family", "retiree", "small_business"]
IncomeKind = Literal["salary", "pension", "business", "transfer"]

LONG_TAIL_MAX: Final = 50_000.0
BASIC_MAX: Final = 500_000.0

# Share of customers per tier (drawn first; AUM is then drawn inside the tier's band).
TIER_SHARES: Final[tuple[tuple[Tier, float], ...]] = (
    ("long_tail", 0.70),
    ("basic", 0.25),
    ("affluent", 0.05),
)
SEGMENT_WEIGHTS: Final[dict[Tier, tuple[tuple[Segment, float], ...]]] = {
    "long_tail": (
        ("young_professional", 45),
        ("family", 27),
        ("retiree", 20),
        ("small_business", 8),
    ),
    "basic": (("young_professional", 30), ("family", 35), ("retiree", 20), ("small_business", 15)),
    "affluent": (
        ("young_professional", 15),
        ("family", 30),
        ("retiree", 25),
        ("small_business", 30),
    ),
}
TIMEZONES: Final[tuple[tuple[str, float], ...]] = (
    ("Asia/Shanghai", 92.0),
    ("Asia/Hong_Kong", 3.5),
    ("Asia/Singapore", 1.5),
    ("Europe/London", 2.0),
    ("America/New_York", 1.0),
)
# Probability that a customer consents to contact on each channel.
CONSENT_P: Final[dict[str, float]] = {
    "sms": 0.93,
    "push": 0.85,
    "in_app": 0.97,
    "email": 0.80,
    "robot_call": 0.72,
    "rm_call": 0.88,
    "rm_handoff": 0.90,
}
OPTED_OUT_P: Final = 0.02
# Fates, drawn from one uniform number: [0, churn) churn, [churn, +drop) drop, then scare.
CHURN_P: Final = 0.065
DROP_P: Final = 0.03
SCARE_P: Final = 0.03
# Monthly income before the tier multiplier, by segment (CNY).
BASE_INCOME: Final[dict[Segment, float]] = {
    "young_professional": 7_000.0,
    "family": 8_000.0,
    "retiree": 3_800.0,
    "small_business": 12_000.0,
}
TIER_INCOME: Final[dict[Tier, float]] = {"long_tail": 1.0, "basic": 2.2, "affluent": 5.0}
# Share of AUM kept on the current account (the rest sits in wealth products).
LIQUID_SHARE: Final[dict[Tier, tuple[float, float]]] = {
    "long_tail": (0.70, 1.0),
    "basic": (0.25, 0.60),
    "affluent": (0.10, 0.35),
}
OTHER_BANKS: Final[tuple[str, ...]] = (
    "ICBC",
    "CCB",
    "ABC",
    "BOC",
    "BOCOM",
    "CMB",
    "CITIC",
    "CIB",
    "PAB",
    "WeBank",
)
# Local-hour weights of app use and of spending (index = hour of day).
APP_HOURS: Final[tuple[float, ...]] = (
    0.4,
    0.2,
    0.1,
    0.1,
    0.1,
    0.2,
    0.6,
    1.5,
    2.4,
    2.0,
    1.6,
    1.6,
    2.2,
    2.0,
    1.5,
    1.4,
    1.5,
    1.6,
    1.8,
    2.3,
    2.6,
    2.5,
    1.8,
    1.0,
)
SPEND_HOURS: Final[tuple[float, ...]] = (
    0.15,
    0.08,
    0.04,
    0.03,
    0.03,
    0.1,
    0.4,
    1.2,
    1.5,
    1.2,
    1.3,
    1.8,
    2.5,
    1.8,
    1.3,
    1.3,
    1.4,
    1.6,
    2.2,
    2.4,
    2.0,
    1.5,
    0.8,
    0.35,
)
# App use while awake (06:00-24:00): when a fate's first step happens.
AWAKE_HOURS: Final[tuple[float, ...]] = tuple(w if h >= 6 else 0.0 for h, w in enumerate(APP_HOURS))
BRANCH_HOURS: Final[tuple[float, ...]] = (
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    1.5,
    2,
    2,
    1,
    1.2,
    2,
    2,
    1.5,
    0.5,
    0,
    0,
    0,
    0,
    0,
    0,
)


def tier_of(aum: float) -> Tier:
    """The asset tier by AUM (CNY), as the domain brief draws it.

    >>> tier_of(8_000), tier_of(50_000), tier_of(500_000.01)
    ('long_tail', 'basic', 'affluent')
    """
    if aum < LONG_TAIL_MAX:
        return "long_tail"
    if aum <= BASIC_MAX:
        return "basic"
    return "affluent"


@dataclass(frozen=True, slots=True)
class CustomerPlan:
    """One customer as drawn at the start, and the fate the simulator will act out.

    Times are aware datetimes on the bank's clock (the ``start`` time zone). A fate may start
    inside the window and be labelled after it ends: its label is then not in the stream
    (right-censored); ``labelled_in(end)`` tells.

    - ``churn_start``: the first step of the churn journey, the ``login`` of a session that
      redeems products, visits the closure page and moves 50-70 % of the balance to
      ``churn_bank``; income stops from here. ``churned_at``: when the
      ``outcome`` "churned" is published (7 to 21 days later); the customer is silent after it.
    - ``drop_at``: the single large debit (40-80 % of AUM; products are redeemed minutes before
      when the balance is short); ``drop_labelled_at``: the ``outcome`` "asset_drop" (1-3 days).
    - ``scare_at``: a churn-like wobble (closure page, one transfer out) by a customer who stays;
      ``retained_at``: the ``outcome`` "retained".
    """

    index: int
    customer_id: str
    account_id: str
    tier: Tier
    segment: Segment
    timezone: str
    aum: float
    balance: float
    wealth: float
    rm_id: str | None
    consent: dict[str, bool]
    opted_out: bool
    income_kind: IncomeKind
    monthly_income: float
    income_day: int
    churn_start: datetime | None = None
    churned_at: datetime | None = None
    churn_bank: str | None = None
    drop_at: datetime | None = None
    drop_labelled_at: datetime | None = None
    scare_at: datetime | None = None
    retained_at: datetime | None = None

    @property
    def fate(self) -> Literal["churn", "asset_drop", "scare", "none"]:
        if self.churn_start is not None:
            return "churn"
        if self.drop_at is not None:
            return "asset_drop"
        if self.scare_at is not None:
            return "scare"
        return "none"

    def labelled_in(self, end: datetime) -> bool:
        """Whether the fate's outcome event falls before ``end`` (and so is in the stream)."""
        label = self.churned_at or self.drop_labelled_at or self.retained_at
        return label is not None and label < end


def customer_id(index: int) -> str:
    """The id of the customer at a 0-based index: ``c000001`` for index 0."""
    return f"c{index + 1:06d}"


def plan_customers(
    customers: int, days: int, seed: int, start: datetime = DEFAULT_START
) -> list[CustomerPlan]:
    """Every customer's plan, in index order (the same plans ``simulate`` acts out)."""
    if customers < 0:
        raise ValueError(f"customers must be >= 0, got {customers}")
    timeline = Timeline(start, days)
    return [plan_customer(i, seed, timeline) for i in range(customers)]


def ground_truth(
    customers: int, days: int, seed: int, start: datetime = DEFAULT_START
) -> dict[str, CustomerPlan]:
    """The plans of the customers given a fate (churn, asset drop, scare), by customer id."""
    return {
        p.customer_id: p for p in plan_customers(customers, days, seed, start) if p.fate != "none"
    }


def plan_customer(index: int, seed: int, timeline: Timeline) -> CustomerPlan:
    """The plan of one customer; depends only on (seed, index, timeline)."""
    rng = random.Random(f"vigil-simulator/plan/{seed}/{index}")
    tier = _pick(rng, TIER_SHARES)
    aum_cents = _draw_aum_cents(rng, tier)
    segment = _pick(rng, SEGMENT_WEIGHTS[tier])
    tz_name = _pick(rng, TIMEZONES)
    rm_id: str | None = None
    if tier == "basic":
        rm_id = f"rm-r{rng.randint(1, 40):03d}"
    elif tier == "affluent":
        rm_id = f"rm-b{rng.randint(1, 25):03d}"
    consent = {ch: rng.random() < CONSENT_P[ch] for ch in CHANNELS}
    opted_out = rng.random() < OPTED_OUT_P
    income_kind: IncomeKind
    if segment == "retiree":
        income_kind = "pension"
    elif segment == "small_business":
        income_kind = "business"
    else:
        income_kind = "salary" if rng.random() < 0.88 else "transfer"
    income = BASE_INCOME[segment] * TIER_INCOME[tier] * rng.lognormvariate(0.0, 0.3)
    income = max(round(income / 100.0) * 100.0, 1_500.0)
    income_day = rng.choice((5, 10, 10, 15, 15, 20, 25, 28))
    lo, hi = LIQUID_SHARE[tier]
    balance_cents = round(aum_cents * rng.uniform(lo, hi))
    cid = customer_id(index)
    plan = CustomerPlan(
        index=index,
        customer_id=cid,
        account_id=f"a{cid[1:]}-1",
        tier=tier,
        segment=segment,
        timezone=tz_name,
        aum=aum_cents / 100,
        balance=balance_cents / 100,
        wealth=(aum_cents - balance_cents) / 100,
        rm_id=rm_id,
        consent=consent,
        opted_out=opted_out,
        income_kind=income_kind,
        monthly_income=income,
        income_day=income_day,
    )
    return _with_fate(plan, rng, timeline)


def _with_fate(plan: CustomerPlan, rng: random.Random, tl: Timeline) -> CustomerPlan:
    u = rng.random()
    if tl.days == 0:
        return plan
    warmup = min(14, tl.days // 4)
    if u < CHURN_P:
        day = rng.randrange(warmup, max(warmup + 1, tl.days - 10))
        at = _daytime(rng, tl, plan.timezone, min(day, tl.days - 1), AWAKE_HOURS)
        return replace(
            plan,
            churn_start=tl.at(at),
            churned_at=tl.at(at + rng.randrange(7 * DAY, 21 * DAY + 1)),
            churn_bank=rng.choice(OTHER_BANKS),
        )
    if u < CHURN_P + DROP_P:
        at = _daytime(rng, tl, plan.timezone, rng.randrange(warmup, tl.days), BRANCH_HOURS)
        return replace(
            plan, drop_at=tl.at(at), drop_labelled_at=tl.at(at + rng.randrange(DAY, 3 * DAY + 1))
        )
    if u < CHURN_P + DROP_P + SCARE_P:
        at = _daytime(rng, tl, plan.timezone, rng.randrange(warmup, tl.days), AWAKE_HOURS)
        return replace(
            plan, scare_at=tl.at(at), retained_at=tl.at(at + rng.randrange(7 * DAY, 21 * DAY + 1))
        )
    return plan


def _daytime(
    rng: random.Random, tl: Timeline, tz_name: str, day: int, hours: tuple[float, ...]
) -> int:
    """An epoch on bank day ``day`` at a local hour drawn from ``hours``, leaving an hour spare."""
    local = rng.choices(range(24), weights=hours)[0] * HOUR + rng.randrange(HOUR)
    second = min(max(bank_second(local, tl.delta(tz_name, day)), 60), DAY - HOUR)
    return tl.day_starts[day] + second


_T = TypeVar("_T")


def _pick(rng: random.Random, weighted: tuple[tuple[_T, float], ...]) -> _T:
    values = [v for v, _ in weighted]
    return rng.choices(values, weights=[w for _, w in weighted])[0]


def _draw_aum_cents(rng: random.Random, tier: Tier) -> int:
    """AUM inside the tier's band, in cents: log-normal around 8,000 (long tail) and 120,000
    (basic); above 500,000 an exponential tail in log space (median about 850,000)."""
    for _ in range(100):
        if tier == "long_tail":
            aum = rng.lognormvariate(math.log(8_000), 0.9)
        elif tier == "basic":
            aum = rng.lognormvariate(math.log(120_000), 0.6)
        else:
            aum = BASIC_MAX * math.exp(rng.expovariate(1.3))
        cents = round(aum * 100)
        if 100_000 <= cents <= 3_000_000_000 and tier_of(cents / 100) == tier:
            return cents
    return {"long_tail": 800_000, "basic": 12_000_000, "affluent": 90_000_000}[tier]
