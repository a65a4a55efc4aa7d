"""The rolling-feature catalog: what each event changes, and what features the state yields.

Pure: no Redis here. Two functions carry the whole semantics, shared by the Redis adapter (whose
Lua script executes the *ops*) and the in-memory twin:

- ``ops_for(event)`` turns an event into a small list of generic state operations
  (add to a time bucket, keep a bucket maximum, set a field, remember a time, move a balance);
- ``derive(raw)`` turns the raw aggregates the store returns into named features.

AUM now: a profile event's ``aum`` sets it (deposits and wealth, as core banking reports it).
A transaction moves it: by the change of that account's ``balance_after`` when the account's
balance was known, by the signed amount when the account is new but AUM came from a profile (the
balance is already inside it), by the whole balance when nothing was known, and by the signed
amount when there is no ``balance_after``. A profile snapshot older than the last posting
that moved AUM does not overwrite it (topics are not ordered against each other). Wealth buys
and redemptions move money between an
account and a product: AUM does not change. AUM never goes below zero.

Buckets are aligned to UTC hours (for the 1 h and 24 h windows) and UTC days (for 7, 30, 35 and
90 days). A window of N buckets covers the current bucket and the N-1 before it, so "24h" is the
current hour plus the 23 before it. ``now`` for a customer is the latest event time seen for them
(their watermark), so replay and live compute the same values.

>>> ops = ops_for_dict({"type": "app", "name": "login", "page": None})
>>> [op.kind for op in ops]
['sum', 'last']
>>> feats = derive(RawState(now=86400.0 * 40, windows={"login_count_7d": 3.0,
...                         "login_count_35d": 10.0}, state={"t:login": 86400.0 * 38}, closes={}))
>>> feats["login_count_7d"], feats["days_since_last_login"]
(3.0, 2.0)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

HOUR = 3600
DAY = 86400

OpKind = Literal["sum", "max", "set", "last", "balance", "flow", "aum", "track_aum"]


@dataclass(frozen=True, slots=True)
class Window:
    """A rolling window: ``buckets`` buckets of ``resolution`` ('h' hour or 'd' day)."""

    name: str
    resolution: Literal["h", "d"]
    buckets: int


WINDOWS: tuple[Window, ...] = (
    Window("1h", "h", 1),
    Window("24h", "h", 24),
    Window("7d", "d", 7),
    Window("30d", "d", 30),
    Window("35d", "d", 35),
    Window("90d", "d", 90),
)

# Counters and sums kept in buckets; every one yields a feature per window: ``<metric>_<window>``.
SUM_METRICS: tuple[str, ...] = (
    "tx_count",
    "inflow",
    "outflow",
    "transfer_out_other_bank",
    "transfer_out_other_bank_count",
    "salary_count",
    "wealth_redeem",
    "wealth_buy",
    "login_count",
    "login_failed_count",
    "sensitive_page_views",
    "closure_page_views",
    "complaint_count",
)
# Daily maximum of AUM, for the peak over 30 days.
MAX_METRICS: tuple[str, ...] = ("aum_peak",)
# Pages whose visit says a customer may be leaving.
SENSITIVE_PAGES = frozenset(
    {"account_closure", "transfer_out", "product_maturity", "product_redeem"}
)
CLOSURE_PAGES = frozenset({"account_closure"})
OWN_BANK = frozenset({"", "SELF", "self", "own"})
PROFILE_FIELDS: tuple[str, ...] = ("segment", "timezone", "rm_id")

# How long buckets are kept, per resolution (one more than the longest window).
RETENTION_BUCKETS: dict[str, int] = {
    res: 1 + max(w.buckets for w in WINDOWS if w.resolution == res) for res in ("h", "d")
}
# How many past daily AUM closes are returned (for "AUM versus 7 days ago").
AUM_CLOSE_DAYS = 8


@dataclass(frozen=True, slots=True)
class Op:
    """One generic state operation; the Lua script and the memory twin execute the same ops."""

    kind: OpKind
    name: str = ""
    value: float | str = 0.0
    flag: int = 0
    amount: float = 0.0

    def as_args(self) -> tuple[str, str, str, str, str]:
        value = repr(float(self.value)) if isinstance(self.value, float) else str(self.value)
        return (self.kind, self.name, value, str(self.flag), repr(float(self.amount)))


def ops_for_dict(event: Mapping[str, Any]) -> tuple[Op, ...]:
    """The state operations an event (as a plain mapping of its fields) implies."""
    kind = event.get("type")
    if kind == "transaction":
        return _transaction_ops(event)
    if kind == "app":
        return _app_ops(event)
    if kind == "profile":
        return _profile_ops(event)
    return ()


def _transaction_ops(ev: Mapping[str, Any]) -> tuple[Op, ...]:
    amount = float(ev["amount"])
    credit = ev["direction"] == "credit"
    tx_kind = ev["kind"]
    ops = [Op("sum", "tx_count", 1.0), Op("sum", "inflow" if credit else "outflow", amount)]
    if tx_kind == "transfer_out" and (ev.get("counterparty_bank") or "") not in OWN_BANK:
        ops += [
            Op("sum", "transfer_out_other_bank", amount),
            Op("sum", "transfer_out_other_bank_count", 1.0),
        ]
    if tx_kind == "salary" and credit:
        ops.append(Op("sum", "salary_count", 1.0))
    if tx_kind in ("wealth_redeem", "wealth_buy"):
        ops.append(Op("sum", tx_kind, amount))
    ops.append(Op("last", "tx"))
    balance = ev.get("balance_after")
    # Money moved between an account and a wealth product stays in AUM.
    moves_aum = 0 if tx_kind in ("wealth_buy", "wealth_redeem") else 1
    signed = amount if credit else -amount
    if balance is not None:
        ops.append(Op("balance", str(ev["account_id"]), float(balance), moves_aum, signed))
    elif moves_aum:
        ops.append(Op("flow", "", signed))
    ops.append(Op("track_aum"))
    return tuple(ops)


def _app_ops(ev: Mapping[str, Any]) -> tuple[Op, ...]:
    name = ev["name"]
    page = ev.get("page") or ""
    ops: list[Op] = []
    if name == "login":
        ops += [Op("sum", "login_count", 1.0), Op("last", "login")]
    elif name == "login_failed":
        ops.append(Op("sum", "login_failed_count", 1.0))
    elif name == "complaint":
        ops += [Op("sum", "complaint_count", 1.0), Op("last", "complaint")]
    if page in SENSITIVE_PAGES:
        ops.append(Op("sum", "sensitive_page_views", 1.0))
    if page in CLOSURE_PAGES:
        ops.append(Op("sum", "closure_page_views", 1.0))
    return tuple(ops)


def _profile_ops(ev: Mapping[str, Any]) -> tuple[Op, ...]:
    ops = [Op("set", f"p:{name}", str(ev[name])) for name in PROFILE_FIELDS if ev.get(name)]
    for channel, allowed in sorted((ev.get("consent") or {}).items()):
        ops.append(Op("set", f"p:consent_{channel}", "1" if allowed else "0"))
    if ev.get("opted_out") is not None:
        ops.append(Op("set", "p:opted_out", "1" if ev["opted_out"] else "0"))
    if ev.get("aum") is not None:
        ops += [Op("aum", "", float(ev["aum"])), Op("track_aum")]
    return tuple(ops)


@dataclass(frozen=True, slots=True)
class RawState:
    """What a store returns after applying an event: window aggregates and plain state.

    ``windows`` maps ``<metric>_<window>`` to its aggregate (absent = no data); ``state`` holds the
    customer's fields (``aum``, ``bal:<account>``, ``t:<name>`` last times, ``p:<profile field>``);
    ``closes`` maps days-ago to the AUM at the end of that UTC day.
    """

    now: float
    windows: Mapping[str, float]
    state: Mapping[str, str | float]
    closes: Mapping[int, float] = field(default_factory=dict)


Features = dict[str, float | str]


def tier_of(aum: float) -> str:
    """The asset tier from AUM (CNY): the domain brief's three service models.

    >>> tier_of(10_000), tier_of(50_000), tier_of(500_001)
    ('long_tail', 'basic', 'affluent')
    """
    if aum < 50_000:
        return "long_tail"
    if aum <= 500_000:
        return "basic"
    return "affluent"


def derive(raw: RawState) -> Features:
    """Named features from raw aggregates. Every name in ``feature_names()`` is always present."""
    w = raw.windows
    out: Features = {}
    for metric in SUM_METRICS:
        for win in WINDOWS:
            out[f"{metric}_{win.name}"] = float(w.get(f"{metric}_{win.name}", 0.0))
    for win in WINDOWS:
        out[f"net_flow_{win.name}"] = out[f"inflow_{win.name}"] - out[f"outflow_{win.name}"]  # type: ignore[operator]
    aum = float(raw.state.get("aum", 0.0))
    peak = max(float(w.get("aum_peak_30d", aum)), aum)
    out["aum"] = aum
    out["aum_peak_30d"] = peak
    out["aum_drop_from_peak_30d_pct"] = _pct_drop(peak, aum)
    week_ago = _close_at_or_before(raw.closes, 7)
    out["aum_7d_ago"] = week_ago if week_ago is not None else aum
    out["aum_change_vs_7d_pct"] = _pct_change(out["aum_7d_ago"], aum)  # type: ignore[arg-type]
    out["tier"] = tier_of(aum)
    base = max(peak, 1.0)
    out["transfer_out_other_bank_share_7d"] = float(out["transfer_out_other_bank_7d"]) / base
    out["transfer_out_other_bank_share_30d"] = float(out["transfer_out_other_bank_30d"]) / base
    prev4w_tx = max(float(out["tx_count_35d"]) - float(out["tx_count_7d"]), 0.0) / 4.0
    out["tx_count_prev4w_weekly_avg"] = prev4w_tx
    out["tx_count_7d_vs_prev4w"] = float(out["tx_count_7d"]) / prev4w_tx if prev4w_tx else 1.0
    prev4w_login = max(float(out["login_count_35d"]) - float(out["login_count_7d"]), 0.0) / 4.0
    out["login_count_prev4w_weekly_avg"] = prev4w_login
    out["login_count_7d_vs_prev4w"] = (
        float(out["login_count_7d"]) / prev4w_login if prev4w_login else 1.0
    )
    out["days_since_last_tx"] = _days_since(raw, "t:tx")
    out["days_since_last_login"] = _days_since(raw, "t:login")
    out["days_since_last_complaint"] = _days_since(raw, "t:complaint")
    return out


NEVER_DAYS = 9999.0


def _days_since(raw: RawState, key: str) -> float:
    at = raw.state.get(key)
    if at is None:
        return NEVER_DAYS
    return max(raw.now - float(at), 0.0) / DAY


def _pct_drop(peak: float, now: float) -> float:
    return 0.0 if peak <= 0 else max(peak - now, 0.0) / peak * 100.0


def _pct_change(before: float, now: float) -> float:
    return 0.0 if before <= 0 else (now - before) / before * 100.0


def _close_at_or_before(closes: Mapping[int, float], days_ago: int) -> float | None:
    """The latest daily AUM close that is at least ``days_ago`` days old (within the kept days)."""
    older = [d for d in closes if d >= days_ago]
    return closes[min(older)] if older else None


def feature_names() -> tuple[str, ...]:
    """Every feature name ``derive`` produces, in a stable order (the feature schema)."""
    empty = RawState(now=0.0, windows={}, state={})
    return tuple(derive(empty))


def profile_of(raw: RawState) -> dict[str, str]:
    """The customer's profile attributes (``p:`` fields) without the prefix."""
    return {k[2:]: str(v) for k, v in raw.state.items() if k.startswith("p:")}
