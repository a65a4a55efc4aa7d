"""The rolling-feature catalog: what each event changes, and what features the state yields.

Pure: no Redis here. The catalog is data (``METRICS``, ``WINDOWS``, ``FEATURES``), checked once at
import by ``compile_catalog`` (an unknown aggregation, window or field raises ``ConfigError``
naming it). Two functions carry the semantics shared by the Redis adapter (whose Lua script
executes the *ops*) and the in-memory twin:

- ``ops_for_dict(event)`` turns an event into a few generic state operations (add to or keep
  the maximum of a bucket column, remember a time, see a session, move a balance, set a field);
- ``derive_vector(now, agg, fields)`` (and ``derive(raw)``, the same from a ``RawState``) turns
  window aggregates and the customer's plain fields into named features.

Money is kept in integer cents (amounts are rounded to the cent): sums are exact, short and the
same in Lua and Python. Features show money in currency units.

AUM now: a profile event's ``aum`` sets it (deposits and wealth, as core banking reports it).
A transaction moves it: by the change of that account's ``balance_after`` when the account's
balance was known, by the signed amount when the account is new but AUM came from a profile (the
balance is already inside it), by the whole balance when nothing was known, and by the signed
amount when there is no ``balance_after``. A profile snapshot older than the last posting that
moved AUM does not overwrite it (topics are not ordered against each other). Wealth buys and
redemptions move money between an account and a product: AUM does not change. AUM never goes
below zero. Every event that touches AUM records it in the current day's bucket (max, min and
close of the day), so peaks, troughs and "AUM 7 days ago" need no per-event history.

Windows are aligned to UTC hours (1 h, 24 h: the current hour and the N-1 before it) and UTC days
(7 d: the current day and the 6 before it, exact). Longer windows (30, 35, 90 days) count whole
Monday-to-Sunday weeks beyond the last 7 days: they cover the current day, the N-1 before it and
the rest of the oldest week they touch, so N to N+6 days (see ``features.buckets``). ``now`` for a
customer is the latest event time seen for them (their watermark), so replay equals live.

>>> ops = ops_for_dict({"type": "app", "name": "login", "page": None, "session_id": "s1"})
>>> [op.kind for op in ops]
['add', 'last', 'session']
>>> feats = derive(RawState(now=86400.0 * 40, windows={"login_count_7d": 3, "outflow_7d": 1050},
...                         state={"t": "," + b36(86400 * 38), "aum": "100"}))
>>> feats["login_count_7d"], feats["outflow_7d"], feats["days_since_last_login"], feats["tier"]
(3.0, 10.5, 2.0, 'long_tail')
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from engine.errors import ConfigError
from engine.events import CHANNELS

HOUR = 3600
DAY = 86400

# ----------------------------------------------------------------------------------------------
# The catalog
# ----------------------------------------------------------------------------------------------

MetricAgg = Literal["sum", "max", "min", "last"]
# One letter per bucket aggregation, as the Lua script reads them.
AGG_CODE: dict[str, str] = {"sum": "s", "max": "x", "min": "n", "last": "l"}


@dataclass(frozen=True, slots=True)
class Metric:
    """One column of the time buckets.

    ``resolution`` is the finest bucket it is written to: ``h`` (the event's hour, rolled up into
    days and weeks as it ages) or ``d`` (the current day: AUM observations). ``money`` columns
    hold integer cents.
    """

    name: str
    agg: MetricAgg
    resolution: Literal["h", "d"]
    money: bool
    meaning: str


@dataclass(frozen=True, slots=True)
class Window:
    """A rolling window of ``size`` hours (``unit`` 'h') or days (``unit`` 'd')."""

    name: str
    unit: Literal["h", "d"]
    size: int


@dataclass(frozen=True, slots=True)
class FeatureDef:
    """One named feature: ``agg`` over ``source`` (metrics, fields or other features) in
    ``window``; ``fallback`` names the feature used when the window holds no data."""

    name: str
    agg: str
    source: tuple[str, ...]
    window: str | None
    meaning: str
    fallback: str | None = None


# Bucket columns, most frequent first: a bucket is stored as its columns in this order with
# empty trailing columns left out. Hour-resolution columns come before day-resolution ones.
METRICS: tuple[Metric, ...] = (
    # stored together (the most frequent columns, AUM observations included)
    Metric("tx_count", "sum", "h", False, "postings (transactions) on the customer's accounts"),
    Metric("outflow", "sum", "h", True, "money out: the sum of debits"),
    Metric("max_outflow", "max", "h", True, "the largest single debit"),
    Metric("login_count", "sum", "h", False, "successful app logins"),
    Metric("session_count", "sum", "h", False, "distinct app sessions (by session_id)"),
    Metric("aum_max", "max", "d", True, "the highest AUM seen"),
    Metric("aum_min", "min", "d", True, "the lowest AUM seen"),
    Metric("aum_close", "last", "d", True, "the AUM at the end of the day"),
    # second field
    Metric("inflow", "sum", "h", True, "money in: the sum of credits"),
    Metric(
        "sensitive_page_views",
        "sum",
        "h",
        False,
        "views of closure, transfer-out, product maturity and redeem pages",
    ),
    Metric("login_failed_count", "sum", "h", False, "failed app logins"),
    Metric("transfer_out_other_bank", "sum", "h", True, "money transferred out to other banks"),
    Metric("transfer_out_other_bank_count", "sum", "h", False, "transfers out to other banks"),
    Metric("salary_count", "sum", "h", False, "salary credits"),
    Metric("closure_page_views", "sum", "h", False, "views of the account-closure page"),
    # third field
    Metric("transfer_out_page_views", "sum", "h", False, "views of the transfer-out page"),
    Metric("redeem_page_views", "sum", "h", False, "views of product maturity / redeem pages"),
    Metric("wealth_redeem", "sum", "h", True, "wealth products redeemed (amount)"),
    Metric("wealth_buy", "sum", "h", True, "wealth products bought (amount)"),
    Metric("complaint_count", "sum", "h", False, "complaints filed in the app"),
)
# How many columns each hash field of a bucket holds (in METRICS order): small enough that a
# value stays under the 64-byte listpack limit even with amounts in the billions.
COLUMN_GROUP_SIZES: tuple[int, ...] = (8, 7, 5)

WINDOWS: tuple[Window, ...] = (
    Window("1h", "h", 1),
    Window("24h", "h", 24),
    Window("7d", "d", 7),
    Window("30d", "d", 30),
    Window("35d", "d", 35),
    Window("90d", "d", 90),
)

# Hour buckets kept (ages 0..23 h), day buckets kept (ages 0..6 d); beyond, weeks.
HOUR_KEEP = 24
DAY_KEEP = 7

# Times remembered per customer (one slot each, in the packed ``t`` field).
LAST_TIMES: tuple[str, ...] = (
    "tx",
    "login",
    "complaint",
    "login_failed",
    "salary",
    "sensitive_page",
)
# Sessions remembered to count each session once (most recent first).
SESSIONS_KEPT = 3
# Event digests are grouped by slots of this many seconds of event time (pruned by slot).
DEDUP_SLOT = 6 * 3600

# Pages whose visit says a customer may be leaving.
CLOSURE_PAGES = frozenset({"account_closure"})
TRANSFER_OUT_PAGES = frozenset({"transfer_out"})
REDEEM_PAGES = frozenset({"product_maturity", "product_redeem"})
SENSITIVE_PAGES = CLOSURE_PAGES | TRANSFER_OUT_PAGES | REDEEM_PAGES
OWN_BANK = frozenset({"", "SELF", "self", "own"})
PROFILE_FIELDS: tuple[str, ...] = ("segment", "timezone", "rm_id")
# The state's field of each profile attribute: one letter after ``p:`` (each byte of a field
# name is kept once per customer). ``profile_of`` also reads the long ``p:<name>`` form.
PROFILE_KEYS: dict[str, str] = {
    "segment": "p:s",
    "timezone": "p:z",
    "rm_id": "p:r",
    "opted_out": "p:o",
}
_PROFILE_NAMES: dict[str, str] = {key: name for name, key in PROFILE_KEYS.items()}
# Bytes of an event id's digest kept for deduplication (see ``event_digest``).
DIGEST_BYTES = 6

NEVER_DAYS = 9999.0

# What a feature definition may be. Windowed aggregations read one metric in one window.
WINDOWED_AGGS: dict[str, str] = {
    "count": "sum",
    "sum": "sum",
    "distinct": "sum",
    "max": "max",
    "min": "min",
}
AGGREGATIONS: dict[str, str] = {
    **{k: f"{v} of a bucket column over the window" for k, v in WINDOWED_AGGS.items()},
    "ago": "a column's day close at least the window's length ago",
    "current": "a field of the customer's state now",
    "since": "days since a remembered time",
    "tier": "the asset tier of an AUM",
    "delta": "first source minus second",
    "ratio": "first source over second (1.0 when the second is 0)",
    "share": "first source over second (at least 1)",
    "pct_drop": "how far the second is below the first, in % of the first",
    "pct_change": "change from the first to the second, in % of the first",
    "prev_weekly_avg": "weekly average of the first (long window) outside the second (7 d)",
}
STATE_FIELDS = frozenset({"aum"})


def _grid(metric: str, agg: str, meaning: str) -> tuple[FeatureDef, ...]:
    return tuple(FeatureDef(f"{metric}_{w.name}", agg, (metric,), w.name, meaning) for w in WINDOWS)


def _ratios(metric: str, meaning: str) -> tuple[FeatureDef, ...]:
    return (
        FeatureDef(
            f"{metric}_prev4w_weekly_avg",
            "prev_weekly_avg",
            (f"{metric}_35d", f"{metric}_7d"),
            None,
            f"{meaning} per week in the weeks before the last 7 days (35 d window)",
        ),
        FeatureDef(
            f"{metric}_7d_vs_prev4w",
            "ratio",
            (f"{metric}_7d", f"{metric}_prev4w_weekly_avg"),
            None,
            f"{meaning} in the last 7 days over the previous weekly average",
        ),
    )


FEATURES: tuple[FeatureDef, ...] = (
    *_grid("tx_count", "count", "transactions posted"),
    *_grid("inflow", "sum", "money in (credits)"),
    *_grid("outflow", "sum", "money out (debits)"),
    *_grid("transfer_out_other_bank", "sum", "money transferred to other banks"),
    *_grid("transfer_out_other_bank_count", "count", "transfers out to other banks"),
    *_grid("salary_count", "count", "salary credits"),
    *_grid("wealth_redeem", "sum", "wealth products redeemed"),
    *_grid("wealth_buy", "sum", "wealth products bought"),
    *_grid("login_count", "count", "successful app logins"),
    *_grid("session_count", "distinct", "distinct app sessions"),
    *_grid("login_failed_count", "count", "failed app logins"),
    *_grid("sensitive_page_views", "count", "views of any sensitive page"),
    *_grid("closure_page_views", "count", "views of the account-closure page"),
    *_grid("transfer_out_page_views", "count", "views of the transfer-out page"),
    *_grid("redeem_page_views", "count", "views of product maturity / redeem pages"),
    *_grid("complaint_count", "count", "complaints"),
    *(
        FeatureDef(f"max_outflow_{w}", "max", ("max_outflow",), w, "the largest single debit")
        for w in ("24h", "7d", "30d")
    ),
    *(
        FeatureDef(
            f"net_flow_{w.name}",
            "delta",
            (f"inflow_{w.name}", f"outflow_{w.name}"),
            None,
            "money in minus money out",
        )
        for w in WINDOWS
    ),
    FeatureDef("aum", "current", ("aum",), None, "assets under management now"),
    FeatureDef("tier", "tier", ("aum",), None, "long_tail (<50k), basic (50k-500k), affluent"),
    FeatureDef("aum_peak_30d", "max", ("aum_max",), "30d", "the highest AUM", "aum"),
    FeatureDef("aum_peak_90d", "max", ("aum_max",), "90d", "the highest AUM", "aum"),
    FeatureDef("aum_min_30d", "min", ("aum_min",), "30d", "the lowest AUM", "aum"),
    FeatureDef(
        "aum_drop_from_peak_30d_pct",
        "pct_drop",
        ("aum_peak_30d", "aum"),
        None,
        "how far AUM is below its 30-day peak, in %",
    ),
    FeatureDef(
        "aum_7d_ago",
        "ago",
        ("aum_close",),
        "7d",
        "AUM at the end of the latest day at least 7 days ago (AUM now if none in 90 days)",
        "aum",
    ),
    FeatureDef(
        "aum_change_vs_7d_pct",
        "pct_change",
        ("aum_7d_ago", "aum"),
        None,
        "change of AUM since 7 days ago, in %",
    ),
    FeatureDef(
        "transfer_out_other_bank_share_7d",
        "share",
        ("transfer_out_other_bank_7d", "aum_peak_30d"),
        None,
        "money sent to other banks in 7 days over the 30-day peak AUM",
    ),
    FeatureDef(
        "transfer_out_other_bank_share_30d",
        "share",
        ("transfer_out_other_bank_30d", "aum_peak_30d"),
        None,
        "money sent to other banks in 30 days over the 30-day peak AUM",
    ),
    FeatureDef(
        "outflow_inflow_ratio_30d",
        "ratio",
        ("outflow_30d", "inflow_30d"),
        None,
        "money out over money in (30 d)",
    ),
    *_ratios("tx_count", "transactions"),
    *_ratios("login_count", "logins"),
    *_ratios("session_count", "sessions"),
    FeatureDef("days_since_last_tx", "since", ("tx",), None, "days since the last posting"),
    FeatureDef("days_since_last_login", "since", ("login",), None, "days since the last login"),
    FeatureDef(
        "days_since_last_complaint", "since", ("complaint",), None, "days since the last complaint"
    ),
    FeatureDef(
        "days_since_last_failed_login",
        "since",
        ("login_failed",),
        None,
        "days since the last failed login",
    ),
    FeatureDef("days_since_last_salary", "since", ("salary",), None, "days since the last salary"),
    FeatureDef(
        "days_since_last_sensitive_page",
        "since",
        ("sensitive_page",),
        None,
        "days since the last view of a sensitive page",
    ),
)


# ----------------------------------------------------------------------------------------------
# Validation and compilation (at import)
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    """The catalog compiled for fast evaluation; see ``compile_catalog``."""

    metrics: tuple[Metric, ...]
    windows: tuple[Window, ...]
    names: tuple[str, ...]
    # windowed features: name, index into the aggregate vector, divisor, fallback feature
    windowed: tuple[tuple[str, int, float, str | None], ...]
    # other features in dependency order: name, agg, sources, window size in days
    derived: tuple[tuple[str, str, tuple[str, ...], int], ...]
    longest_days: int


def compile_catalog(
    metrics: Sequence[Metric], windows: Sequence[Window], features: Sequence[FeatureDef]
) -> Plan:
    """Check the catalog and compile it; raises ``ConfigError`` naming the bad definition.

    >>> bad = FeatureDef("x_7d", "median", ("outflow",), "7d", "?")
    >>> compile_catalog(METRICS, WINDOWS, [bad])
    Traceback (most recent call last):
    ...
    engine.errors.ConfigError: feature 'x_7d': unknown aggregation 'median' (known: ...)
    """
    by_metric = {m.name: i for i, m in enumerate(metrics)}
    by_window = {w.name: i for i, w in enumerate(windows)}
    if len(by_metric) != len(metrics) or len(by_window) != len(windows):
        raise ConfigError("feature catalog: metric and window names must be unique")
    for m in metrics:
        if m.agg not in AGG_CODE:
            raise ConfigError(f"metric {m.name!r}: unknown aggregation {m.agg!r}")
        if m.resolution not in ("h", "d"):
            raise ConfigError(f"metric {m.name!r}: unknown resolution {m.resolution!r}")
    for w in windows:
        if w.unit not in ("h", "d") or w.size < 1:
            raise ConfigError(f"window {w.name!r}: unit must be 'h' or 'd' and size >= 1")
        if w.unit == "h" and w.size > HOUR_KEEP:
            raise ConfigError(f"window {w.name!r}: hour windows are kept {HOUR_KEEP} hours at most")
    n_win = len(windows)
    known: dict[str, None] = {}
    current: set[str] = set()
    windowed: list[tuple[str, int, float, str | None]] = []
    derived: list[tuple[str, str, tuple[str, ...], int]] = []
    for f in features:
        where = f"feature {f.name!r}"
        if f.name in known:
            raise ConfigError(f"{where}: defined twice")
        if f.agg not in AGGREGATIONS:
            raise ConfigError(
                f"{where}: unknown aggregation {f.agg!r} (known: {', '.join(AGGREGATIONS)})"
            )
        win: Window | None = None
        if f.window is not None:
            if f.window not in by_window:
                raise ConfigError(
                    f"{where}: unknown window {f.window!r} (known: {', '.join(by_window)})"
                )
            win = windows[by_window[f.window]]
        if f.fallback is not None and f.fallback not in current:
            raise ConfigError(
                f"{where}: unknown fallback {f.fallback!r} (must be an earlier 'current' feature)"
            )
        if f.agg in WINDOWED_AGGS or f.agg == "ago":
            if win is None or len(f.source) != 1:
                raise ConfigError(f"{where}: {f.agg!r} needs one metric and a window")
            metric_name = f.source[0]
            if metric_name not in by_metric:
                raise ConfigError(f"{where}: unknown field {metric_name!r} (not a metric)")
            metric = metrics[by_metric[metric_name]]
            wanted = "last" if f.agg == "ago" else WINDOWED_AGGS[f.agg]
            if metric.agg != wanted:
                raise ConfigError(
                    f"{where}: aggregation {f.agg!r} does not fit metric {metric.name!r}"
                    f" (kept as {metric.agg})"
                )
            if metric.resolution == "d" and win.unit == "h":
                raise ConfigError(f"{where}: metric {metric.name!r} is kept by day, not by hour")
            if f.agg == "ago":
                if win.unit != "d" or win.size != DAY_KEEP:
                    raise ConfigError(f"{where}: 'ago' is kept for {DAY_KEEP}d only")
                days = win.size
                derived.append((f.name, "ago", (metric_name, f.fallback or ""), days))
            else:
                idx = by_metric[metric_name] * n_win + by_window[win.name]
                windowed.append((f.name, idx, 100.0 if metric.money else 1.0, f.fallback))
        else:
            for src in f.source:
                ok = src in known or (f.agg == "since" and src in LAST_TIMES)
                ok = ok or (f.agg in ("current", "tier") and src in STATE_FIELDS)
                if not ok:
                    raise ConfigError(f"{where}: unknown field {src!r}")
            derived.append((f.name, f.agg, f.source, 0))
        known[f.name] = None
        if f.agg == "current":
            current.add(f.name)
    longest = max((w.size for w in windows if w.unit == "d"), default=DAY_KEEP)
    return Plan(
        metrics=tuple(metrics),
        windows=tuple(windows),
        names=tuple(known),
        windowed=tuple(windowed),
        derived=tuple(derived),
        longest_days=max(longest, DAY_KEEP),
    )


PLAN = compile_catalog(METRICS, WINDOWS, FEATURES)
N_COLS = len(METRICS)
N_WIN = len(WINDOWS)
COL: dict[str, int] = {m.name: i for i, m in enumerate(METRICS)}
LONGEST_DAYS = PLAN.longest_days
LAST_SLOT: dict[str, int] = {name: i for i, name in enumerate(LAST_TIMES)}


def feature_names() -> tuple[str, ...]:
    """Every feature name ``derive`` produces, in a stable order (the feature schema)."""
    return PLAN.names


def feature_docs() -> list[tuple[str, str, str]]:
    """(name, window, meaning) of every feature, in catalog order (docs/features.md)."""
    out = []
    for f in FEATURES:
        window = f.window if f.agg != "ago" else f"{f.window} ago"
        out.append((f.name, window or "-", f.meaning))
    return out


# ----------------------------------------------------------------------------------------------
# Ops: what an event changes
# ----------------------------------------------------------------------------------------------

OpKind = Literal["add", "max", "last", "session", "balance", "flow", "aum", "set"]


@dataclass(frozen=True, slots=True)
class Op:
    """One generic state operation; the Lua script and the memory twin execute the same ops.

    ``add``/``max``: bucket column ``name`` at the event's time, by ``value``; ``last``: the
    remembered time ``name``; ``session``: session token ``name`` (counted once);
    ``balance``: account field ``name`` to ``value`` cents (``flag`` 1: it moves AUM; ``amount``
    the signed cents); ``flow``: AUM by ``value`` cents; ``aum``: AUM to ``value`` cents;
    ``set``: plain field ``name`` to the string ``value``.
    """

    kind: OpKind
    name: str = ""
    value: int | str = 0
    flag: int = 0
    amount: int = 0


def cents(amount: float) -> int:
    """Money as integer cents (half up), as every store keeps it.

    >>> cents(35.5), cents(0.015), cents(1e6)
    (3550, 2, 100000000)
    """
    return math.floor(float(amount) * 100 + 0.5)


def short_hash(text: str, size: int) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=size).digest()


def session_token(session_id: str) -> str:
    """A short token for a session id (5 base-36 digits of a hash).

    >>> session_token("s1") == session_token("s1"), len(session_token("s1")) <= 5
    (True, True)
    """
    return b36(int.from_bytes(short_hash(session_id, 4), "big") % 36**5)


def balance_field(account_id: str) -> str:
    """The state field of an account's balance; long account ids are hashed (listpack limit)."""
    if len(account_id) <= 40:
        return f"b:{account_id}"
    return f"b:#{short_hash(account_id, 8).hex()}"


