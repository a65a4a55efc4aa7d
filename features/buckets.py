"""Window aggregation over time buckets: the read half of apply_event.lua, in Python.

>>> w, closes = aggregate_buckets({"s|tx_count|d|10": 2.0, "s|tx_count|d|2": 1.0}, now=10 * 86400.0)
>>> w["tx_count_7d"], w["tx_count_30d"]
(2.0, 3.0)
"""

from __future__ import annotations

from collections.abc import Mapping

from features.definitions import AUM_CLOSE_DAYS, DAY, HOUR, RETENTION_BUCKETS, WINDOWS


def current_buckets(now: float) -> dict[str, int]:
    return {"h": int(now // HOUR), "d": int(now // DAY)}


def aggregate_buckets(
    buckets: Mapping[str, float], now: float
) -> tuple[dict[str, float], dict[int, float]]:
    """Window aggregates (``<metric>_<window>``) and daily AUM closes by days ago."""
    current = current_buckets(now)
    windows: dict[str, float] = {}
    closes: dict[int, float] = {}
    for field in sorted(buckets):
        value = buckets[field]
        agg, metric, res, bucket = field.split("|")
        age = current[res] - int(bucket)
        if age >= RETENTION_BUCKETS[res]:
            continue
        if agg == "l":
            if 0 <= age < AUM_CLOSE_DAYS:
                closes[age] = value
            continue
        for w in WINDOWS:
            if w.resolution == res and 0 <= age < w.buckets:
                key = f"{metric}_{w.name}"
                old = windows.get(key)
                if agg == "s":
                    windows[key] = (old or 0.0) + value
                elif old is None or value > old:
                    windows[key] = value
    return windows, closes


def expired(field: str, now: float) -> bool:
    _, _, res, bucket = field.split("|")
    return current_buckets(now)[res] - int(bucket) >= RETENTION_BUCKETS[res]
