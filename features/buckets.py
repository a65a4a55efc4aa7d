"""Time buckets: where an event's numbers go, how they age, and which windows count them.

Pure; the in-memory twin runs these functions and ``apply_event.lua`` mirrors them line by line.

A bucket is ``(resolution, index)`` with resolution ``H`` (UTC hour), ``D`` (UTC day) or ``W``
(Monday-to-Sunday week; 1970-01-01 was a Thursday, so ``week = (day + 3) // 7``), and holds its
columns sparsely (``{column: integer}``). Every number lives in exactly one bucket:

- hour-resolution columns are written to the event's hour while it is under ``HOUR_KEEP`` (24)
  hours old, else to its day while under ``DAY_KEEP`` (7) days old, else to its week while that
  week is inside the longest window (90 days), else nowhere;
- day-resolution columns (AUM max, min, close) are written to the current day;
- as ``now`` moves, ``settle`` rolls hours of 24 h and more into their day (or week), days of 7 d
  and more into their week, and drops weeks past the longest window, merging each column by its
  aggregation (sum, max, min, last), oldest first.

A window counts a bucket by time only, so rolling up never changes an aggregate:
``1h``/``24h`` count hour buckets of age under 1/24 hours; ``7d`` counts everything whose day is
under 7 days old (exact); a longer window of N days counts everything whose week ends at most N-1
days ago: N to N+6 days. ``ago`` (AUM 7 days ago) is the close of the newest week bucket, i.e. the
AUM at the end of the latest day at least 7 days old on which AUM was seen.

>>> now = 20 * 86400.0
>>> b = {("H", 480): {0: 2}, ("D", 15): {0: 1}, ("W", 2): {0: 4}}
>>> agg, _ = aggregate(b, now)
>>> [agg[0 * N_WIN + w] for w in range(N_WIN)]  # tx_count 1h, 24h, 7d, 30d, 35d, 90d
[2, 2, 3, 7, 7, 7]
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

from features.definitions import (
    AGG_CODE,
    AUM_COLS,
    COLUMN_GROUP_SIZES,
    DAY,
    DAY_KEEP,
    HOUR,
    HOUR_KEEP,
    LONGEST_DAYS,
    METRICS,
    N_COLS,
    N_WIN,
    WINDOWED_BY_INDEX,
    WINDOWS,
    b36,
    decode_vector,
    encode_vector,
)

Key = tuple[str, int]
Bucket = dict[int, int]
AGGS: tuple[str, ...] = tuple(AGG_CODE[m.agg] for m in METRICS)
# (is hour window, size, is long) per window
_WSPEC: tuple[tuple[bool, int, bool], ...] = tuple(
    (w.unit == "h", w.size, w.unit == "d" and w.size > DAY_KEEP) for w in WINDOWS
)


def hour_of(ts: float) -> int:
    return math.floor(ts / HOUR)


def day_of(ts: float) -> int:
    return math.floor(ts / DAY)


def week_of(day: int) -> int:
    return (day + 3) // 7


def week_kept(week: int, cd: int) -> bool:
    """A week is kept while its last day is inside the longest window."""
    return 7 * week + 3 >= cd - LONGEST_DAYS + 1


def day_target(day: int, cd: int) -> Key | None:
    if cd - day < DAY_KEEP:
        return ("D", day)
    week = week_of(day)
    return ("W", week) if week_kept(week, cd) else None


def place(ts: float, ch: int, cd: int) -> Key | None:
    """The bucket of hour-resolution numbers at event time ``ts`` when now is (ch, cd)."""
    hour = hour_of(ts)
    if ch - hour < HOUR_KEEP:
        return ("H", hour)
    return day_target(day_of(ts), cd)


def merge(dst: Bucket, src: Mapping[int, int]) -> None:
    """Merge columns into a bucket, each by its aggregation."""
    for c, v in src.items():
        old = dst.get(c)
        if old is None:
            dst[c] = v
        else:
            a = AGGS[c]
            if a == "s":
                dst[c] = old + v
            elif a == "x":
                if v > old:
                    dst[c] = v
            elif a == "n":
                if v < old:
                    dst[c] = v
            else:
                dst[c] = v


def settle(buckets: dict[Key, Bucket], ch: int, cd: int) -> None:
    """Roll aged buckets up (oldest first) and drop the expired ones, in place."""
    moves: list[tuple[int, int, Key]] = []
    for key in list(buckets):
        res, idx = key
        if res == "H":
            if ch - idx >= HOUR_KEEP:
                moves.append((idx * HOUR, 0, key))
        elif res == "D":
            if cd - idx >= DAY_KEEP:
                moves.append((idx * DAY, 1, key))
        elif not week_kept(idx, cd):
            del buckets[key]
    moves.sort()
    for _, rank, key in moves:
        vec = buckets.pop(key)
        target = day_target(key[1] // 24 if rank == 0 else key[1], cd)
        if target is not None:
            dst = buckets.get(target)
            if dst is None:
                buckets[target] = dict(vec)
            else:
                merge(dst, vec)


def due_hour(key: Key) -> int:
    """The first hour (index) at which ``settle`` moves or drops bucket ``key``: a store that
    remembers the earliest over its buckets may skip settling before then (nothing would move).

    >>> due_hour(("H", 100)), due_hour(("D", 10)), due_hour(("W", 2))
    (124, 408, 2568)
    """
    res, idx = key
    if res == "H":
        return idx + HOUR_KEEP
    if res == "D":
        return (idx + DAY_KEEP) * 24
    return (7 * idx + 3 + LONGEST_DAYS) * 24


def next_due_hour(buckets: Mapping[Key, object]) -> int:
    """The earliest ``due_hour`` of the buckets (a far future hour when there are none)."""
    return min(map(due_hour, buckets), default=NEVER_DUE)


NEVER_DUE = 2**62


@functools.lru_cache(maxsize=8192)
def members(res: str, idx: int, ch: int, cd: int) -> tuple[int, ...]:
    """The windows (indices into ``WINDOWS``) that count bucket (res, idx) when now is hour
    ``ch`` of day ``cd`` (memoised: in a stream, customers share the same few hours)."""
    if res == "H":
        day = idx // 24
    elif res == "D":
        day = idx
    else:
        day = -1
    last_day = 7 * idx + 3 if res == "W" else 7 * week_of(day) + 3
    out = []
    for w, (hourly, size, long) in enumerate(_WSPEC):
        if hourly:
            ok = res == "H" and ch - idx < size
        elif long:
            ok = last_day >= cd - size + 1
        else:
            ok = res != "W" and cd - day < size
        if ok:
            out.append(w)
    mem = tuple(out)
    return _SUFFIXES[mem[0]] if mem and mem == _SUFFIXES[mem[0]] else mem


def aggregate(
    buckets: Mapping[Key, Mapping[int, int]], now: float
) -> tuple[list[int | None], dict[int, int]]:
    """Window aggregates (``column * N_WIN + window``) and closes at least 7 days old.

    The catalog's windows are nested (each counts every bucket a narrower one counts), so a
    bucket counted by windows ``k..`` is folded once into the class of window ``k``, and window
    ``w`` is the fold of classes ``0..w``: buckets x columns + windows x columns steps instead of
    buckets x columns x windows (sum, max and min over integers do not depend on the order). A
    bucket whose windows are not such a suffix (a catalog whose windows are not nested) is folded
    window by window."""
    ch, cd = hour_of(now), day_of(now)
    agg: list[int | None] = [None] * (N_COLS * N_WIN)
    ago: dict[int, int] = {}
    ago_week: dict[int, int] = {}
    classes: list[Bucket | None] = [None] * N_WIN
    odd: list[tuple[tuple[int, ...], Mapping[int, int]]] = []
    for (res, idx), vec in buckets.items():
        if res == "W":
            for c in _LAST_COLS:
                v = vec.get(c)
                if v is not None and idx > ago_week.get(c, -(10**9)):
                    ago_week[c] = idx
                    ago[c] = v
        mem = members(res, idx, ch, cd)
        if not mem:
            continue
        k = mem[0]
        if mem is not _SUFFIXES[k]:
            odd.append((mem, vec))
            continue
        dst = classes[k]
        if dst is None:
            classes[k] = dict(vec)
        else:
            merge(dst, vec)
    running: Bucket = {}
    for w in range(N_WIN):
        cls = classes[w]
        if cls is not None:
            merge(running, cls)
        for c, v in running.items():
            if AGGS[c] != "l":
                agg[c * N_WIN + w] = v
    for mem, vec in odd:
        for c, v in vec.items():
            a = AGGS[c]
            if a == "l":
                continue
            base = c * N_WIN
            for w in mem:
                i = base + w
                old = agg[i]
                if old is None:
                    agg[i] = v
                elif a == "s":
                    agg[i] = old + v
                elif a == "x":
                    if v > old:
                        agg[i] = v
                elif v < old:
                    agg[i] = v
    return agg, ago


_SUFFIXES: tuple[tuple[int, ...], ...] = tuple(tuple(range(k, N_WIN)) for k in range(N_WIN))
_LAST_COLS: tuple[int, ...] = tuple(c for c, a in enumerate(AGGS) if a == "l")


def _column_groups() -> tuple[tuple[int, int], ...]:
    """Column ranges [start, end) stored as separate hash fields (``COLUMN_GROUP_SIZES``)."""
    out, start = [], 0
    for size in COLUMN_GROUP_SIZES:
        if start >= N_COLS:
            break
        out.append((start, min(start + size, N_COLS)))
        start += size
    if start < N_COLS:
        out.append((start, N_COLS))
    return tuple(out)


COLUMN_GROUPS = _column_groups()


def field_of(key: Key, group: int = 0) -> str:
    """The hash field of a bucket's column group: ``H``/``D``/``W``, the index in base 36 and
    ``.<group>`` after the first group."""
    return key[0] + b36(key[1]) + (f".{group}" if group else "")


def parse_field(name: str) -> tuple[Key, int]:
    index, _, group = name[1:].partition(".")
    return (name[0], int(index, 36)), int(group) if group else 0


def decode_group(text: str, group: int, into: Bucket) -> None:
    first = COLUMN_GROUPS[group][0]
    for i, part in enumerate(text.split(",")):
        if part:
            into[first + i] = int(part, 36)


_AMAX, _AMIN, _ACLOSE = AUM_COLS


def expand_aum(bucket: Bucket) -> None:
    """The AUM columns as stored are elided where they repeat (``apply_event.lua``): an absent
    min is the max, an absent close the min (the three are always written together).

    >>> b = {0: 3, _AMAX: 500}
    >>> expand_aum(b); b[_AMIN], b[_ACLOSE]
    (500, 500)
    """
    if _AMAX in bucket and _AMIN not in bucket:
        bucket[_AMIN] = bucket[_AMAX]
    if _AMIN in bucket and _ACLOSE not in bucket:
        bucket[_ACLOSE] = bucket[_AMIN]


def encode_bucket(vec: Mapping[int, int]) -> str:
    full: list[int | None] = [None] * N_COLS
    for c, v in vec.items():
        full[c] = v
    return encode_vector(full)


def decode_bucket(text: str) -> Bucket:
    if not text:
        return {}
    out: Bucket = {}
    for i, part in enumerate(text.split(",")):
        if part:
            out[i] = int(part, 36)
    return out


__all__ = [
    "AGGS",
    "Bucket",
    "Key",
    "aggregate",
    "decode_bucket",
    "decode_vector",
    "encode_bucket",
    "merge",
    "place",
    "settle",
]


_HOUR_WINDOWS: tuple[int, ...] = tuple(i for i, (hourly, _, _) in enumerate(_WSPEC) if hourly)


def add_to_aggregate(
    agg: list[int | None],
    key: Key,
    delta: Mapping[int, int],
    ch: int,
    cd: int,
    values: dict[str, float | str],
) -> None:
    """Fold numbers just merged into bucket ``key`` into the aggregates (incremental upkeep;
    exact because every window is a union of buckets and sum, max, min are associative), and
    refresh the windowed feature ``values`` (see ``definitions.windowed_values``) that read them.
    """
    mem = members(key[0], key[1], ch, cd)
    by_index = WINDOWED_BY_INDEX
    for c, v in delta.items():
        a = AGGS[c]
        if a == "l":
            continue
        base = c * N_WIN
        for w in mem:
            i = base + w
            old = agg[i]
            if old is None:
                new = v
            elif a == "s":
                new = old + v
            elif a == "x":
                new = v if v > old else old
            else:
                new = v if v < old else old
            agg[i] = new
            targets = by_index.get(i)
            if targets:
                for name, d in targets:
                    values[name] = new / d


def refresh_hour_windows(
    agg: list[int | None],
    buckets: Mapping[Key, Mapping[int, int]],
    ch: int,
    prev_ch: int | None,
) -> tuple[int, ...]:
    """Recompute the hour windows that a bucket left as the hour moved from ``prev_ch`` to
    ``ch`` within one day (the others hold the same buckets, so the same aggregates); every
    hour window when ``prev_ch`` is None (buckets were rolled up since: the ones that left are
    no longer there to tell). Returns the aggregate indices recomputed."""
    stale: tuple[int, ...] = _HOUR_WINDOWS
    if prev_ch is not None:
        hours = [idx for res, idx in buckets if res == "H"]
        stale = tuple(
            w
            for w in _HOUR_WINDOWS
            if any(prev_ch - idx < _WSPEC[w][1] <= ch - idx for idx in hours)
        )
    if not stale:
        return ()
    for c in range(N_COLS):
        for w in stale:
            agg[c * N_WIN + w] = None
    for (res, idx), vec in buckets.items():
        if res != "H":
            continue
        mem = [w for w in stale if ch - idx < _WSPEC[w][1]]
        if not mem:
            continue
        for c, v in vec.items():
            a = AGGS[c]
            base = c * N_WIN
            for w in mem:
                i = base + w
                old = agg[i]
                if old is None:
                    agg[i] = v
                elif a == "s":
                    agg[i] = old + v
                elif a == "x":
                    if v > old:
                        agg[i] = v
                elif a == "n" and v < old:
                    agg[i] = v
    return tuple(c * N_WIN + w for c in range(N_COLS) for w in stale)
