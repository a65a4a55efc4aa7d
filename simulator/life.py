"""One customer's daily life: what they do on their account and in the app, and their fate.

A day is built in two passes. First *drafts* are laid out (time, draft number, operation,
payload) with every random choice that does not depend on money; then the drafts are sorted by
time and *materialised* in that order, so each posting sees the balance left by the one before,
``balance_after`` follows the stream, and a debit that would overdraw is declined (no event).

Event ids are ``<customer_id>-<n>``, numbered in the customer's time order; session ids are
``<customer_id>-s<n>``.
"""

from __future__ import annotations

import math
import random
from bisect import bisect
from collections.abc import Mapping
from datetime import datetime, tzinfo
from itertools import accumulate
from typing import Any, Final, NamedTuple

from engine.events import CHANNELS
from simulator.plan import (
    APP_HOURS,
    AWAKE_HOURS,
    BRANCH_HOURS,
    OTHER_BANKS,
    SPEND_HOURS,
    CustomerPlan,
)
from simulator.timeline import DAY, HOUR, Timeline, bank_second, zone

Event = dict[str, Any]
Row = tuple[int, int, int, Event]  # (epoch, customer index, customer's event number, event)

# Draft operations.
_TX: Final = 0
_APP: Final = 1
_OUTCOME: Final = 2
_PROFILE: Final = 3
_Draft = tuple[int, int, int, Any]

# How a debit meets the balance: keep the floor (else declined) / may empty the account (else
# declined) / take what is there.
KEEP_FLOOR: Final = 0
TO_ZERO: Final = 1
CAPPED: Final = 2
FLOOR_CENTS: Final = 10_000  # ordinary debits leave at least 100 CNY on the account


class Tx(NamedTuple):
    """A posting to make. ``share`` > 0 sizes it at materialisation, as a share of ``base``:
    ``balance``, ``wealth``, ``aum`` (balance + wealth) or ``aum_gap`` (the part of
    ``share`` x AUM that the balance cannot cover)."""

    kind: str
    direction: str
    channel: str
    cents: int = 0
    bank: str | None = None
    share: float = 0.0
    base: str = "balance"
    mode: int = KEEP_FLOOR
    memo: str | None = None


def _cum(pairs: tuple[tuple[str, float], ...]) -> tuple[tuple[str, ...], tuple[float, ...]]:
    return tuple(p for p, _ in pairs), tuple(accumulate(w for _, w in pairs))


_CUM_APP: Final = tuple(accumulate(APP_HOURS))
_CUM_AWAKE: Final = tuple(accumulate(AWAKE_HOURS))
_CUM_SPEND: Final = tuple(accumulate(SPEND_HOURS))
_CUM_BRANCH: Final = tuple(accumulate(BRANCH_HOURS))
_NORMAL_PAGES: Final = _cum(
    (
        ("accounts", 30),
        ("wealth", 14),
        ("transfer", 12),
        ("cards", 10),
        ("offers", 8),
        ("statements", 7),
        ("settings", 4),
        ("loans", 4),
        ("transfer_out", 3),
        ("help", 2),
        ("product_redeem", 2),
        ("product_maturity", 1),
        ("account_closure", 0.3),
    )
)
_CHURN_PAGES: Final = _cum(
    (
        ("accounts", 20),
        ("account_closure", 18),
        ("transfer_out", 16),
        ("product_redeem", 10),
        ("help", 8),
        ("statements", 7),
        ("transfer", 6),
        ("wealth", 4),
    )
)
_COMPLAINT_TOPICS: Final = ("fees", "service", "app", "wealth_loss", "transfer_limit")
_CONTACT_LABELS: Final = _cum((("contacted", 5), ("offer_declined", 3), ("offer_accepted", 2)))


class _Rates(NamedTuple):
    sessions: float  # app sessions a day (times the customer's engagement)
    purchases: float  # purchases a day
    atm: float  # chance of an ATM withdrawal a day
    transfers_out: float  # transfers out a day
    transfers_in: float  # transfers in a day (business receipts for small businesses)
    deposits: float  # chance of a cash deposit a day