def ops_for_dict(event: Mapping[str, Any]) -> tuple[Op, ...]:
    """The state operations an event (as a plain mapping of its fields) implies.

    >>> [(o.kind, o.name) for o in ops_for_dict({"type": "transaction", "amount": 10.0,
    ...     "direction": "debit", "kind": "purchase", "account_id": "a1"})]
    [('add', 'tx_count'), ('add', 'outflow'), ('max', 'max_outflow'), ('last', 'tx'), ('flow', '')]
    """
    kind = event.get("type")
    if kind == "transaction":
        return _transaction_ops(event)
    if kind == "app":
        return _app_ops(event)
    if kind == "profile":
        return _profile_ops(event)
    return ()


def _transaction_ops(ev: Mapping[str, Any]) -> tuple[Op, ...]:
    amount = cents(ev["amount"])
    credit = ev["direction"] == "credit"
    tx_kind = ev["kind"]
    ops = [Op("add", "tx_count", 1)]
    if credit:
        ops.append(Op("add", "inflow", amount))
    else:
        ops += [Op("add", "outflow", amount), Op("max", "max_outflow", amount)]
    if tx_kind == "transfer_out" and (ev.get("counterparty_bank") or "") not in OWN_BANK:
        ops += [
            Op("add", "transfer_out_other_bank", amount),
            Op("add", "transfer_out_other_bank_count", 1),
        ]
    if tx_kind == "salary" and credit:
        ops += [Op("add", "salary_count", 1), Op("last", "salary")]
    if tx_kind in ("wealth_redeem", "wealth_buy"):
        ops.append(Op("add", tx_kind, amount))
    ops.append(Op("last", "tx"))
    balance = ev.get("balance_after")
    # Money moved between an account and a wealth product stays in AUM.
    moves_aum = 0 if tx_kind in ("wealth_buy", "wealth_redeem") else 1
    signed = amount if credit else -amount
    if balance is not None:
        ops.append(
            Op("balance", balance_field(str(ev["account_id"])), cents(balance), moves_aum, signed)
        )
    elif moves_aum:
        ops.append(Op("flow", "", signed))
    return tuple(ops)


