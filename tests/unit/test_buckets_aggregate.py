"""``buckets.aggregate`` against the definition of a window aggregate, written out plainly.

``aggregate`` folds each bucket once into the narrowest window that counts it and derives the
wider windows from the narrower ones (the catalog's windows are nested); a bucket whose windows
are not such a suffix is folded window by window. Both must equal the definition: for every
column and window, the sum / max / min of the bucket values of the buckets the window counts.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import features.buckets as b
from features.definitions import DAY, N_COLS, N_WIN

Buckets = dict[b.Key, dict[int, int]]


def reference(
    buckets: Mapping[b.Key, Mapping[int, int]],
    now: float,
    members: Callable[[str, int, int, int], tuple[int, ...]],
) -> list[int | None]:
    ch, cd = b.hour_of(now), b.day_of(now)
    agg: list[int | None] = [None] * (N_COLS * N_WIN)
    for c in range(N_COLS):
        kind = b.AGGS[c]
        if kind == "l":
            continue
        for w in range(N_WIN):
            values = [
                vec[c]
                for (res, idx), vec in buckets.items()
                if c in vec and w in members(res, idx, ch, cd)
            ]
            if values:
                agg[c * N_WIN + w] = (
                    sum(values) if kind == "s" else max(values) if kind == "x" else min(values)
                )
    return agg


def random_buckets(rng: random.Random, now: float) -> Buckets:
    ch, cd = b.hour_of(now), b.day_of(now)
    out: Buckets = {}
    for _ in range(rng.randrange(0, 30)):
        res = rng.choice("HDW")
        if res == "H":
            idx = ch - rng.randrange(0, 30)
        elif res == "D":
            idx = cd - rng.randrange(0, 10)
        else:
            idx = b.week_of(cd) - rng.randrange(0, 16)
        columns = rng.sample(range(N_COLS), rng.randrange(1, 6))
        out[(res, idx)] = {c: rng.randrange(-5, 10_000) for c in columns}
    return out


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), hour=st.integers(0, 23), day=st.integers(20_000, 21_000))
def test_aggregate_equals_the_definition(seed: int, hour: int, day: int) -> None:
    now = day * DAY + hour * 3600 + 1800
    buckets = random_buckets(random.Random(seed), now)
    agg, _ = b.aggregate(buckets, now)
    assert agg == reference(buckets, now, b.members)


def test_windows_of_the_catalog_are_nested() -> None:
    """What the fast path relies on: every bucket's windows are a suffix of the catalog's."""
    rng = random.Random(5)
    for _ in range(2000):
        now = rng.randrange(20_000, 21_000) * DAY + rng.randrange(0, 86400)
        for res, idx in random_buckets(rng, now):
            mem = b.members(res, idx, b.hour_of(now), b.day_of(now))
            assert mem == tuple(range(mem[0], N_WIN)) if mem else True


def test_windows_that_are_not_nested_are_folded_one_by_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A catalog whose windows are not nested (here: every bucket also leaves the second
    window it would count) takes the window-by-window path, with the same result as the
    definition."""

    nested = b.members

    def holes(res: str, idx: int, ch: int, cd: int) -> tuple[int, ...]:
        mem = nested(res, idx, ch, cd)
        return mem[:1] + mem[2:] if len(mem) > 2 else mem

    monkeypatch.setattr(b, "members", holes)
    rng = random.Random(11)
    odd = 0
    for _ in range(300):
        now = rng.randrange(20_000, 21_000) * DAY + rng.randrange(0, 86400)
        buckets = random_buckets(rng, now)
        agg, _ = b.aggregate(buckets, now)
        assert agg == reference(buckets, now, holes)
        odd += sum(len(holes(r, i, b.hour_of(now), b.day_of(now))) > 1 for r, i in buckets)
    assert odd > 0  # the fallback really ran