_RATES: Final[dict[str, _Rates]] = {
    "young_professional": _Rates(0.75, 1.3, 0.03, 0.08, 0.05, 0.005),
    "family": _Rates(0.6, 1.6, 0.05, 0.08, 0.05, 0.01),
    "retiree": _Rates(0.3, 0.7, 0.10, 0.04, 0.04, 0.03),
    "small_business": _Rates(0.7, 0.9, 0.05, 0.40, 0.45, 0.08),
}
_WEALTH_P: Final[dict[str, tuple[float, float]]] = {  # wealth buy, redeem: chance a day
    "long_tail": (0.004, 0.004),
    "basic": (0.015, 0.01),
    "affluent": (0.03, 0.015),
}


def _poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw (Knuth's method; fine for the small rates used here)."""
    if lam <= 0.0:
        return 0
    limit = math.exp(-lam)
    k = 0
    p = rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _draw(rng: random.Random, table: tuple[tuple[str, ...], tuple[float, ...]]) -> str:
    values, cum = table
    return values[bisect(cum, rng.random() * cum[-1])]


def _hour_second(rng: random.Random, cum: tuple[float, ...]) -> int:
    """A second of the (local) day, its hour weighted by ``cum``."""
    return bisect(cum, rng.random() * cum[-1]) * HOUR + rng.randrange(HOUR)


def _epoch(dt: datetime | None) -> int | None:
    return None if dt is None else int(dt.timestamp())


class CustomerLife:
    """One customer's state (balance, wealth, consent, ...) and daily behaviour."""

    __slots__ = (
        "account_id",
        "balance",
        "bank_tz",
        "churn_bank",
        "churn_label",
        "churn_moves",
        "churn_start",
        "cid",
        "consent",
        "device",
        "drop_at",
        "drop_label",
        "engagement",
        "gone",
        "index",
        "local_tz",
        "n_events",
        "n_sessions",
        "opted_out",
        "plan",
        "purchase_mu",
        "rates",
        "retained_at",
        "rm_id",
        "rng",
        "scare_at",
        "segment",
        "timeline",
        "wealth",
    )

    def __init__(self, plan: CustomerPlan, seed: int, timeline: Timeline) -> None:
        self.plan = plan
        self.timeline = timeline
        self.rng = rng = random.Random(f"vigil-simulator/life/{seed}/{plan.index}")
        self.index = plan.index
        self.cid = plan.customer_id
        self.account_id = plan.account_id
        self.local_tz: tzinfo = zone(plan.timezone)
        self.bank_tz = timeline.bank_tz
        self.balance = round(plan.balance * 100)  # cents
        self.wealth = round(plan.wealth * 100)  # cents
        self.consent = dict(plan.consent)
        self.opted_out = plan.opted_out
        self.rm_id = plan.rm_id
        self.segment: str = plan.segment
        self.device = "ios" if rng.random() < 0.45 else "android"
        self.engagement = min(max(rng.lognormvariate(0.0, 0.6), 0.05), 4.0)
        self.rates = _RATES[plan.segment]
        # Purchases take about 55 % of income; log-normal sizes with sigma 0.8.
        mean_purchase = 0.55 * plan.monthly_income / 30.0 / self.rates.purchases
        self.purchase_mu = math.log(mean_purchase) - 0.32
        self.n_events = 0
        self.n_sessions = 0
        self.gone = False
        self.churn_start = _epoch(plan.churn_start)
        self.churn_label = _epoch(plan.churned_at)
        self.churn_bank = plan.churn_bank or OTHER_BANKS[0]
        self.churn_moves: dict[int, list[tuple[int, float, bool]]] = {}
        if self.churn_start is not None and self.churn_label is not None:
            self._plan_journey(self.churn_start, self.churn_label)
        self.drop_at = _epoch(plan.drop_at)
        self.drop_label = _epoch(plan.drop_labelled_at)
        self.scare_at = _epoch(plan.scare_at)
        self.retained_at = _epoch(plan.retained_at)

    def _plan_journey(self, start: int, label: int) -> None:
        """Sessions that move money to the other bank, by bank day. The first opens the journey
        at ``start`` and moves 50-70 % of the balance; the last, by 80 % of the way to the label,
        sweeps 95-100 % of what is left."""
        rng, tl = self.rng, self.timeline
        first_day = tl.day_of(start)
        last_day = tl.day_of(start + int(0.8 * (label - start)))
        moves = [(start, rng.uniform(0.5, 0.7), True)]
        count = rng.randint(2, 4)
        for k in range(1, count):
            final = k == count - 1
            day = last_day if final else rng.randint(first_day + 1, max(first_day + 1, last_day))
            if day >= tl.days:
                continue
            local = _hour_second(rng, _CUM_AWAKE)
            second = min(max(bank_second(local, tl.delta(self.plan.timezone, day)), 60), DAY - HOUR)
            share = rng.uniform(0.95, 1.0) if final else rng.uniform(0.5, 0.8)
            moves.append((tl.day_starts[day] + second, share, False))
        for move in sorted(moves):
            self.churn_moves.setdefault(tl.day_of(move[0]), []).append(move)

    # ----------------------------------------------------------------------------- a day

    def live_day(self, day: int, rows: list[Row]) -> None:
        """Append this customer's events of bank day ``day`` to ``rows``."""
        tl = self.timeline
        ds = tl.day_starts[day]
        delta = tl.delta(self.plan.timezone, day)
        drafts: list[_Draft] = []
        if day == 0:
            drafts.append((ds, 0, _PROFILE, "init"))
        # A churn journey: from its start, income stops, spending and logins fade.
        journey_from: int | None = None
        fade = 1.0
        spend = 1.0
        started = self.churn_start is not None and ds + DAY > self.churn_start
        if started and self.churn_start is not None and self.churn_label is not None:
            journey_from = self.churn_start
            span = self.churn_label - self.churn_start
            fade = max(0.06, 1.0 - (ds - self.churn_start) / span)
            spend = 1.0 if ds <= self.churn_start else 0.25
        self._bookkeeping(drafts, day, ds, journey_from)
        self._spending(drafts, ds, delta, spend)
        if journey_from is None:
            self._transfers(drafts, ds, delta)
            self._wealth(drafts, ds, delta)
            self._contacts(drafts, ds, delta)
        self._sessions(drafts, ds, delta, fade, journey_from)
        self._profile_changes(drafts, ds, delta, journey_from is not None)
        self._fates(drafts, day, ds, delta)
        drafts.sort()
        self._materialise(drafts, rows)

    def _bookkeeping(
        self, drafts: list[_Draft], day: int, ds: int, journey_from: int | None
    ) -> None:
        """Monthly income, fee, interest and AUM refresh, on the bank's clock."""
        rng, plan = self.rng, self.plan
        _, _, dom = self.timeline.dates[day]
        add = drafts.append
        if dom == plan.income_day and plan.income_kind != "business":
            at = ds + 8 * HOUR + rng.randrange(3 * HOUR)
            if journey_from is None or at < journey_from:
                cents = round(plan.monthly_income * 100 * rng.uniform(0.97, 1.03))
                if plan.income_kind == "salary":
                    tx = Tx("salary", "credit", "online", cents)
                elif plan.income_kind == "pension":
                    tx = Tx("transfer_in", "credit", "online", cents, memo="pension")
                else:  # paid elsewhere, moved here every month
                    bank = OTHER_BANKS[self.index % len(OTHER_BANKS)]
                    tx = Tx("transfer_in", "credit", "mobile", cents, bank)
                add((at, len(drafts), _TX, tx))
        if dom == 1:
            add(
                (
                    ds + 2 * HOUR + rng.randrange(HOUR),
                    len(drafts),
                    _TX,
                    Tx("fee", "debit", "online", 200, mode=TO_ZERO, memo="sms_alert_fee"),
                )
            )
            if day > 0:
                add((ds + 3 * HOUR + rng.randrange(HOUR), len(drafts), _PROFILE, "aum"))
        if dom == 21:
            cents = self.balance * 15 // 120_000  # 0.15 % a year, settled monthly here
            if cents > 0:
                add(
                    (
                        ds + HOUR + rng.randrange(HOUR),
                        len(drafts),
                        _TX,
                        Tx("interest", "credit", "online", cents),
                    )
                )

    def _spending(self, drafts: list[_Draft], ds: int, delta: int, spend: float) -> None:
        """Purchases, ATM withdrawals and cash deposits."""
        rng, rates = self.rng, self.rates
        add = drafts.append
        unit = max(1, round(self.plan.monthly_income / 6_000)) * 10_000  # 100 CNY notes, scaled
        for _ in range(_poisson(rng, rates.purchases * spend)):
            at = ds + self._second(delta, _CUM_SPEND)
            cents = max(round(rng.lognormvariate(self.purchase_mu, 0.8) * 100), 100)
            r = rng.random()
            channel = "pos" if r < 0.5 else "mobile" if r < 0.9 else "online"
            add((at, len(drafts), _TX, Tx("purchase", "debit", channel, cents)))
        if rng.random() < rates.atm * spend:
            at = ds + self._second(delta, _CUM_SPEND)
            add((at, len(drafts), _TX, Tx("withdrawal", "debit", "atm", rng.randint(2, 20) * unit)))
        if rng.random() < rates.deposits * spend:
            at = ds + self._second(delta, _CUM_BRANCH)
            channel = "branch" if rng.random() < 0.6 else "atm"
            add((at, len(drafts), _TX, Tx("deposit", "credit", channel, rng.randint(1, 30) * unit)))

    def _transfers(self, drafts: list[_Draft], ds: int, delta: int) -> None:
        """Transfers in (business receipts, family) and out (suppliers, rent), mostly by app."""
        rng, plan = self.rng, self.plan
        business = plan.income_kind == "business"
        income = plan.monthly_income
        if business:
            n_in = _poisson(rng, self.rates.transfers_in)
        else:
            n_in = 1 if rng.random() < self.rates.transfers_in else 0
        for _ in range(n_in):
            at = ds + self._second(delta, _CUM_SPEND)
            scale = income / 12.0 if business else income * 0.08
            cents = max(round(rng.lognormvariate(math.log(scale), 0.7) * 100), 1_000)
            bank = rng.choice(OTHER_BANKS) if rng.random() < 0.6 else None
            channel = "online" if bank else "mobile"
            drafts.append((at, len(drafts), _TX, Tx("transfer_in", "credit", channel, cents, bank)))
        for _ in range(_poisson(rng, self.rates.transfers_out)):
            scale = income / 14.0 if business else income * 0.10
            cents = max(round(rng.lognormvariate(math.log(scale), 0.8) * 100), 1_000)
            bank = rng.choice(OTHER_BANKS) if rng.random() < 0.5 else None
            if rng.random() < 0.8:
                page = "transfer_out" if bank else "transfer"
                tx = Tx("transfer_out", "debit", "mobile", cents, bank)
                self._session(drafts, ds, delta, ["home", page], txs={1: tx})
            else:
                at = ds + self._second(delta, _CUM_SPEND)
                drafts.append(
                    (at, len(drafts), _TX, Tx("transfer_out", "debit", "online", cents, bank))
                )

    def _wealth(self, drafts: list[_Draft], ds: int, delta: int) -> None:
        """Wealth product buys (whole thousands) and partial redemptions."""
        rng = self.rng
        buy_p, redeem_p = _WEALTH_P[self.plan.tier]
        if rng.random() < buy_p and self.balance > 20 * FLOOR_CENTS:
            tx = Tx("wealth_buy", "debit", "mobile", share=rng.uniform(0.1, 0.35))
            if self.plan.tier == "affluent" and rng.random() < 0.3:
                at = ds + self._second(delta, _CUM_BRANCH)
                drafts.append((at, len(drafts), _TX, tx._replace(channel="branch")))
            else:
                self._session(drafts, ds, delta, ["home", "wealth", "wealth"], txs={2: tx})
        if self.wealth > 0 and rng.random() < redeem_p:
            tx = Tx(
                "wealth_redeem", "credit", "mobile", share=rng.uniform(0.05, 0.3), base="wealth"
            )
            self._session(drafts, ds, delta, ["home", "wealth", "product_redeem"], txs={2: tx})

    def _contacts(self, drafts: list[_Draft], ds: int, delta: int) -> None:
        """Outcomes of the bank's own campaigns; an accepted offer is often a wealth buy."""
        rng = self.rng
        if self.opted_out or rng.random() >= 0.002:
            return
        at = ds + 9 * HOUR + rng.randrange(11 * HOUR)
        label = _draw(rng, _CONTACT_LABELS)
        drafts.append((at, len(drafts), _OUTCOME, label))
        if label == "offer_accepted" and self.plan.tier != "long_tail":
            tx = Tx("wealth_buy", "debit", "mobile", share=rng.uniform(0.1, 0.3))
            second = at - ds + rng.randint(600, 7200)
            self._session(
                drafts, ds, delta, ["home", "offers", "wealth"], txs={2: tx}, second=second
            )

    def _sessions(
        self, drafts: list[_Draft], ds: int, delta: int, fade: float, journey_from: int | None
    ) -> None:
        """Ordinary app sessions (churn pages once a journey has begun) and rare complaints."""
        rng = self.rng
        for _ in range(_poisson(rng, self.rates.sessions * self.engagement * fade)):
            first = self._second(delta, _CUM_APP)
            leaving = journey_from is not None and ds + first >= journey_from
            table = _CHURN_PAGES if leaving and rng.random() < 0.6 else _NORMAL_PAGES
            pages = ["home"]
            for _ in range(_poisson(rng, 1.4)):
                pages.append(_draw(rng, table))
            self._session(drafts, ds, delta, pages, second=first)
        if rng.random() < (0.04 if journey_from is not None else 0.0006):
            self._session(drafts, ds, delta, ["home", "help"], complaint=True)

    def _profile_changes(self, drafts: list[_Draft], ds: int, delta: int, leaving: bool) -> None:
        """Consent withdrawn or given, opt-out, a new RM, a new segment: all rare, and consent
        and opt-out more often while leaving."""
        rng = self.rng
        add = drafts.append
        r = rng.random()
        if r < (0.03 if leaving else 0.0012):
            add((ds + self._second(delta, _CUM_APP), len(drafts), _PROFILE, "consent_off"))
        elif r < 0.0017 and not leaving:
            add((ds + self._second(delta, _CUM_APP), len(drafts), _PROFILE, "consent_on"))
        r = rng.random()
        if r < (0.01 if leaving else 0.0002):
            add((ds + self._second(delta, _CUM_APP), len(drafts), _PROFILE, "opt_out"))
        elif r < 0.0004 and not leaving:
            add((ds + self._second(delta, _CUM_APP), len(drafts), _PROFILE, "opt_in"))
        if self.rm_id is not None and rng.random() < 0.0015:
            add((ds + 10 * HOUR + rng.randrange(7 * HOUR), len(drafts), _PROFILE, "rm"))
        if self.segment == "young_professional" and rng.random() < 0.0003:
            add((ds + 10 * HOUR + rng.randrange(7 * HOUR), len(drafts), _PROFILE, "segment"))

    def _fates(self, drafts: list[_Draft], day: int, ds: int, delta: int) -> None:
        """The planned churn journey, asset drop or scare, and their (late) outcomes."""
        rng = self.rng
        de = ds + DAY
        add = drafts.append
        for at, share, first in self.churn_moves.get(day, ()):
            pages = ["home", "accounts"]
            txs: dict[int, Tx] = {}
            if first:
                # The opening session: redeem every product, look at closing, move money out.
                pages += ["wealth", "product_redeem"]
                txs[3] = Tx(
                    "wealth_redeem", "credit", "mobile", share=1.0, base="wealth", mode=CAPPED
                )
                pages.append("account_closure")
            pages.append("transfer_out")
            txs[len(pages) - 1] = Tx(
                "transfer_out", "debit", "mobile", bank=self.churn_bank, share=share, mode=CAPPED
            )
            self._session(drafts, ds, delta, pages, txs=txs, second=at - ds, fail_p=0.0)
        if self.churn_label is not None and ds <= self.churn_label < de:
            add((self.churn_label, len(drafts), _OUTCOME, "churned"))
        if self.drop_at is not None and ds <= self.drop_at < de:
            # 40-80 % of AUM leaves in one debit; products are redeemed first if needed.
            share = rng.uniform(0.4, 0.8)
            redeem_at = max(self.drop_at - rng.randint(600, 2400), ds + 1)
            add(
                (
                    redeem_at,
                    len(drafts),
                    _TX,
                    Tx(
                        "wealth_redeem",
                        "credit",
                        "mobile",
                        share=share,
                        base="aum_gap",
                        mode=CAPPED,
                    ),
                )
            )
            if rng.random() < 0.4:
                tx = Tx(
                    "withdrawal",
                    "debit",
                    "branch",
                    share=share,
                    base="aum",
                    mode=CAPPED,
                    memo="large_cash",
                )
            else:
                bank = rng.choice(OTHER_BANKS) if rng.random() < 0.7 else None
                tx = Tx(
                    "transfer_out",
                    "debit",
                    "online",
                    bank=bank,
                    share=share,
                    base="aum",
                    mode=CAPPED,
                )
            add((self.drop_at, len(drafts), _TX, tx))
        if self.drop_label is not None and ds <= self.drop_label < de:
            add((self.drop_label, len(drafts), _OUTCOME, "asset_drop"))
        if self.scare_at is not None and ds <= self.scare_at < de:
            tx = Tx(
                "transfer_out",
                "debit",
                "mobile",
                bank=rng.choice(OTHER_BANKS),
                share=rng.uniform(0.15, 0.35),
            )
            self._session(
                drafts,
                ds,
                delta,
                ["home", "accounts", "account_closure", "transfer_out"],
                txs={3: tx},
                second=self.scare_at - ds,
                fail_p=0.0,
            )
        if self.retained_at is not None and ds <= self.retained_at < de:
            add((self.retained_at, len(drafts), _OUTCOME, "retained"))

    # ----------------------------------------------------------------------------- helpers

    def _second(self, delta: int, cum: tuple[float, ...]) -> int:
        """A second of the bank day at a local hour drawn from ``cum`` (never 0)."""
        return max(bank_second(_hour_second(self.rng, cum), delta), 1)

    def _session(
        self,
        drafts: list[_Draft],
        ds: int,
        delta: int,
        pages: list[str],
        *,
        txs: Mapping[int, Tx] | None = None,
        second: int | None = None,
        complaint: bool = False,
        fail_p: float = 0.05,
    ) -> None:
        """Draft one app session: (login_failed,) login, page views, logout (usually).

        ``txs`` maps a page's position to a posting made from that page; ``second`` is when the
        session starts (its first event), in seconds of the bank day. The session ends within
        the day: a late start is moved earlier.
        """
        rng = self.rng
        if second is None:
            second = self._second(delta, _CUM_APP)
        second = min(max(second, 1), DAY - 300 * (len(pages) + 3))
        self.n_sessions += 1
        sid = f"{self.cid}-s{self.n_sessions}"
        t = ds + second
        add = drafts.append
        if rng.random() < fail_p:
            add((t, len(drafts), _APP, (sid, "login_failed", None, {"reason": "bad_password"})))
            t += rng.randint(8, 40)
        add((t, len(drafts), _APP, (sid, "login", None, {"device": self.device})))
        for i, page in enumerate(pages):
            t += rng.randint(3, 60)
            add((t, len(drafts), _APP, (sid, "page_view", page, None)))
            if txs is not None and i in txs:
                t += rng.randint(15, 90)
                add((t, len(drafts), _TX, txs[i]))
        if complaint:
            t += rng.randint(60, 240)
            topic = rng.choice(_COMPLAINT_TOPICS)
            add((t, len(drafts), _APP, (sid, "complaint", "help", {"topic": topic})))
        if rng.random() < 0.85:
            t += rng.randint(5, 120)
            add((t, len(drafts), _APP, (sid, "logout", None, None)))

    # ----------------------------------------------------------------------------- events

    def _materialise(self, drafts: list[_Draft], rows: list[Row]) -> None:
        for at, _, op, payload in drafts:
            event: Event | None
            if op == _TX:
                event = self._post(at, payload)
            elif op == _APP:
                event = self._app(at, payload)
            elif op == _OUTCOME:
                event = self._envelope("outcome", at, self.bank_tz)
                event["label"] = payload
            else:
                event = self._profile(at, payload)
            if event is not None:
                rows.append((at, self.index, self.n_events, event))
                if op == _OUTCOME and payload == "churned":
                    self.gone = True  # silent from now on
                    return

    def _envelope(self, kind: str, at: int, tz: tzinfo) -> Event:
        self.n_events += 1
        return {
            "event_id": f"{self.cid}-{self.n_events}",
            "type": kind,
            "customer_id": self.cid,
            "ts": Timeline.fmt(at, tz),
        }

    def _post(self, at: int, tx: Tx) -> Event | None:
        cents = tx.cents
        kind = tx.kind
        if tx.share:
            base = tx.base
            if base == "balance":
                cents = int(self.balance * tx.share)
            elif base == "wealth":
                cents = int(self.wealth * tx.share)
            elif base == "aum":
                cents = int((self.balance + self.wealth) * tx.share)
            else:  # aum_gap
                cents = int((self.balance + self.wealth) * tx.share) - self.balance
            if kind in ("wealth_buy", "wealth_redeem") and tx.share < 1.0 and base != "aum_gap":
                cents -= cents % 100_000  # whole thousands of CNY
        if tx.direction == "debit":
            if tx.mode == CAPPED:
                cents = min(cents, self.balance)
            elif self.balance - cents < (FLOOR_CENTS if tx.mode == KEEP_FLOOR else 0):
                return None  # declined: not enough money
            if cents <= 0:
                return None
            self.balance -= cents
            if kind == "wealth_buy":
                self.wealth += cents
        else:
            if kind == "wealth_redeem":
                cents = min(cents, self.wealth)
            if cents <= 0:
                return None
            if kind == "wealth_redeem":
                self.wealth -= cents
            self.balance += cents
        event = self._envelope("transaction", at, self.bank_tz)
        event["account_id"] = self.account_id
        event["amount"] = cents / 100
        event["currency"] = "CNY"
        event["direction"] = tx.direction
        event["kind"] = kind
        event["channel"] = tx.channel
        if tx.bank is not None:
            event["counterparty_bank"] = tx.bank
        event["balance_after"] = self.balance / 100
        if tx.memo is not None:
            event["memo"] = tx.memo
        return event

    def _app(self, at: int, payload: tuple[str, str, str | None, dict[str, Any] | None]) -> Event:
        sid, name, page, props = payload
        event = self._envelope("app", at, self.local_tz)
        event["session_id"] = sid
        event["name"] = name
        if page is not None:
            event["page"] = page
        if props is not None:
            event["properties"] = props
        return event

    def _profile(self, at: int, what: str) -> Event | None:
        rng = self.rng
        fields: dict[str, Any]
        if what == "init":
            fields = {
                "segment": self.segment,
                "aum": (self.balance + self.wealth) / 100,
                "timezone": self.plan.timezone,
            }
            if self.rm_id is not None:
                fields["rm_id"] = self.rm_id
            fields["consent"] = dict(self.consent)
            fields["opted_out"] = self.opted_out
        elif what == "aum":
            fields = {"aum": (self.balance + self.wealth) / 100}
        elif what in ("consent_off", "consent_on"):
            wanted = what == "consent_on"
            choices = [c for c in CHANNELS if self.consent[c] != wanted]
            if not choices:
                return None
            self.consent[rng.choice(choices)] = wanted
            fields = {"consent": dict(self.consent)}
        elif what in ("opt_out", "opt_in"):
            wanted = what == "opt_out"
            if self.opted_out == wanted:
                return None
            self.opted_out = wanted
            fields = {"opted_out": wanted}
        elif what == "rm":
            prefix = self.rm_id[:4] if self.rm_id else "rm-r"
            self.rm_id = f"{prefix}{rng.randint(1, 40):03d}"
            fields = {"rm_id": self.rm_id}
        else:  # a young professional starts a family
            self.segment = "family"
            fields = {"segment": self.segment}
        event = self._envelope("profile", at, self.bank_tz)
        event.update(fields)
        return event