def _app_ops(ev: Mapping[str, Any]) -> tuple[Op, ...]:
    name = ev.get("name")
    page = ev.get("page") or ""
    ops: list[Op] = []
    if name == "login":
        ops += [Op("add", "login_count", 1), Op("last", "login")]
    elif name == "login_failed":
        ops += [Op("add", "login_failed_count", 1), Op("last", "login_failed")]
    elif name == "complaint":
        ops += [Op("add", "complaint_count", 1), Op("last", "complaint")]
    if page in SENSITIVE_PAGES:
        ops += [Op("add", "sensitive_page_views", 1), Op("last", "sensitive_page")]
        if page in CLOSURE_PAGES:
            ops.append(Op("add", "closure_page_views", 1))
        elif page in TRANSFER_OUT_PAGES:
            ops.append(Op("add", "transfer_out_page_views", 1))
        else:
            ops.append(Op("add", "redeem_page_views", 1))
    session = ev.get("session_id")
    if session:
        ops.append(Op("session", session_token(str(session))))
    return tuple(ops)


def _profile_ops(ev: Mapping[str, Any]) -> tuple[Op, ...]:
    ops = [Op("set", PROFILE_KEYS[name], str(ev[name])) for name in PROFILE_FIELDS if ev.get(name)]
    consent = ev.get("consent") or {}
    if consent:
        marks = ["-"] * len(CHANNELS)
        for i, channel in enumerate(CHANNELS):
            if channel in consent:
                marks[i] = "1" if consent[channel] else "0"
        if any(m != "-" for m in marks):
            ops.append(Op("set", "pc", "".join(marks)))
    if ev.get("opted_out") is not None:
        ops.append(Op("set", PROFILE_KEYS["opted_out"], "1" if ev["opted_out"] else "0"))
    if ev.get("aum") is not None:
        ops.append(Op("aum", "", cents(ev["aum"])))
    return tuple(ops)


