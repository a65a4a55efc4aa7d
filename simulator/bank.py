"""A deterministic synthetic retail bank: customers live day by day and emit Vigil's events.

``simulate(customers, days, seed)`` yields JSON-ready event dicts that pass
``engine.events.parse_event``, sorted by event time (ties: customer index, then the customer's
own event order). Same arguments, same events, byte for byte: no wall clock and no global random
state; each customer draws from ``random.Random`` seeded by (seed, customer index).

What a customer does (``simulator.plan`` says who they are and what their fate is;
``simulator.life`` how they live):

- a ``profile`` event at the start (AUM, segment, time zone, RM, consent, opt-out); an AUM
  refresh on the 1st of each month; rare consent, opt-out, RM and segment changes;
- on one current account (``a000001-1``, CNY, ``balance_after`` on every posting and never
  negative): a monthly salary, pension, business receipts or a transfer from the payroll bank;
  card and QR purchases, ATM withdrawals and cash deposits, transfers in and out
  (``counterparty_bank`` for other banks, omitted within the bank), wealth buys and redemptions,
  a monthly SMS-alert fee and interest (extra field ``memo`` on a few postings);
- app sessions in the customer's local hours: ``login`` (sometimes after a ``login_failed``),
  ``page_view`` of ``home`` then other pages, usually a ``logout``; rare ``complaint`` events;
- rare outcomes of the bank's campaigns (``contacted``, ``offer_declined``, ``offer_accepted``),
  never for opted-out customers.

Fates: a churn journey (income stops; money leaves for one other bank in 2 to 4 transfers, the
first 50-70 % of the balance and the last sweeping the rest; redemption and closure pages;
logins and spending fade; ``outcome`` "churned" 7 to 21 days after the start, then silence); a
sudden asset drop (one debit of 40-80 % of AUM, products redeemed just before when the balance
is short; ``outcome`` "asset_drop" 1 to 3 days later); a scare (closure page and one transfer
out, then ``outcome`` "retained" 7 to 21 days later).

Timestamps: postings, profiles and outcomes are stamped on the bank's clock (the offset of
``start``, ``+08:00`` by default); app events carry the customer's local offset (``+00:00`` for a
customer in London in winter), as a phone would. Order by the instant, never by the string.

>>> events = list(simulate(customers=3, days=2, seed=7))
>>> events[0]["type"], events[0]["ts"]
('profile', '2026-01-01T00:00:00+08:00')
>>> len({e["event_id"] for e in events}) == len(events)
True
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import IO, Any, cast

import orjson

from simulator.life import CustomerLife, Event, Row
from simulator.plan import plan_customer
from simulator.timeline import DEFAULT_START, Timeline


def simulate(
    customers: int, days: int, seed: int, start: datetime = DEFAULT_START
) -> Iterator[Event]:
    """Yield the bank's events for ``customers`` customers over ``days`` days, in time order.

    Every event lies in ``[start, start + days)``; outcomes planned after the end are not
    yielded. Memory stays flat in ``days``: customers advance one bank day at a time, and only
    one day's events are held and sorted.
    """
    if customers < 0:
        raise ValueError(f"customers must be >= 0, got {customers}")
    timeline = Timeline(start, days)
    lives = [
        CustomerLife(plan_customer(i, seed, timeline), seed, timeline) for i in range(customers)
    ]
    for day in range(days):
        rows: list[Row] = []
        for life in lives:
            if not life.gone:
                life.live_day(day, rows)
        rows.sort()
        for row in rows:
            yield row[3]


def write_jsonl(events: Iterable[Mapping[str, Any]], path: Path | str) -> int:
    """Write events as JSON lines (orjson), gzipped when the path ends in ``.gz``; the count.

    The gzip header carries no file name and no time, so the same events give the same bytes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("wb") as raw:
        sink: IO[bytes] = raw
        if path.name.endswith(".gz"):
            sink = cast(
                IO[bytes],
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6),
            )
        try:
            chunk: list[bytes] = []
            for event in events:
                chunk.append(orjson.dumps(event))
                if len(chunk) >= 8192:
                    sink.write(b"\n".join(chunk) + b"\n")
                    count += len(chunk)
                    chunk.clear()
            if chunk:
                sink.write(b"\n".join(chunk) + b"\n")
                count += len(chunk)
        finally:
            if sink is not raw:
                sink.close()
    return count


def read_jsonl(path: Path | str) -> Iterator[dict[str, Any]]:
    """The events of a file written by ``write_jsonl`` (gzipped or not), one dict per line."""
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as lines:
        for line in lines:
            if line.strip():
                yield orjson.loads(line)