def merge_consent(old: str | None, new: str) -> str:
    """Consent marks per channel (``1``, ``0``, ``-`` unknown): the new marks win where set.

    >>> merge_consent("1-0", "-01")
    '101'
    """
    if not old:
        return new
    return "".join(n if n != "-" else o for o, n in zip(old, new, strict=False))


# ----------------------------------------------------------------------------------------------
# Compact numbers
# ----------------------------------------------------------------------------------------------

_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def b36(n: int) -> str:
    """An integer in base 36 (the stores' compact number encoding).

    >>> b36(0), b36(35), b36(36), b36(-1295), unb36(b36(123456789))
    ('0', 'z', '10', '-zz', 123456789)
    """
    if n < 0:
        return "-" + b36(-n)
    if n < 36:
        return _DIGITS[n]
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = _DIGITS[r] + out
    return out


def unb36(s: str) -> int:
    return int(s, 36)


def fmt17(x: float) -> str:
    """A float as the Lua scripts write it (``%.17g``): both stores keep identical strings."""
    return format(x, ".17g")


def money_text(c: int) -> str:
    """Cents as currency units, 15 significant digits (``%.15g``), e.g. the ``aum`` field.

    >>> money_text(5000000), money_text(123456)
    ('50000', '1234.56')
    """
    return format(c / 100, ".15g")


def text_cents(s: str) -> int:
    return math.floor(float(s) * 100 + 0.5)


def encode_vector(values: Sequence[int | None]) -> str:
    """Columns as comma-separated base-36 numbers, empty for none, trailing empties dropped.

    >>> encode_vector([2, None, 36, None]), decode_vector("2,,10", 4)
    ('2,,10', [2, None, 36, None])
    """
    parts = ["" if v is None else b36(v) for v in values]
    while parts and parts[-1] == "":
        parts.pop()
    return ",".join(parts)


def decode_vector(text: str, size: int) -> list[int | None]:
    out: list[int | None] = [None] * size
    if text:
        for i, part in enumerate(text.split(",")):
            if part:
                out[i] = int(part, 36)
    return out


# ----------------------------------------------------------------------------------------------
# Deriving features
# ----------------------------------------------------------------------------------------------

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


@dataclass(frozen=True, slots=True)
class RawState:
    """Window aggregates and plain fields, by name (a readable form of a store's raw state).

    ``windows`` maps ``<metric>_<window>`` to the raw aggregate (money in cents; absent = no
    data) and ``ago`` maps ``<metric>_<window>`` of ``last`` metrics to the close at least that
    long ago; ``state`` holds the store's plain fields (``aum``, ``t``, ``p:...``).
    """

    now: float
    windows: Mapping[str, int | float] | None = None
    state: Mapping[str, str | float] | None = None
    ago: Mapping[str, int] | None = None


def derive(raw: RawState) -> Features:
    """Named features from a ``RawState``. Every name in ``feature_names()`` is present."""
    agg: list[int | None] = [None] * (N_COLS * N_WIN)
    for key, value in (raw.windows or {}).items():
        metric, _, window = key.rpartition("_")
        if metric in COL and window in _WIN_INDEX:
            agg[COL[metric] * N_WIN + _WIN_INDEX[window]] = int(value)
    fields = {k: str(v) for k, v in (raw.state or {}).items()}
    ago = {COL[k.rpartition("_")[0]]: v for k, v in (raw.ago or {}).items()}
    return derive_vector(raw.now, agg, fields, ago)


_WIN_INDEX = {w.name: i for i, w in enumerate(WINDOWS)}


def _last_times(fields: Mapping[str, str]) -> list[int | None]:
    return decode_vector(fields.get("t", ""), len(LAST_TIMES))


def _pct_drop(peak: float, now: float) -> float:
    return 0.0 if peak <= 0 else max(peak - now, 0.0) / peak * 100.0


def _pct_change(before: float, now: float) -> float:
    return 0.0 if before <= 0 else (now - before) / before * 100.0


def _long_span_days(now: float, window_days: int) -> int:
    """Days a long window (> 7 d) covers: back to the Monday of its oldest week."""
    cd = int(now // DAY)
    first_week = -((-(cd - window_days + 1 - 3)) // 7)  # ceil
    return cd - (7 * first_week - 3) + 1


def derive_vector(
    now: float,
    agg: Sequence[int | None],
    fields: Mapping[str, str],
    ago: Mapping[int, int] | None = None,
) -> Features:
    """Features from the aggregate vector (``metric * N_WIN + window``), the plain fields and
    the closes at least a window ago (by metric column): what the Redis client computes from
    each reply (the twin keeps the windowed part incrementally and calls ``finish_vector``)."""
    aum_text = fields.get("aum")
    aum = float(aum_text) if aum_text is not None else 0.0
    return finish_vector(windowed_values(agg), now, agg, aum, _last_times(fields), ago or {})


def windowed_values(agg: Sequence[int | None]) -> dict[str, float | str]:
    """The windowed features that have no fallback, by name, in catalog order; the features
    with a fallback, and the derived ones, are present with a placeholder that
    ``finish_vector`` replaces. A store
    that keeps aggregates incrementally keeps this dict in step with
    ``update_windowed_values``."""
    out: dict[str, float | str] = dict(_W_TEMPLATE)
    for name, i, d in _W_PLAIN:
        v = agg[i]
        if v is not None:
            out[name] = v / d
    return out


def update_windowed_values(
    values: dict[str, float | str], agg: Sequence[int | None], indices: Iterable[int]
) -> None:
    """Refresh the windowed features that read the aggregates at ``indices`` (just changed)."""
    by_index = WINDOWED_BY_INDEX
    for i in indices:
        targets = by_index.get(i)
        if targets:
            v = agg[i]
            for name, d in targets:
                values[name] = 0.0 if v is None else v / d


def finish_vector(
    windowed: Mapping[str, float | str],
    now: float,
    agg: Sequence[int | None],
    aum: float,
    times: Sequence[int | None],
    ago: Mapping[int, int],
) -> Features:
    """The whole feature vector: a copy of the windowed values, the windowed features with a
    fallback (AUM now when their window holds no data), then the derived ones (from AUM now,
    the remembered times by ``LAST_TIMES`` slot and the closes ``ago``)."""
    out: Features = dict(windowed)
    for name, i, d in _W_FALLBACK:
        v = agg[i]
        out[name] = v / d if v is not None else aum
    _DERIVED(out, now, aum, times, ago)
    return out


def _derived_source() -> str:
    """Straight-line Python for the derived features (generated once from the catalog)."""
    lines = ["def derived(out, now, aum, t, ago):"]
    spans: set[str] = set()
    for name, kind, src, _ in PLAN.derived:
        n = repr(name)
        a = f"out[{src[0]!r}]" if src else ""
        b = f"out[{src[1]!r}]" if len(src) > 1 else ""
        if kind == "delta":
            lines.append(f"    out[{n}] = {a} - {b}")
        elif kind == "current":
            lines.append(f"    out[{n}] = aum")
        elif kind == "tier":
            lines.append(f"    out[{n}] = tier_of(aum)")
        elif kind == "ratio":
            lines.append(f"    d = {b}")
            lines.append(f"    out[{n}] = {a} / d if d else 1.0")
        elif kind == "share":
            lines.append(f"    out[{n}] = {a} / max({b}, 1.0)")
        elif kind == "pct_drop":
            lines.append(f"    out[{n}] = _pct_drop({a}, {b})")
        elif kind == "pct_change":
            lines.append(f"    out[{n}] = _pct_change({a}, {b})")
        elif kind == "prev_weekly_avg":
            days = _LONG_OF[src[0]]
            span = f"span{days}"
            if span not in spans:
                spans.add(span)
                lines.append(f"    {span} = _long_span_days(now, {days}) - 7")
            lines.append(
                f"    out[{n}] = max({a} - {b}, 0.0) * 7.0 / {span} if {span} > 0 else 0.0"
            )
        elif kind == "since":
            lines.append(f"    at = t[{LAST_SLOT[src[0]]}]")
            lines.append(f"    out[{n}] = NEVER_DAYS if at is None else max(now - at, 0.0) / DAY")
        elif kind == "ago":
            fallback = "aum" if src[1] else "0.0"
            lines.append(f"    c = ago.get({COL[src[0]]})")
            lines.append(f"    out[{n}] = c / 100 if c is not None else {fallback}")
        else:  # pragma: no cover - compile_catalog refuses unknown aggregations
            raise ConfigError(f"feature {name!r}: no code for aggregation {kind!r}")
    return "\n".join(lines) + "\n"


def _compile_fast() -> tuple[
    dict[str, float | str],
    tuple[tuple[str, int, float], ...],
    tuple[tuple[str, int, float], ...],
    dict[int, tuple[tuple[str, float], ...]],
    dict[str, int],
]:
    # Every feature's key, windowed first then derived (the vector's order): a copy of it takes
    # the derived values without growing.
    template: dict[str, float | str] = {name: 0.0 for name, _, _, _ in PLAN.windowed}
    template.update({name: 0.0 for name, _, _, _ in PLAN.derived})
    plain = tuple((n, i, d) for n, i, d, fb in PLAN.windowed if fb is None)
    fallback = tuple((n, i, d) for n, i, d, fb in PLAN.windowed if fb is not None)
    by_index: dict[int, list[tuple[str, float]]] = {}
    for name, i, d in plain:
        by_index.setdefault(i, []).append((name, d))
    long_of: dict[str, int] = {}
    for name in PLAN.names:
        window = name.rpartition("_")[2]
        for w in WINDOWS:
            if w.name == window and w.unit == "d" and w.size > DAY_KEEP:
                long_of[name] = w.size
    return template, plain, fallback, {i: tuple(v) for i, v in by_index.items()}, long_of


# WINDOWED_BY_INDEX: the windowed features (name, divisor) without a fallback that read each
# aggregate index.
_W_TEMPLATE, _W_PLAIN, _W_FALLBACK, WINDOWED_BY_INDEX, _LONG_OF = _compile_fast()


def _build_derived() -> Callable[
    [Features, float, float, Sequence[int | None], Mapping[int, int]], None
]:
    scope: dict[str, Any] = {
        "tier_of": tier_of,
        "_pct_drop": _pct_drop,
        "_pct_change": _pct_change,
        "_long_span_days": _long_span_days,
        "NEVER_DAYS": NEVER_DAYS,
        "DAY": DAY,
    }
    exec(compile(_derived_source(), "<features.definitions derived>", "exec"), scope)  # noqa: S102
    fn: Callable[[Features, float, float, Sequence[int | None], Mapping[int, int]], None]
    fn = scope["derived"]
    return fn


_DERIVED = _build_derived()


def profile_of(fields: Mapping[str, str]) -> dict[str, str]:
    """The customer's profile attributes (``p:`` fields without the prefix, and consent).

    >>> profile_of({"p:s": "family", "p:rm_id": "rm1", "pc": "1-0----", "aum": "5"})
    {'segment': 'family', 'rm_id': 'rm1', 'consent_sms': '1', 'consent_in_app': '0'}
    """
    out = {_PROFILE_NAMES.get(k, k[2:]): v for k, v in fields.items() if k.startswith("p:")}
    marks = fields.get("pc")
    if marks:
        for channel, mark in zip(CHANNELS, marks, strict=False):
            if mark != "-":
                out[f"consent_{channel}"] = mark
    return out


# ----------------------------------------------------------------------------------------------
# An event's ops, grouped the way both stores execute them
# ----------------------------------------------------------------------------------------------

SESSION_COL = COL["session_count"]
AUM_COLS: tuple[int, int, int] = (COL["aum_max"], COL["aum_min"], COL["aum_close"])


class EventPlan(NamedTuple):
    """An event's ops grouped in execution order: plain fields set, bucket deltas (with the
    session seen), remembered times, then the AUM op (at most one). A named tuple: one is built
    per event on the hot path."""

    sets: tuple[tuple[str, str], ...]
    delta: dict[int, int]
    lasts: tuple[int, ...]
    session: str
    aum: Op | None


def plan_ops(ops: Sequence[Op]) -> EventPlan:
    """Group ops for execution.

    >>> p = plan_ops(ops_for_dict({"type": "transaction", "amount": 1.5, "direction": "debit",
    ...                            "kind": "purchase", "account_id": "a", "balance_after": 8.0}))
    >>> p.delta, p.lasts, p.aum.kind
    ({0: 1, 1: 150, 2: 150}, (0,), 'balance')
    """
    sets: list[tuple[str, str]] = []
    delta: dict[int, int] = {}
    lasts: list[int] = []
    session = ""
    aum: Op | None = None
    for op in ops:
        kind = op.kind
        if kind == "add":
            c = COL[op.name]
            delta[c] = delta.get(c, 0) + int(op.value)
        elif kind == "max":
            c = COL[op.name]
            old = delta.get(c)
            if old is None or int(op.value) > old:
                delta[c] = int(op.value)
        elif kind == "last":
            lasts.append(LAST_SLOT[op.name])
        elif kind == "session":
            session = op.name
        elif kind == "set":
            sets.append((op.name, str(op.value)))
        else:
            aum = op
    return EventPlan(tuple(sets), delta, tuple(lasts), session, aum)


def event_digest(event_id: str) -> bytes:
    """``DIGEST_BYTES`` (6) bytes of BLAKE2b of the event id: what deduplication remembers. A
    false match needs two ids of one customer within the horizon to collide on 48 bits: with
    ~20 events of a customer inside a 48-hour horizon, about 1 in 10^12 per customer."""
    return short_hash(event_id, DIGEST_BYTES)
